"""ncaas-dev: turn a research analysis into a cloud service, local-first.

The public Python API (docs/python-api.md)::

    import ncaas_dev
    bp = ncaas_dev.load_blueprint("blueprints/spike-detect")
    job = ncaas_dev.run(bp, data=["rec.bin"])

Every name below is imported when first used (module ``__getattr__``): the CLI imports this
package on every start, and importing the API's dependencies costs more than its whole
start-up budget allows. Type checkers and IDEs see the real names through the
``TYPE_CHECKING`` block.
"""

from __future__ import annotations

import sys
import types

# Not typing's: importing typing costs ~10 ms of every command's start, the front end's
# included (mypy reads any ``TYPE_CHECKING`` as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .api.cloud import bake, deploy
    from .api.job import Job
    from .api.jobs import job, jobs, run, submit
    from .api.profile import ProfileReport, profile
    from .api.progress import OnProgress, Progress
    from .api.project import BlueprintLike, build, load_blueprint
    from .api.shell import shell
    from .api.stack import StackStatus, down, status, up
    from .blueprint import Blueprint, LoadedBlueprint
    from .containers import BuildFailed, ImageMissing
    from .errors import (
        BlueprintError,
        JobFailed,
        JobTimeout,
        NcaasError,
        ServiceUnavailable,
        StorageError,
        UsageError,
    )
    from .status import DatasetStatus, JobStatus, State

    __version__: str

# name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(("load_blueprint", "build", "BlueprintLike"), "api.project"),
    **dict.fromkeys(("run", "submit", "jobs", "job"), "api.jobs"),
    "Job": "api.job",
    **dict.fromkeys(("up", "down", "status", "StackStatus"), "api.stack"),
    **dict.fromkeys(("bake", "deploy"), "api.cloud"),
    **dict.fromkeys(("profile", "ProfileReport"), "api.profile"),
    "shell": "api.shell",
    **dict.fromkeys(("Progress", "OnProgress"), "api.progress"),
    **dict.fromkeys(("Blueprint", "LoadedBlueprint"), "blueprint"),
    **dict.fromkeys(("State", "JobStatus", "DatasetStatus"), "status"),
    **dict.fromkeys(("BuildFailed", "ImageMissing"), "containers"),
    **dict.fromkeys(
        (
            "NcaasError",
            "UsageError",
            "BlueprintError",
            "ServiceUnavailable",
            "StorageError",
            "JobFailed",
            "JobTimeout",
        ),
        "errors",
    ),
}

__all__ = [
    "Blueprint",
    "BlueprintError",
    "BlueprintLike",
    "BuildFailed",
    "DatasetStatus",
    "ImageMissing",
    "Job",
    "JobFailed",
    "JobStatus",
    "JobTimeout",
    "LoadedBlueprint",
    "NcaasError",
    "OnProgress",
    "ProfileReport",
    "Progress",
    "ServiceUnavailable",
    "StackStatus",
    "State",
    "StorageError",
    "UsageError",
    "bake",
    "build",
    "deploy",
    "down",
    "job",
    "jobs",
    "load_blueprint",
    "profile",
    "run",
    "shell",
    "status",
    "submit",
    "up",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """``ncaas_dev.status`` is the API's ``status()``, though a module ``ncaas_dev/status.py``
    exists too: importing a submodule sets it as an attribute of its package, which would
    shadow the function. The module stays importable (``from ncaas_dev.status import State``);
    only that attribute is refused."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


def _version() -> str:
    """``__version__``, read from the installed metadata when first asked for: importing
    ``importlib.metadata`` costs more than the CLI's whole start-up budget allows."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("ncaas-dev")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0+source"
    globals()["__version__"] = found
    return found
