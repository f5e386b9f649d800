"""Ship an instance's boot log (cloud-init's output) to the dataset's logs in S3 before the
instance powers off, so a boot that failed is visible to the user, not only to EC2's console.

``python -m ncaas_dev.cloud.ec2.bootlog TASK.json LOG``; never fails the power-off: whatever
goes wrong is printed and the exit code is 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ...launchers.base import DatasetTask
from ...layout import JobPaths

MAX_BYTES = 1024**2  # the end of the log, where a failure is


def boot_log_key(task: DatasetTask) -> str:
    """``{group}/results/{job}/logs/{dataset}.boot.log``: beside the dataset's own log."""
    return JobPaths(task.group, task.job).log(task.dataset).removesuffix(".log") + ".boot.log"


def ship(task: DatasetTask, log: Path) -> str | None:
    """Upload the last MAX_BYTES of ``log``; returns the key, or None when there is no log."""
    from ...aws import s3_client
    from ...settings import Settings
    from ...storage import Storage

    if not log.is_file():
        return None
    with log.open("rb") as f:
        f.seek(max(0, log.stat().st_size - MAX_BYTES))
        body = f.read()
    settings = Settings.from_env(endpoint_url=task.endpoint_url, cloud=task.endpoint_url is None)
    storage = Storage(s3_client(settings), settings.endpoint_url)
    key = boot_log_key(task)
    storage.put_bytes(task.bucket, key, body)
    return key


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        task = DatasetTask.model_validate_json(Path(args[0]).read_text())
        key = ship(task, Path(args[1]))
        print(f"ncaas: boot log {'shipped to ' + key if key else 'absent: nothing shipped'}")
    except Exception as e:  # the instance powers off either way
        print(f"ncaas: could not ship the boot log: {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
