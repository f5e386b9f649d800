"""The Dockerfile and README that ``ncaas-dev import`` writes beside the blueprint (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .importer import Imported

DOCKERFILE = """\
# Imported from NeuroCAAS pipeline {analysis}. On NeuroCAAS the analysis software lived on the
# AMI {ami}; here it lives in this image. Move it in (README.md), then set run.command in
# blueprint.yaml (or CMD below) to start it.
# ncaas/base:bookworm is built locally by `make setup`: Debian bookworm with Python 3.11,
# numpy, scipy, matplotlib and Pillow (Debian's packages); no pip, no pandas. To add more:
#   RUN apt-get update && apt-get install -y --no-install-recommends python3-pandas
# or wheels fetched on the host (docs/developer-guide.md, "Dependencies").
FROM ncaas/base:bookworm
# Install what the AMI had, e.g.:
#   RUN pip install --no-cache-dir your-analysis==1.2
#   COPY src/ /app/
CMD ["sh", "-c", "echo 'imported from NeuroCAAS: its software is not in the image yet' >&2; exit 1"]
"""

README = """\
# {analysis}

Imported from a NeuroCAAS `stack_config_template.json` by `ncaas-dev import`. The blueprint
keeps NeuroCAAS's job folder layout (`compat: neurocaas`), so NeuroCAAS clients and scripts
work with it unchanged.

## The analysis software lived on the AMI
On NeuroCAAS, each dataset ran on an instance started from the AMI `{ami}`, which held the
analysis software, and the Lambda ran this command on it:

```
{command}
```

ncaas-dev runs the analysis in a Docker image instead (the same image locally and, baked into
an AMI by `ncaas-dev bake`, in the cloud). To move it:

1. Find how the AMI was set up (its install script, or the repository it was built from; or
   start an instance from it and look under the command's working directory).
2. Write those steps into `Dockerfile` (`RUN` to install, `COPY` for your code).
3. Replace what the command's arguments carried with ncaas-dev's environment: the dataset is
   at `$NCAAS_DATA` (a file, or a folder when the submission names a folder), the config at
   `$NCAAS_CONFIG`, and everything written to `$NCAAS_OUTPUT` becomes
   `process_results/{{dataset}}/`. No AWS credentials or S3 calls are needed: the runner moves
   the data.
4. Set `run.command` in `blueprint.yaml` (or `CMD` in the Dockerfile), then try it:
   `ncaas-dev run . --data SAMPLE --config CONFIG`.

## What mapped where
{table}
{contacts}
See docs/neurocaas.md in ncaas-dev for the whole mapping and what stays different.
"""


def dockerfile(imported: Imported) -> str:
    return DOCKERFILE.format(analysis=imported.analysis, ami=imported.ami or "(none given)")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def readme(imported: Imported) -> str:
    table = ["| NeuroCAAS field | value | blueprint | note |", "|---|---|---|---|"]
    table += [
        f"| {_cell(r.source)} | {_cell(r.value)} | {_cell(r.target) or '(not carried over)'} "
        f"| {_cell(r.note)} |"
        for r in imported.rows
    ]
    contacts = ""
    if imported.contacts:
        contacts = "\n## Contacts of the affiliates (no blueprint field holds them)\n"
        contacts += "".join(f"- {group}: {email}\n" for group, email in imported.contacts)
    return README.format(
        analysis=imported.analysis,
        ami=imported.ami or "(none given)",
        command=imported.command if imported.command is not None else "(none given)",
        table="\n".join(table),
        contacts=contacts,
    )
