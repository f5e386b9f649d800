"""Where things are: the endpoint, the region, the state folder (read from the environment)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

DEFAULT_ENDPOINT = "http://localhost:4566"
# LocalStack accepts any keys; these fixed ones keep a user's real keys out of it. Written once:
# every client, signer and child process for a local stack takes them from here.
LOCAL_ACCESS_KEY = LOCAL_SECRET_KEY = "test"
DEFAULT_REGION = "us-east-1"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _state_dir() -> Path:
    return Path(os.environ.get("NCAAS_STATE_DIR", Path.home() / ".ncaas-dev")).expanduser()


def _analysis_network() -> str | None:
    return os.environ.get("NCAAS_ANALYSIS_NETWORK") or None


@dataclass(frozen=True)
class Settings:
    """``endpoint_url`` is None for real AWS (``--cloud``), else LocalStack's address."""

    endpoint_url: str | None = DEFAULT_ENDPOINT
    region: str = DEFAULT_REGION
    state_dir: Path = field(default_factory=_state_dir)
    # The Docker network an analysis with ``run.network: true`` joins (NCAAS_ANALYSIS_NETWORK);
    # None: the engine's default network. Analyses without ``run.network`` get none either way.
    analysis_network: str | None = field(default_factory=_analysis_network)
    # True when no endpoint was given and ncaas-dev chose this user's own (ownership.py).
    chosen_endpoint: bool = False

    @classmethod
    def from_env(cls, endpoint_url: str | None = None, cloud: bool = False) -> Settings:
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        if cloud:
            return cls(endpoint_url=None, region=region or DEFAULT_REGION)
        region = region or DEFAULT_REGION
        given = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        if given:
            return cls(endpoint_url=given.rstrip("/"), region=region)
        # None given: this user's own stack, on 4566 unless another user's stack holds it.
        from .ownership import own_endpoint

        state_dir = _state_dir()
        endpoint = own_endpoint(DEFAULT_ENDPOINT, state_dir)
        return cls(endpoint_url=endpoint, region=region, state_dir=state_dir, chosen_endpoint=True)

    @property
    def local(self) -> bool:
        return self.endpoint_url is not None

    @property
    def jobs_dir(self) -> Path:
        """Scratch space for runners: inputs fetched, outputs written, removed afterwards."""
        return self.state_dir / "jobs"


def check_cloud_environment(environ: Mapping[str, str], endpoint_url: str | None) -> None:
    """``--cloud`` means real AWS: refuse settings that only make sense against LocalStack."""
    if endpoint_url:
        raise UsageError(
            f"--cloud and --endpoint-url {endpoint_url} contradict each other",
            hint="--cloud means real AWS; drop --endpoint-url (or drop --cloud for LocalStack)",
        )
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
        if environ.get(name):
            raise UsageError(
                f"--cloud, but {name}={environ[name]} points the AWS clients elsewhere",
                hint=f"unset {name} for real AWS (or drop --cloud to work against LocalStack)",
            )
    if environ.get("AWS_ACCESS_KEY_ID") == LOCAL_ACCESS_KEY:
        raise UsageError(
            "--cloud, but AWS_ACCESS_KEY_ID is LocalStack's 'test' key",
            hint="use real credentials (AWS_PROFILE, `aws configure`, an instance role)",
        )
