"""The commands' composition roots, now part of the Python API (``ncaas_dev.api.context``);
re-exported here so the commands' imports stay as they were."""

from __future__ import annotations

from ..api.context import Context, Opened, Target, analysis_client, open_analysis, resolve_target

__all__ = ["Context", "Opened", "Target", "analysis_client", "open_analysis", "resolve_target"]
