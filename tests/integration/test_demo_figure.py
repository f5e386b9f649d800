"""The demo's figure (blueprints/spike-detect, spikes.png): each detection's marker sits on its
own channel's trace, not on the next channel's line."""

from __future__ import annotations

import json

import pytest

from ncaas_dev.containers import Engine

from .jobs import ROOT

pytestmark = pytest.mark.integration

# Inside ncaas/base (the demo's own base): generate a short recording, run the analysis with
# Figure.savefig replaced by a dump of the band-passed panel's rows and markers.
PROBE = r"""
import json, os, runpy, subprocess, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.figure

def dump(fig, *args, **kwargs):
    middle = fig.axes[1]
    rows = [float(y) for y in middle.get_yticks()]
    marks = [float(line.get_ydata()[0]) for line in middle.get_lines() if line.get_marker() == "v"]
    print("FIGURE " + json.dumps({"rows": rows, "marks": marks}), flush=True)

matplotlib.figure.Figure.savefig = dump
subprocess.run([sys.executable, "/app/generate_data.py", "--out", "/tmp/rec.bin",
                "--seconds", "2"], check=True, stdout=subprocess.DEVNULL)
os.environ.update(NCAAS_DATA="/tmp/rec.bin", NCAAS_OUTPUT="/tmp", NCAAS_CONFIG="/app/params.yaml")
runpy.run_path("/app/detect_spikes.py", run_name="__main__")
"""


def test_each_marker_sits_on_its_own_channels_trace(engine: Engine) -> None:
    output = engine.client.containers.run(
        "ncaas/base:bookworm",
        ["python3", "-c", PROBE],
        volumes={str(ROOT / "blueprints/spike-detect"): {"bind": "/app", "mode": "ro"}},
        environment={"MPLCONFIGDIR": "/tmp/mpl"},
        network_disabled=True,
        remove=True,
    ).decode()
    line = next(x for x in output.splitlines() if x.startswith("FIGURE "))
    shown = json.loads(line.removeprefix("FIGURE "))
    assert shown["marks"], output  # the demo's recording has spikes in the first 0.25 s
    for mark in shown["marks"]:
        assert any(abs(mark - row) < 1e-6 for row in shown["rows"]), (mark, shown["rows"])
