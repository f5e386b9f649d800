"""The house rules that keep the package easy to change: no import cycles, small modules,
and the dependency arrow one way (event sources depend on the dispatcher core, never back)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ncaas_dev"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every ncaas_dev module ``path`` imports, at module level or inside a function (an
    import deferred for speed still makes a cycle), but not under ``if TYPE_CHECKING``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    type_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in modules and c != name}
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    edges = {name: imports_of(path, modules) for name, path in paths.items()}
    # A package's __init__ is imported on the way to any of its modules: not an edge of ours.
    return {n: {m for m in e if not n.startswith(m + ".")} for n, e in edges.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle() -> None:
    assert find_cycle(graph()) is None, " -> ".join(find_cycle(graph()) or [])


def test_the_cycle_finder_finds_one() -> None:  # the check above can fail
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def _event_source(name: str) -> bool:
    # The SQS loop and provisioning, before or after the folders of issue 19 (dispatch/queue.py,
    # local/provision.py), and the CLI.
    return name.rsplit(".", 1)[-1] in ("queue", "provision") or _under(name, "ncaas_dev.cli")


def test_the_dispatcher_core_does_not_know_its_event_sources() -> None:
    edges = graph()
    core = [
        n
        for n in edges
        if (n == "ncaas_dev.dispatch.dispatcher" or n.startswith("ncaas_dev.dispatch"))
        and not _event_source(n)
    ]
    assert core
    for name in core:
        assert not {m for m in edges[name] if _event_source(m)}, name


# (importer prefix, imported prefix, importers excepted): an arrow that must not exist.
FORBIDDEN = [
    # The API is what the CLI calls, never the other way round.
    ("ncaas_dev.api", "ncaas_dev.cli", ()),
    ("ncaas_dev.api", "ncaas_dev.web", ()),
    # The cloud path is below the EC2 launcher: the launcher uses it, it never uses the launcher
    # (the Lambda handler is an entry point composing the dispatcher with that launcher).
    ("ncaas_dev.cloud", "ncaas_dev.launchers.ec2", ("ncaas_dev.cloud.deploy.lambda_handler",)),
]


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden_arrows(
    edges: dict[str, set[str]], rules: list[tuple[str, str, tuple[str, ...]]]
) -> list[str]:
    """Every import that breaks one of ``rules``, as ``importer -> imported``."""
    return [
        f"{name} -> {target}"
        for name, targets in sorted(edges.items())
        for source, banned, excepted in rules
        if _under(name, source) and name not in excepted
        for target in sorted(targets)
        if _under(target, banned)
    ]


def test_no_arrow_points_the_wrong_way() -> None:
    assert forbidden_arrows(graph(), FORBIDDEN) == []


def test_a_wrong_arrow_is_found() -> None:  # the check above can fail
    fake = {
        "ncaas_dev.api.jobs": {"ncaas_dev.cli.common", "ncaas_dev.errors"},
        "ncaas_dev.cloud.bake.amis": {"ncaas_dev.launchers.ec2"},
        "ncaas_dev.cloud.deploy.lambda_handler": {"ncaas_dev.launchers.ec2"},
    }
    assert forbidden_arrows(fake, FORBIDDEN) == [
        "ncaas_dev.api.jobs -> ncaas_dev.cli.common",
        "ncaas_dev.cloud.bake.amis -> ncaas_dev.launchers.ec2",
    ]


# The public layer: what the CLI and the web client may import of the library.
PUBLIC = ("ncaas_dev.api", "ncaas_dev.errors")
CLIENTS = ("ncaas_dev.cli", "ncaas_dev.web")


def around_the_api(edges: dict[str, set[str]]) -> list[str]:
    """Every import by cli/ or web/ of the library other than the API, errors, the package
    itself (its version) and the two clients' own modules."""
    allowed = (*PUBLIC, *CLIENTS)
    return [
        f"{name} -> {target}"
        for name, targets in sorted(edges.items())
        if any(_under(name, c) for c in CLIENTS)
        for target in sorted(targets)
        if target != "ncaas_dev" and not any(_under(target, a) for a in allowed)
    ]


def test_cli_and_web_import_only_the_api() -> None:
    assert around_the_api(graph()) == []


def test_an_import_around_the_api_is_found() -> None:  # the check above can fail
    fake = {
        "ncaas_dev.cli.jobs": {"ncaas_dev.api.jobs", "ncaas_dev.errors", "ncaas_dev.status"},
        "ncaas_dev.web.pages": {"ncaas_dev.api.browse", "ncaas_dev.web.common", "ncaas_dev"},
        "ncaas_dev.web.server": {"ncaas_dev.storage"},
        "ncaas_dev.api.jobs": {"ncaas_dev.storage"},
    }
    assert around_the_api(fake) == [
        "ncaas_dev.cli.jobs -> ncaas_dev.status",
        "ncaas_dev.web.server -> ncaas_dev.storage",
    ]


def test_the_web_client_goes_through_the_api() -> None:
    """Its pages, streams and uploads: each module that serves them imports the API."""
    edges = graph()
    for name in ("pages", "live", "api", "server", "signin"):
        assert any(_under(t, "ncaas_dev.api") for t in edges[f"ncaas_dev.web.{name}"]) or any(
            _under(t, "ncaas_dev.web.common") for t in edges[f"ncaas_dev.web.{name}"]
        ), name


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_the_package_exports_what_it_lists() -> None:
    import ncaas_dev

    assert sorted(ncaas_dev.__all__) == sorted(ncaas_dev._EXPORTS)
    for name in ncaas_dev.__all__:
        assert getattr(ncaas_dev, name) is not None, name
    assert callable(ncaas_dev.status)  # not shadowed by the module ncaas_dev/status.py
