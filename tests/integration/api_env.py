"""The Python API pointed at the test session's stack, as a user's environment points it."""

from __future__ import annotations

import pytest

from ncaas_dev.settings import Settings


def point_at(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """AWS_ENDPOINT_URL and NCAAS_STATE_DIR of the session's stack, for this test only."""
    assert settings.endpoint_url
    monkeypatch.setenv("AWS_ENDPOINT_URL", settings.endpoint_url)
    monkeypatch.setenv("NCAAS_STATE_DIR", str(settings.state_dir))
