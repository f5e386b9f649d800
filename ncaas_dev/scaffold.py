"""``ncaas-dev init NAME``: a blueprint folder that runs as it is."""

from __future__ import annotations

import re
from pathlib import Path

from .blueprint import BUCKET_NAME
from .errors import UsageError

BLUEPRINT = """\
# The single record of how {name} is built, what it gets and who uses it.
analysis: {name}
description: A new analysis (describe it in one line)
image:
  dockerfile: Dockerfile
run:
  command: [python3, /app/main.py]
  timeout: 600
  network: false
resources:
  cpus: 1
  memory: 1g
  gpu: false
cloud:
  region: us-east-1
  instance_type: m5.large
  volume_gb: 20
limits:
  max_concurrent_jobs: 4
  max_cost_usd: 100
groups:
  - name: labA
    users: [alice]
"""

DOCKERFILE = """\
# ncaas/base:bookworm is built locally by `make setup`: Debian bookworm with Python 3.11,
# numpy, scipy, matplotlib and Pillow (Debian's packages); no pip, no pandas. To add more:
#   RUN apt-get update && apt-get install -y --no-install-recommends python3-pandas
# or wheels fetched on the host (docs/developer-guide.md, "Dependencies").
FROM ncaas/base:bookworm
COPY main.py /app/main.py
CMD ["python3", "/app/main.py"]
"""

MAIN = '''\
"""{name}: reads the dataset, writes a summary. Replace with your analysis."""

import hashlib
import json
import os
from pathlib import Path

data = Path(os.environ["NCAAS_DATA"])
config = os.environ.get("NCAAS_CONFIG", "")
out = Path(os.environ["NCAAS_OUTPUT"])
print(f"analysing {{data.name}} ({{data.stat().st_size}} bytes)", flush=True)
digest = hashlib.sha256(data.read_bytes()).hexdigest()
summary = {{"dataset": data.name, "bytes": data.stat().st_size, "sha256": digest,
           "config": Path(config).read_text() if config else None}}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print("done", flush=True)
'''

README = """\
# {name}

Scaffolded by `ncaas-dev init`. Try it:

    echo hello > sample.txt
    ncaas-dev run {folder} --data sample.txt

Then replace `main.py` with your analysis: read `$NCAAS_DATA` (and `$NCAAS_CONFIG`), write
results into `$NCAAS_OUTPUT`, exit 0 on success.
"""


def scaffold(target: Path) -> Path:
    name = re.sub(r"[^a-z0-9-]+", "-", target.name.lower()).strip("-")
    if not BUCKET_NAME.fullmatch(name) or "--" in name:
        raise UsageError(
            f"{target.name!r} cannot name an analysis",
            hint="use 3-63 lowercase letters, digits and hyphens",
        )
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is a file", hint="choose another name")
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} already exists and is not empty", hint="choose another name")
    target.mkdir(parents=True, exist_ok=True)
    files = {
        "blueprint.yaml": BLUEPRINT,
        "Dockerfile": DOCKERFILE,
        "main.py": MAIN,
        "README.md": README,
    }
    for filename, template in files.items():
        (target / filename).write_text(template.format(name=name, folder=target))
    return target
