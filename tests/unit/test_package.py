"""The Lambda's zip: the whole ncaas_dev package, wherever ``package.py`` lies within it, holding
the module the template names as the handler."""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

import pytest

from ncaas_dev.cloud.deploy import package
from ncaas_dev.cloud.deploy import template as t


def test_the_zip_holds_the_handler_module_the_template_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No pip (the dependencies come from PyPI): only ncaas_dev's own files are looked at.
    monkeypatch.setattr(package, "_install_dependencies", lambda target: target.mkdir())
    built = package.build_package(tmp_path)
    with zipfile.ZipFile(built.path) as archive:
        names = set(archive.namelist())
    module, _, function = t.LAMBDA_HANDLER.rpartition(".")
    assert "ncaas_dev/__init__.py" in names
    assert module.replace(".", "/") + ".py" in names
    assert callable(getattr(importlib.import_module(module), function))
