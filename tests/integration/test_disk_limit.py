"""resources.disk: a dataset that writes past its limit is stopped with the reason, the host
does not fill, and what it wrote until then is kept (diskguard.py)."""

from __future__ import annotations

import pytest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.settings import Settings
from ncaas_dev.status import State
from ncaas_dev.storage import Storage

from .test_analysis_outcomes import variant_lab

pytestmark = pytest.mark.integration
MIB = 1024**2
LIMIT = 64 * MIB
REASON = "wrote more than 0.0625 GiB (resources.disk)"


def _outputs(lab, job: str, dataset: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    prefix = lab.paths(job).outputs(dataset)
    return {o.key[len(prefix) :]: o.size for o in lab.storage.list_objects(lab.bucket, prefix)}


@pytest.fixture(scope="module")
def small_disk(storage: Storage, settings: Settings, probe: LoadedBlueprint, dispatcher: int):  # type: ignore[no-untyped-def]
    return variant_lab(storage, settings, probe, "disk", resources={"disk": LIMIT})


@pytest.mark.parametrize("where", ["output", "scratch"])
def test_writing_past_the_limit_is_stopped_and_what_was_written_kept(
    small_disk,
    where: str,  # type: ignore[no-untyped-def]
) -> None:
    """16 files of 16 MiB (256 MiB) at about 40 MiB/s, against a 64 MiB limit: in the output
    folder, or in scratch (/tmp, the container's writable layer)."""
    lab = small_disk
    cfg = {"write_files": 16, "write_mb": 16, "write_pause": 0.025}
    if where == "scratch":
        cfg["write_dir"] = "/tmp"
    status = lab.run(dataname=lab.dataset(), configname=lab.config(**cfg))
    dataset = next(iter(status.datasets))
    assert status.state == State.FAILED, status.reason
    assert REASON in (status.datasets[dataset].reason or ""), status.datasets[dataset].reason
    outputs = _outputs(lab, status.job, dataset)
    assert "done.txt" not in outputs  # stopped: it never got to the end
    assert "facts.json" in outputs  # and what it wrote before is kept
    written = sum(size for name, size in outputs.items() if name.startswith("blob-"))
    if where == "output":
        assert LIMIT <= written < 4 * LIMIT, written  # the partial outputs, near the limit


def test_one_file_past_the_limit_stops_at_the_limit(small_disk) -> None:  # type: ignore[no-untyped-def]
    lab = small_disk
    status = lab.run(dataname=lab.dataset(), configname=lab.config(write_files=1, write_mb=100))
    dataset = next(iter(status.datasets))
    assert status.state == State.FAILED
    assert REASON in (status.datasets[dataset].reason or "")
    assert _outputs(lab, status.job, dataset)["blob-0.bin"] == LIMIT  # the kernel stopped it


def test_writing_under_the_limit_succeeds(small_disk) -> None:  # type: ignore[no-untyped-def]
    lab = small_disk
    status = lab.run(dataname=lab.dataset(), configname=lab.config(write_files=2, write_mb=8))
    log = lab.text(lab.paths(status.job).log(next(iter(status.datasets))))
    assert status.state == State.SUCCEEDED, log
