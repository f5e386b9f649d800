"""The local stack listens on loopback only: every listening socket of its processes, of the
SLURM daemons (scripts/ensure-slurm.sh) and of `ncaas-dev web`.

LocalStack, the dispatcher (and the runners it starts) and the EC2 stand-in are started the way
`ncaas-dev up` starts them, used, and then every TCP socket in LISTEN state that one of their
processes holds is read from /proc/net/tcp and tcp6 (matched to the processes through the socket
inodes in /proc/PID/fd). Each must be bound to 127.0.0.1 or ::1. No traffic leaves loopback.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ncaas_dev.aws import client, sqs_client
from ncaas_dev.blueprint import LoadedBlueprint
from ncaas_dev.local.stack import PidFile, start_standin
from ncaas_dev.settings import Settings
from ncaas_dev.storage import Storage

from .jobs import Lab

pytestmark = pytest.mark.integration
LISTEN = "0A"


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))  # four host-order words
    return socket.inet_ntop(socket.AF_INET6, words)


def listening_sockets() -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of every TCP socket in LISTEN state in this network namespace."""
    found = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN:
                address, _, port = fields[1].partition(":")
                found[int(fields[9])] = (_address(address), int(port, 16))
    return found


def stack_processes(roots: set[int]) -> set[int]:
    """The daemons, everything in their sessions, and every descendant (runners, sub-services)."""
    parent, session = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        parent[int(entry.name)], session[int(entry.name)] = int(fields[1]), int(fields[3])
    members = {pid for pid, sid in session.items() if sid in roots} | roots
    grew = True
    while grew:
        children = {pid for pid, ppid in parent.items() if ppid in members} - members
        members |= children
        grew = bool(children)
    return members


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes  # exited meanwhile
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def listening_of(pids: set[int]) -> dict[tuple[str, int], set[int]]:
    """(address, port) -> pids, for the sockets the given processes listen on."""
    listening = listening_sockets()
    bound: dict[tuple[str, int], set[int]] = {}
    for pid in pids:
        for inode in socket_inodes(pid) & listening.keys():
            bound.setdefault(listening[inode], set()).add(pid)
    return bound


@pytest.fixture
def standin(settings: Settings) -> Iterator[int]:
    info = start_standin(settings)
    assert info.pid is not None
    yield info.pid
    PidFile(settings.state_dir, "ec2-standin").stop()


def test_the_stack_listens_on_loopback_only(
    settings: Settings,
    storage: Storage,
    probe: LoadedBlueprint,
    dispatcher: int,
    standin: int,
) -> None:
    localstack = PidFile(settings.state_dir, "localstack").read().pid
    assert localstack is not None, "the session's LocalStack has no pid file"
    # Wake the services the stack uses (LocalStack starts each on first use), and keep a job
    # running while the sockets are read, so its runner is counted too.
    sqs_client(settings).list_queues()
    client(settings, "ec2").describe_instances()
    lab = Lab(storage, probe.blueprint.analysis)
    job = lab.wait_job(lab.submit(dataname=lab.dataset(), configname=lab.config(sleep=3)))

    roots = {localstack, dispatcher, standin}
    bound = listening_of(stack_processes(roots))
    lab.wait_end(job)

    assert settings.endpoint_url
    port = int(settings.endpoint_url.rsplit(":", 1)[1])
    assert ("127.0.0.1", port) in bound, f"LocalStack's gateway not found among {bound}"
    wide = {a: pids for a, pids in bound.items() if not ipaddress.ip_address(a[0]).is_loopback}
    assert not wide, f"listening beyond loopback (address, port -> pids): {wide}"


def test_the_stack_keeps_its_s3_data_in_its_own_state_folder(
    settings: Settings, storage: Storage, probe: LoadedBlueprint
) -> None:
    """Not in LocalStack's fixed /tmp/localstack-s3-storage, which every LocalStack on the
    machine shared (one stack's cleanup removed another's files; root's folder refused others).
    """
    bucket = probe.blueprint.analysis
    storage.put_bytes(bucket, "labA/inputs/spooled.bin", os.urandom(2 * 1024**2))
    assert (settings.state_dir / "localstack" / "s3-storage" / bucket).is_dir()


SLURM_RUN = Path(os.environ.get("NCAAS_SLURM_HOME", "/var/lib/ncaas-slurm")) / "run"


@pytest.mark.parametrize(("daemon", "port"), [("slurmctld", 6817), ("slurmd", 6818)])
def test_the_slurm_daemons_listen_on_loopback_only(daemon: str, port: int) -> None:
    """scripts/ensure-slurm.sh's cluster (CommunicationParameters=NoCtldInAddrAny,NoInAddrAny):
    by default both daemons listen on every interface."""
    pid_file = SLURM_RUN / f"{daemon}.pid"
    if not pid_file.exists():
        pytest.fail(f"{daemon} is not running ({pid_file} missing): run `make slurm`")
    bound = listening_of({int(pid_file.read_text())})
    assert ("127.0.0.1", port) in bound, f"{daemon} does not listen on 127.0.0.1:{port}: {bound}"
    wide = [a for a in bound if not ipaddress.ip_address(a[0]).is_loopback]
    assert not wide, f"{daemon} listens beyond loopback: {wide}"


def test_the_web_client_listens_on_loopback_only(
    cli_env: dict[str, str], tmp_path: Path, dispatcher: int
) -> None:
    """`ncaas-dev web` with its defaults, every socket of its process tree."""
    from .jobs import NCAAS_DEV

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        web = subprocess.Popen(
            [str(NCAAS_DEV), "web", "--port", str(port)],
            env={**cli_env, "NCAAS_NO_COMMAND_SERVER": "1"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        bound: dict[tuple[str, int], set[int]] = {}
        while time.monotonic() < deadline and not any(p == port for _, p in bound):
            assert web.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
            bound = listening_of(stack_processes({web.pid}))
        assert ("127.0.0.1", port) in bound, f"not listening: {bound}; {log.read_text()[-500:]}"
        wide = [a for a in bound if not ipaddress.ip_address(a[0]).is_loopback]
        assert not wide, f"the web client listens beyond loopback: {wide}"
    finally:
        web.terminate()
        web.wait(timeout=30)
