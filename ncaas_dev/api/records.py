"""The records the API hands out, by name: a job's ``JobStatus`` (status.json), each
dataset's ``DatasetStatus``, the ``State`` values. (Imports pydantic: import it when needed.)"""

from __future__ import annotations

from ..status import DatasetStatus, JobStatus, State

__all__ = ["DatasetStatus", "JobStatus", "State"]
