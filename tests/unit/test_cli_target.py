"""Commands find an analysis on AWS in its blueprint's cloud.bucket, not by the analysis name
(which another account may own), in moto's S3; local runs keep the analysis name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from moto_world import aws, client  # noqa: F401 (aws: a fixture)

from ncaas_dev.cli.context import Context, analysis_client, resolve_target
from ncaas_dev.settings import Settings

BLUEPRINT = """\
analysis: spike-detect
groups:
  - name: labA
cloud:
  bucket: spike-detect-smithlab
"""


@pytest.mark.usefixtures("aws")
def test_with_cloud_a_folder_names_its_cloud_bucket(
    write_blueprint: Callable[..., Path], tmp_path: Path
) -> None:
    folder = write_blueprint(BLUEPRINT)
    client("s3").create_bucket(Bucket="spike-detect-smithlab")
    ctx = Context(Settings(endpoint_url=None, region="us-east-1", state_dir=tmp_path))
    target = resolve_target(ctx, str(folder))
    assert (target.analysis, target.where) == ("spike-detect", "spike-detect-smithlab")
    assert analysis_client(ctx, target).bucket == "spike-detect-smithlab"


def test_locally_a_folder_names_the_analysis(
    write_blueprint: Callable[..., Path], tmp_path: Path
) -> None:
    folder = write_blueprint(BLUEPRINT)
    ctx = Context(Settings(endpoint_url="http://127.0.0.1:1", state_dir=tmp_path))
    assert resolve_target(ctx, str(folder)).where == "spike-detect"
