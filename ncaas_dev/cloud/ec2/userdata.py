"""The user-data of a dataset's instance: run the job runner once, then power off.

A pure function of the task, so what EC2 executes can be read, tested and executed by the
local stand-in unchanged. The environment variables it reads (``NCAAS_PYTHON``,
``NCAAS_POWEROFF``...) default to the baked AMI's layout; the stand-in points them at this
machine instead.
"""

from __future__ import annotations

import math

from ... import __version__
from ...launchers.base import DatasetTask
from ..layout import NCAAS_HOME, RUNNER_PYTHON

# Past run.timeout the runner kills the container itself; the watchdog is the layer below it,
# for a runner that hangs in fetching, uploading or starting Docker. Its margin covers:
WATCHDOG_MARGIN_S = 900  # boot, cloud-init, Docker starting: fixed
# the dataset's download and its results' upload (taken as large as the dataset) at a stated
# worst-case throughput between S3 and a small instance;
WORST_CASE_MIB_S = 50
# and EBS initialising the whole root volume from the AMI's snapshot at the rate the launcher
# provisions (VolumeInitializationRate), instead of reading it at boot.
VOLUME_INIT_MIB_S = 300
MIB = 1024**2
USER_DATA_LIMIT = 16 * 1024  # EC2 refuses more (before base64)
_DELIMITER = "NCAAS_TASK_JSON"

_TEMPLATE = """\
#!/bin/bash
# ncaas-dev {version}: one dataset on this instance, then power off (shutdown = terminate).
# {label}
set -u
NCAAS_HOME="${{NCAAS_HOME:-{home}}}"
NCAAS_PYTHON="${{NCAAS_PYTHON:-{python}}}"
NCAAS_POWEROFF="${{NCAAS_POWEROFF:-shutdown -h now}}"
export NCAAS_STATE_DIR="$NCAAS_HOME/state" AWS_DEFAULT_REGION="{region}"
mkdir -p "$NCAAS_HOME/work" "$NCAAS_STATE_DIR"
# Before every power-off: cloud-init's output to the dataset's logs in S3, so a failed boot
# is visible to the user.
ship_boot_log() {{
  "$NCAAS_PYTHON" -m ncaas_dev.cloud.ec2.bootlog "$NCAAS_HOME/work/task.json" \
    "${{NCAAS_BOOT_LOG:-/var/log/cloud-init-output.log}}" || true
}}

# The watchdog: whatever happens below, this instance is gone {watchdog} s from now.
( sleep {watchdog}; echo "ncaas: watchdog: still running after {watchdog} s, powering off"
  ship_boot_log; $NCAAS_POWEROFF ) &

instance_id="${{NCAAS_INSTANCE_ID:-}}"
if [ -z "$instance_id" ]; then  # IMDSv2
  token=$(curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" \\
    http://169.254.169.254/latest/api/token || true)
  instance_id=$(curl -sf -H "X-aws-ec2-metadata-token: $token" \\
    http://169.254.169.254/latest/meta-data/instance-id || echo unknown)
fi

# EBS restores a baked AMI's blocks lazily; unless the launcher provisioned a volume
# initialisation rate, read the image's files once, in parallel (see docs/baking.md).
if [ "${{NCAAS_PREWARM:-{prewarm}}}" = 1 ] && [ -d /var/lib/docker ]; then
  find /var/lib/docker -type f -print0 | xargs -0 -r -P 16 -n 256 cat > /dev/null 2>&1 || true
fi

cat > "$NCAAS_HOME/work/task.json" <<'{delimiter}'
{task}
{delimiter}
echo "ncaas: starting the runner for {label}"
"$NCAAS_PYTHON" -m ncaas_dev.runner "$NCAAS_HOME/work/task.json" "ec2:$instance_id"
echo "ncaas: runner exited with code $?; powering off"
ship_boot_log
$NCAAS_POWEROFF
"""


def watchdog_seconds(task: DatasetTask, dataset_bytes: int = 0, volume_gb: int = 0) -> int:
    """run.timeout plus the margin: fixed boot time, the dataset down and as much up at
    WORST_CASE_MIB_S, the root volume initialised at VOLUME_INIT_MIB_S."""
    transfer = math.ceil(2 * dataset_bytes / (WORST_CASE_MIB_S * MIB))
    initialise = math.ceil(volume_gb * 1024 / VOLUME_INIT_MIB_S)
    return task.timeout_seconds + WATCHDOG_MARGIN_S + transfer + initialise


def render_user_data(
    task: DatasetTask, watchdog: int | None = None, *, prewarm: bool = True
) -> str:
    """The script EC2 runs at first boot for ``task``; raises ValueError past EC2's limit.
    ``prewarm``: read the Docker image's files at boot (no volume initialisation rate)."""
    task_json = task.model_dump_json()
    if "\n" in task_json:  # cannot happen with compact JSON; the heredoc relies on it
        raise ValueError("the task must serialise to a single line")
    script = _TEMPLATE.format(
        version=__version__,
        label=task.label,
        home=NCAAS_HOME,
        python=RUNNER_PYTHON,
        region=task.region,
        watchdog=watchdog if watchdog is not None else watchdog_seconds(task),
        delimiter=_DELIMITER,
        task=task_json,
        prewarm=1 if prewarm else 0,
    )
    size = len(script.encode())
    if size > USER_DATA_LIMIT:
        raise ValueError(
            f"user-data for {task.label} is {size} bytes, over EC2's {USER_DATA_LIMIT}: "
            "shorten run.env or the blueprint's description"
        )
    return script
