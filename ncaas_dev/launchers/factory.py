"""The launchers by name: what `run`, `up` and `dispatch --launcher NAME` build."""

from __future__ import annotations

from ..settings import Settings
from ..storage import Storage
from .base import Launcher
from .names import LAUNCHERS

__all__ = ["LAUNCHERS", "make_launcher"]


def make_launcher(name: str, settings: Settings, storage: Storage) -> Launcher:
    """The launcher ``name`` (one of LAUNCHERS), ready to dispatch."""
    if name == "ec2":
        from .ec2 import Ec2Launcher

        return Ec2Launcher(settings, storage)
    if name == "batch":
        from .batch import BatchLauncher

        return BatchLauncher(settings, storage)
    if name == "slurm":
        from .slurm import SlurmLauncher

        return SlurmLauncher(settings, storage)
    from .sibling import SiblingLauncher, wants_sibling_runners

    if wants_sibling_runners():  # in the compose stack: runners are containers of their own
        return SiblingLauncher.beside_this_container(settings.state_dir)
    from .docker import DockerLauncher

    docker = DockerLauncher(settings.state_dir, settings.endpoint_url)
    docker.warm()
    return docker
