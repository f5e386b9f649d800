"""``ncaas-dev import``: a NeuroCAAS ``stack_config_template.json`` becomes a blueprint folder.

:func:`convert` is pure (the template in, the blueprint and the mapping table out);
:func:`write_folder` writes the folder aside and moves it into place, so it is never half
written. A file that is not such a template, or holds a field of the wrong type, raises
:class:`TemplateError` (exit 2) naming the field. The mapping is documented in
docs/neurocaas.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..blueprint import (
    BUCKET_NAME,
    DEFAULT_GPU_INSTANCE_TYPE,
    NVIDIA_GPU_TYPE,
    RETIRED_GPU_TYPE,
    parse_blueprint,
)
from ..errors import BlueprintError, UsageError
from ..pricing import price_table
from . import templates
from .neurocaas import NEUROCAAS

INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
MAX_TIMEOUT = 7 * 24 * 3600  # run.timeout's own limit
MAX_CONCURRENT = 1000  # limits.max_concurrent_jobs' own limit
DEFAULT_GROUP = "default"


class TemplateError(UsageError):
    """Not a NeuroCAAS stack config template, or a field of the wrong type (exit 2)."""


@dataclass(frozen=True)
class Row:
    """One line of the mapping table: where a template field went (``target`` empty: not
    carried over, ``note`` says why)."""

    source: str
    value: str
    target: str
    note: str = ""


@dataclass
class Imported:
    analysis: str
    blueprint: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    command: str | None = None
    ami: str | None = None
    contacts: list[tuple[str, str]] = field(default_factory=list)


class _Reader:
    """Typed access to the template: a wrong type raises naming the field."""

    def __init__(self, doc: dict[str, Any], source: str, prefix: str = "") -> None:
        self.doc, self.source, self.prefix = doc, source, prefix

    def fail(self, path: str, problem: str) -> TemplateError:
        return TemplateError(
            f"{self.source}: field '{self.prefix}{path}' {problem}",
            hint="fix the template (NeuroCAAS's stack_config_template.json), then import again",
        )

    def get(self, path: str, kinds: tuple[type, ...], what: str, required: bool = False) -> Any:
        node: Any = self.doc
        parts = path.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                if isinstance(node, dict) and not required:
                    return None
                where = ".".join(parts[:depth]) or "(top level)"
                if not isinstance(node, dict):
                    raise self.fail(where, f"must be an object, not {_kind(node)}")
                raise self.fail(path, "is missing")
            node = node[part]
        if node is None and not required:
            return None
        if (isinstance(node, bool) and bool not in kinds) or not isinstance(node, kinds):
            raise self.fail(path, f"must be {what}, not {_kind(node)} {_short(node)}")
        return node


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}
    return names.get(type(value), "null" if value is None else f"a {type(value).__name__}")


def _short(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(reader: _Reader, path: str, minimum: float) -> float | None:
    """A number, or a number written as a string (NeuroCAAS's MAXCOST often is)."""
    value = reader.get(path, (int, float, str), "a number")
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise reader.fail(path, f"must be a number, not the text {_short(value)}") from None
    if not math.isfinite(number) or number < minimum:
        raise reader.fail(path, f"must be a number of at least {minimum:g}, not {_short(value)}")
    return number


def _bucket(name: str) -> str:
    """A PipelineName as a bucket name: lowercase; runs of other characters become one '-'."""
    clean = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].strip("-")
    return clean if len(clean) >= 3 else (clean + "-analysis").strip("-")


def _group(name: str, taken: set[str]) -> str:
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")[:63] or "group"
    return _unique(clean, taken)


def _user(name: str, taken: set[str]) -> str:
    """An e-mail address keeps its parts: alice@lab.org -> alice-at-lab.org."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.replace("@", "-at-")).strip("-_.")[:64]
    return _unique(clean or "user", taken)


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name[:60]}-{n}", n + 1
    taken.add(candidate)
    return candidate


def convert(doc: object, source: str = "stack_config_template.json") -> Imported:
    """The blueprint (as a dict) and the mapping table of one template."""
    if not isinstance(doc, dict):
        raise TemplateError(
            f"{source}: not a NeuroCAAS stack config template: expected a JSON object "
            f"with PipelineName and Lambda.LambdaConfig, got {_kind(doc)}"
        )
    r = _Reader(doc, source)
    rows: list[Row] = []
    config = "Lambda.LambdaConfig"
    pipeline = r.get("PipelineName", (str,), "a string", required=True)
    r.get(config, (dict,), "an object", required=True)
    analysis = _bucket(pipeline)
    if not BUCKET_NAME.fullmatch(analysis) or "--" in analysis:
        raise r.fail("PipelineName", f"{pipeline!r} cannot name a bucket, even rewritten")
    note = "" if analysis == pipeline else "rewritten as a valid bucket name"
    rows.append(Row("PipelineName", pipeline, f"analysis: {analysis}", note))
    blueprint: dict[str, Any] = {
        "analysis": analysis,
        "description": f"Imported from NeuroCAAS pipeline {pipeline}",
        "compat": NEUROCAAS,
        "image": {"dockerfile": "Dockerfile"},
        "run": {},
        "resources": {},
        "cloud": {},
        "limits": {},
    }
    rows.append(Row("(none)", "", f"compat: {NEUROCAAS}", "job folders in NeuroCAAS's layout"))
    region = r.get("REGION", (str,), "a string") or r.get(f"{config}.REGION", (str,), "a string")
    if region:
        blueprint["cloud"]["region"] = region
        rows.append(Row("REGION", region, f"cloud.region: {region}"))
    _instance(r, f"{config}.INSTANCE_TYPE", blueprint, rows)
    _limits(r, config, blueprint, rows)
    imported = Imported(analysis, blueprint, rows)
    imported.ami = r.get(f"{config}.AMI", (str,), "a string")
    if imported.ami:
        rows.append(
            Row(f"{config}.AMI", imported.ami, "", "the analysis lived on this AMI: move it "
                "into the Dockerfile (README.md); `ncaas-dev bake` writes cloud.ami")
        )  # fmt: skip
    imported.command = r.get(f"{config}.COMMAND", (str,), "a string")
    if imported.command is not None:
        rows.append(
            Row(f"{config}.COMMAND", imported.command, "",
                "ran on the AMI; kept in README.md and as a comment in blueprint.yaml")
        )  # fmt: skip
    for name, why in (
        ("EXECUTION_TIMEOUT", "the Lambda's own time limit; the dispatcher has none to set"),
        ("CONFIG", "the config's file name: users name theirs in `configname`"),
        ("MISSING_CONFIG_ERROR", "configs are optional in ncaas-dev (NCAAS_CONFIG is empty)"),
    ):
        value = r.get(f"{config}.{name}", (str, int, float, bool), "a string or a number")
        if value is not None:
            rows.append(Row(f"{config}.{name}", str(value), "", why))
    _groups(r, blueprint, imported, rows)
    rows.append(
        Row("(none)", "", "resources: cpus 2, memory 4g",
            "not in the template: the defaults; `ncaas-dev profile` measures what fits")
    )  # fmt: skip
    for section in ("run", "resources", "cloud", "limits"):
        if not blueprint[section]:
            del blueprint[section]
    parse_blueprint(blueprint, f"{source} (imported)")  # what import writes must load
    return imported


def _instance(r: _Reader, path: str, blueprint: dict[str, Any], rows: list[Row]) -> None:
    kind = r.get(path, (str,), "a string such as m5.xlarge")
    if kind is None:
        return
    if not INSTANCE_TYPE.fullmatch(kind):
        raise r.fail(path, f"must be an EC2 instance type such as m5.xlarge, not {kind!r}")
    target, notes = kind, []
    if RETIRED_GPU_TYPE.match(kind):
        target = DEFAULT_GPU_INSTANCE_TYPE
        notes.append(f"{kind}'s GPU is retired (no current driver): {target} instead")
    if NVIDIA_GPU_TYPE.match(target):
        blueprint["resources"]["gpu"] = True
        notes.append("a GPU type: resources.gpu: true")
    if target not in price_table():
        notes.append(
            "no price in ncaas-dev's table (ncaas_dev/prices.json): submissions are refused "
            "until it is added"
        )
    blueprint["cloud"]["instance_type"] = target
    rows.append(Row(path, kind, f"cloud.instance_type: {target}", "; ".join(notes)))


def _limits(r: _Reader, config: str, blueprint: dict[str, Any], rows: list[Row]) -> None:
    limit = r.get(f"{config}.DEPLOY_LIMIT", (int,), "a whole number")
    if limit is not None:
        if limit < 1:
            raise r.fail(f"{config}.DEPLOY_LIMIT", f"must be at least 1, not {limit}")
        kept = min(limit, MAX_CONCURRENT)
        blueprint["limits"]["max_concurrent_jobs"] = kept
        note = f"capped at {MAX_CONCURRENT}" if kept != limit else ""
        target = f"limits.max_concurrent_jobs: {kept}"
        rows.append(Row(f"{config}.DEPLOY_LIMIT", str(limit), target, note))
    cost = _number(r, f"{config}.MAXCOST", 0)
    if cost is not None:
        blueprint["limits"]["max_cost_usd"] = int(cost) if cost.is_integer() else cost
        raw = r.get(f"{config}.MAXCOST", (int, float, str), "a number")
        note = "a number written as text, read as a number" if isinstance(raw, str) else ""
        rows.append(Row(f"{config}.MAXCOST", str(raw), f"limits.max_cost_usd: {cost:g}", note))
    timeout = _number(r, f"{config}.SSM_TIMEOUT", 1)
    if timeout is not None:
        kept_s = min(math.ceil(timeout), MAX_TIMEOUT)
        blueprint["run"]["timeout"] = kept_s
        note = "seconds, as in NeuroCAAS" + (
            f"; capped at {MAX_TIMEOUT} (7 days)" if kept_s != math.ceil(timeout) else ""
        )
        rows.append(Row(f"{config}.SSM_TIMEOUT", f"{timeout:g}", f"run.timeout: {kept_s}", note))


def _groups(r: _Reader, blueprint: dict[str, Any], imported: Imported, rows: list[Row]) -> None:
    affiliates = r.get("UXData.Affiliates", (list,), "a list of affiliates")
    if not affiliates:
        blueprint["groups"] = [{"name": DEFAULT_GROUP, "users": []}]
        rows.append(
            Row("UXData.Affiliates", "(missing)", f"groups: [{DEFAULT_GROUP}]",
                "no affiliates in the template: one empty group; list the real ones")
        )  # fmt: skip
        return
    groups: list[dict[str, Any]] = []
    taken: set[str] = set()
    for i, entry in enumerate(affiliates):
        at = f"UXData.Affiliates[{i}]"
        if not isinstance(entry, dict):
            raise r.fail(at, f"must be an object, not {_kind(entry)}")
        sub = _Reader(entry, r.source, prefix=f"{at}.")
        name = sub.get("AffiliateName", (str,), "a string", required=True)
        group = _group(name, taken)
        note = "" if group == name else "not a valid group name: rewritten"
        rows.append(Row(f"{at}.AffiliateName", name, f"groups[{i}].name: {group}", note))
        users = sub.get("UserNames", (list,), "a list of user names") or []
        kept: list[str] = []
        seen: set[str] = set()
        for j, user in enumerate(users):
            if not isinstance(user, str) or not user.strip():
                raise r.fail(f"{at}.UserNames[{j}]", f"must be a user name, not {_short(user)}")
            mapped = _user(user, seen)
            kept.append(mapped)
            if mapped != user:
                rows.append(
                    Row(f"{at}.UserNames[{j}]", user, f"groups[{i}].users: {mapped}",
                        "not a valid user name (an e-mail address?): rewritten")
                )  # fmt: skip
        rows.append(Row(f"{at}.UserNames", ", ".join(users), f"groups[{i}].users ({len(kept)})"))
        contact = sub.get("ContactEmail", (str,), "a string")
        if contact:
            imported.contacts.append((group, contact))
            rows.append(Row(f"{at}.ContactEmail", contact, "", "no such field; kept in README.md"))
        groups.append({"name": group, "users": kept})
    blueprint["groups"] = groups


def render_blueprint(imported: Imported) -> str:
    header = ["# Imported from a NeuroCAAS stack_config_template.json by `ncaas-dev import`."]
    if imported.ami:
        header.append(f"# The analysis ran on the AMI {imported.ami}; see README.md.")
    if imported.command is not None:
        header.append("# Its original COMMAND (run on that AMI by NeuroCAAS):")
        header += [f"#   {line}" for line in imported.command.splitlines() or [""]]
    body = yaml.safe_dump(imported.blueprint, sort_keys=False, allow_unicode=True)
    return "\n".join(header) + "\n" + body


def write_folder(imported: Imported, out: Path) -> Path:
    """Write the blueprint folder aside, then move it into place: never half written."""
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(
            f"{out} already exists and is not empty",
            hint="give another --out, or remove it first",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    try:
        files = {
            "blueprint.yaml": render_blueprint(imported),
            "Dockerfile": templates.dockerfile(imported),
            "README.md": templates.readme(imported),
        }
        for name, text in files.items():
            (scratch / name).write_text(text)
        os.chmod(scratch, 0o755)
        os.replace(scratch, out)  # atomic; an existing empty folder is replaced
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return out


def import_template(path: Path, out: Path | None = None) -> tuple[Path, Imported]:
    """Read ``path``, convert it, write the folder (default ``./{analysis}``)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UsageError(f"{path}: cannot read it ({e.strerror})") from e
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise TemplateError(
            f"{path}: not a NeuroCAAS stack config template: not valid JSON ({e})"
        ) from e
    try:
        imported = convert(doc, str(path))
    except BlueprintError as e:  # a value this mapping let through that the blueprint refuses
        raise TemplateError(e.message, hint=e.hint) from e
    return write_folder(imported, out or Path.cwd() / imported.analysis), imported
