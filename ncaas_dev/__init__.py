"""ncaas-dev: turn a research analysis into a cloud service, local-first."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ncaas-dev")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
