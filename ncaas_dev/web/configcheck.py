"""Does a config parse? YAML or JSON; if not, the line and the problem in plain words.

A config comes from a user, so parsing is bounded: at most ``CONFIG_MAX`` bytes are checked
and nesting past ``MAX_DEPTH`` is refused before PyYAML's recursive composer (or json's
scanner) could hit Python's recursion limit. The server runs it in worker processes
(``checking.py``).
"""

from __future__ import annotations

import json

import yaml

from ..api.browse import CONFIG_MAX

MAX_DEPTH = 100
TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep; flatten the config"


# libyaml when present: its event parser is ~30x faster than PyYAML's pure-Python one.
_FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Up to this size PyYAML itself parses and loads it (its messages name the problem best);
# larger configs are parsed by libyaml (syntax and depth), in about a second per MiB.
EXACT_MAX = 16 * 1024


def _yaml_depth(text: str, loader: type) -> int:
    """The deepest nesting of ``text``, read from the event stream (a loop, no recursion)."""
    depth = deepest = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return deepest


def config_problem(name: str, body: bytes) -> str | None:
    """None if ``body`` parses (JSON for ``.json`` files, else YAML), else "line N: problem"."""
    if len(body) > CONFIG_MAX:
        return None  # too large to check here; the analysis reads it as it is
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"byte {e.start + 1}: not UTF-8 text"
    if name.lower().endswith(".json"):
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            return f"line {e.lineno}, column {e.colno}: {e.msg}"
        except RecursionError:
            return TOO_DEEP
        return None
    try:
        exact = len(body) <= EXACT_MAX
        if _yaml_depth(text, yaml.SafeLoader if exact else _FAST) > MAX_DEPTH:
            return TOO_DEEP
        if exact:
            yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return f"{where}{e.problem or e.context or 'not valid YAML'}"
    except yaml.YAMLError as e:
        return f"not valid YAML: {e}"
    return None
