"""Config checks in worker processes: parsing a hostile config (1 MiB, deeply nested) takes
the CPU of a process of its own, never the server's event loop or its GIL, and a check that
runs past ``CHECK_SECONDS`` is stopped with its worker."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .configcheck import config_problem

WORKERS = 2  # one user's slow check leaves a worker for everyone else
CHECK_SECONDS = 20.0
_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            # spawn, not fork: the server has threads, and a forked copy could inherit a lock.
            _pool = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"))
        return _pool


def _stop(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    for process in list(pool._processes.values()):  # the stuck check goes with its worker
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


async def check_config(name: str, body: bytes) -> str | None:
    """``config_problem(name, body)``, run in a worker process."""
    pool = _executor()
    try:
        future = asyncio.get_running_loop().run_in_executor(pool, config_problem, name, body)
        return await asyncio.wait_for(future, CHECK_SECONDS)
    except TimeoutError:
        _stop(pool)
        return f"took over {CHECK_SECONDS:.0f} s to check; simplify the config"
    except BrokenProcessPool:  # a worker died (or none could start): check on a thread instead
        _stop(pool)
        return await asyncio.to_thread(config_problem, name, body)
