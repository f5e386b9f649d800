"""Does a config parse? YAML or JSON; if not, the line and the problem in plain words."""

from __future__ import annotations

import json

import yaml

from ..api.browse import CONFIG_MAX


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
        return None
    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return f"{where}{e.problem or e.context or 'not valid YAML'}"
    except yaml.YAMLError as e:
        return f"not valid YAML: {e}"
    return None
