"""`python transfer.py up|down FILE BUCKET KEY`: one streamed transfer through ncaas-dev's storage.

Run as its own process by bench_run.py so its peak memory can be measured alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ncaas_dev.aws import s3_client
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage

direction, path, bucket, key = sys.argv[1:5]
settings = Settings.from_env()
storage = Storage(s3_client(settings), settings.endpoint_url)
if direction == "up":
    storage.upload_file(Path(path), bucket, key)
else:
    storage.download_file(bucket, key, Path(path))
