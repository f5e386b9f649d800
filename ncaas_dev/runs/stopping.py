"""Signals from outside while a runner works (SLURM's warning, scancel, a lost node).

They interrupt the analysis only: once the analysis has ended, results must still upload, so
the handler raises ``Stopped`` only while armed.
"""

from __future__ import annotations

import signal


class Stopped(Exception):
    """A signal from outside while the analysis ran: SIGUSR1 is SLURM's warning ahead of the
    time limit (``sbatch --signal``); SIGTERM is scancel, a lost node, or a person."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_armed = False  # raise Stopped only while the analysis runs, never while results upload


def _on_signal(signum: int, frame: object) -> None:
    global _armed
    if _armed:
        _armed = False
        raise Stopped(signum)


def arm(on: bool) -> None:
    global _armed
    _armed = on


def install_handlers() -> None:
    for signum in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, _on_signal)
