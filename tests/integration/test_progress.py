"""The analysis's own progress: a tqdm-style bar gives a rising ``progress`` in status.json and
one clean last line in ``logs``, ``logs -f`` and the certificate; the raw log keeps every CR."""

from __future__ import annotations

import time

import pytest

from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.storage import Storage

from .jobs import Lab, ncaas

pytestmark = pytest.mark.integration

STEPS = 24
FINAL_BAR = f"100%|##########| {STEPS}/{STEPS}"


@pytest.fixture
def lab(storage: Storage, probe: LoadedBlueprint, dispatcher: int) -> Lab:
    return Lab(storage, probe.blueprint.analysis)


def test_tqdm_bars_give_rising_progress_and_clean_last_lines(
    lab: Lab, probe: LoadedBlueprint, cli_env: dict[str, str]
) -> None:
    data = lab.dataset()
    name = data.rsplit("/", 1)[1]
    # 24 redraws, half a second apart: 12 s of bar, so several status writes see it move.
    # No stdout lines: Docker keeps each stream's order but not their order between them, so
    # a stdout line may land inside the bar's line (as it may on a terminal).
    config = lab.config(lines=0, bars=STEPS, bar_interval=0.5)
    job = lab.wait_job(lab.submit(dataname=data, configname=config))
    seen: list[float] = []
    deadline = time.monotonic() + 120
    while not lab.client.finished(lab.group, job):
        assert time.monotonic() < deadline, f"{job} did not end within 120 s"
        ds = lab.client.status(lab.group, job).datasets[name]
        if ds.progress is not None and (not seen or ds.progress != seen[-1]):
            seen.append(ds.progress)
        time.sleep(0.3)
    status = lab.client.status(lab.group, job)
    final = status.datasets[name]
    assert final.state == "succeeded", final.reason
    assert final.progress == 1.0 and final.last_output.startswith(FINAL_BAR)
    during = [p for p in seen if p < 1.0]
    assert len(during) >= 2, f"progress never moved while running: {seen}"
    assert seen == sorted(seen) and all(0 < p < 1 for p in during), seen

    paths = lab.paths(job)
    raw = lab.text(paths.log(name))
    assert raw.count("\r") == STEPS + 1, "the log object keeps the raw bytes"
    assert f"LAST OUTPUT: {FINAL_BAR}" in lab.text(paths.certificate)

    for args in (["logs"], ["logs", "-f"]):
        done = ncaas([*args, probe.blueprint.analysis, job, "--dataset", name], cli_env)
        assert done.returncode == 0, done.stderr
        mine = [ln for ln in done.stdout.splitlines() if f"{name} |" in ln]
        bars = [ln for ln in mine if "%|" in ln]
        assert len(bars) == 1 and FINAL_BAR in bars[0], (args, mine)
        assert mine[-1] == bars[0] and "\r" not in done.stdout, (args, mine)
