"""A stand-in for EC2's machines, so the cloud path runs offline.

LocalStack's EC2 records instances but runs nothing. The stand-in watches it for instances the
EC2 launcher started (proven by an HMAC of their user-data, ``signing.py``; any other instance
is terminated unrun), executes each one's user-data on this machine exactly as cloud-init
would (once, as a script), and terminates the instance in LocalStack when the script ends,
which is what ``InstanceInitiatedShutdownBehavior=terminate`` does on AWS. The runner inside
then works against LocalStack's S3 and the local Docker engine.

Powering off is ``kill -KILL 0``: it ends the script's whole process group (runner and
watchdog included), as a real power-off ends everything on the machine. An instance
terminated from outside (``aws ec2 terminate-instances``, a test) has its script killed and its
analysis container removed, as on AWS.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...privacy import child_env, private_dir, write_private
from ...processes import alive
from ...settings import Settings
from ..layout import TAG_DATASET, TAG_JOB, tags_of
from .api import LIVE_STATES, Ec2Regions
from .signing import TAG_PROOF, proven, stack_secret

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

log = logging.getLogger(__name__)
POWEROFF = "kill -KILL 0"
REGIONS_REFRESH_S = 5


@dataclass
class Machine:
    instance_id: str
    pid: int
    tags: dict[str, str]
    region: str
    process: subprocess.Popen[bytes] | None = None  # None: booted by an earlier stand-in

    def running(self) -> bool:
        return self.process.poll() is None if self.process else alive(self.pid)


class StandIn:
    def __init__(self, settings: Settings, ec2: EC2Client | None = None) -> None:
        self.settings = settings
        self.ec2 = Ec2Regions(settings, ec2)
        self.root = settings.state_dir / "instances"
        self.machines: dict[str, Machine] = {}
        self._regions_seen_at = 0.0
        self.secret = stack_secret(settings.state_dir)

    def regions(self) -> list[str]:
        """This stack's region and every provisioned analysis's cloud.region (LocalStack's EC2
        is per region), looked up again every few seconds."""
        if time.monotonic() - self._regions_seen_at > REGIONS_REFRESH_S:
            self._regions_seen_at = time.monotonic()
            from ...analysis import load_record, provisioned_analyses
            from ...aws import s3_client
            from ...storage import Storage

            storage = Storage(s3_client(self.settings), self.settings.endpoint_url)
            for bucket in provisioned_analyses(storage):
                record = load_record(storage, bucket)
                if record is not None:
                    self.ec2.client(record.blueprint.cloud.region)
        return self.ec2.known

    def _proofs_run(self) -> set[str]:
        """The launch proofs of every instance this stack's stand-ins ever booted: each
        proves one launch, so a copy on a second instance is refused."""
        return {p.read_text() for p in self.root.glob("*/proof")}

    def _folder(self, instance_id: str) -> Path:
        return self.root / instance_id

    def step(self) -> None:
        """One round: boot new instances, end the scripts of terminated ones, reap finished."""
        live: dict[str, tuple[dict[str, Any], str]] = {}
        for region in self.regions():
            ours = self.ec2.instances(region, tag_key=[TAG_JOB], instance_state_name=LIVE_STATES)
            live |= {i["InstanceId"]: (i, region) for i in ours}
        for instance_id, (instance, region) in live.items():
            if instance_id not in self.machines:
                self._boot(instance, region)
        for instance_id, machine in list(self.machines.items()):
            if not machine.running():
                self._power_off(machine, "its user-data ended")
            elif instance_id not in live:
                self._kill(machine)
                self._power_off(machine, "it was terminated from outside")

    def _boot(self, instance: dict[str, Any], region: str) -> None:
        instance_id = instance["InstanceId"]
        tags = tags_of(instance)
        folder = self._folder(instance_id)
        if folder.exists():
            # User-data runs once per instance. Booted under an earlier stand-in: watch the
            # script if it still runs; if not, the machine died with that stand-in.
            pid = _read_pid(folder / "pid")
            if pid is not None and alive(pid):
                self.machines[instance_id] = Machine(instance_id, pid, tags, region)
                log.info("%s: still running from an earlier stand-in (pid %d)", instance_id, pid)
            else:
                log.warning("%s: booted before and no longer running; terminating it", instance_id)
                self._remove_containers(tags)
                self._terminate(instance_id, region)
            return
        with self.ec2.errors(f"read the user-data of {instance_id}"):
            reply = self.ec2.client(region).describe_instance_attribute(
                InstanceId=instance_id, Attribute="userData"
            )
        encoded = reply.get("UserData", {}).get("Value")
        user_data = base64.b64decode(encoded) if encoded else b""
        proof = tags.get(TAG_PROOF)
        why = None
        if not proven(self.secret, user_data, proof):
            # Anyone on this machine can call LocalStack's RunInstances: never execute their
            # script as this stack's owner.
            why = "no valid launch proof, so this stack's dispatcher did not launch it"
        elif proof in self._proofs_run():
            why = "its launch proof was used by another instance already (a replay)"
        if why is not None:
            log.warning("%s: refused: %s; terminated without running it", instance_id, why)
            self._terminate(instance_id, region)
            return
        private_dir(folder)
        write_private(folder / "proof", (proof or "").encode())
        script = folder / "user-data"
        write_private(script, user_data)
        console = (folder / "console.log").open("ab")
        # Only what the user-data needs: not the owner's environment (real AWS keys included).
        env = child_env(
            {
                "NCAAS_HOME": str(folder),
                "NCAAS_PYTHON": sys.executable,
                "NCAAS_POWEROFF": POWEROFF,
                "NCAAS_PREWARM": "0",  # this host's /var/lib/docker is not the instance's
                "NCAAS_INSTANCE_ID": instance_id,
                "NCAAS_BOOT_LOG": str(folder / "console.log"),  # this stand-in's cloud-init output
            }
        )
        process = subprocess.Popen(
            ["/bin/bash", str(script)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            cwd=folder,
            start_new_session=True,
        )
        console.close()
        (folder / "pid").write_text(str(process.pid))
        self.machines[instance_id] = Machine(instance_id, process.pid, tags, region, process)
        log.info("%s: booted (user-data pid %d)", instance_id, process.pid)

    def _kill(self, machine: Machine) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(machine.pid, signal.SIGKILL)
        if machine.process is not None:
            machine.process.wait()

    def _power_off(self, machine: Machine, why: str) -> None:
        self.machines.pop(machine.instance_id, None)
        self._remove_containers(machine.tags)
        self._terminate(machine.instance_id, machine.region)
        log.info("%s: powered off: %s", machine.instance_id, why)

    def _terminate(self, instance_id: str, region: str) -> None:
        with self.ec2.errors(f"terminate {instance_id}"):
            self.ec2.client(region).terminate_instances(InstanceIds=[instance_id])

    @staticmethod
    def _remove_containers(tags: dict[str, str]) -> None:
        """The analysis container dies with its machine, on this host too."""
        job, dataset = tags.get(TAG_JOB), tags.get(TAG_DATASET)
        if not job or not dataset:
            return
        from ...containers import connect, containers_where

        try:
            client = connect()
            labels = [f"ncaas.job={job}", f"ncaas.dataset={dataset}"]
            for container in containers_where(client, {"label": labels}):
                container.remove(force=True)
        except Exception as e:  # a machine that is gone must not stop the others
            log.warning("could not remove the containers of %s/%s: %s", job, dataset, e)

    def power_off_all(self) -> None:
        """Stopping the stand-in stops its machines: nothing is left running."""
        for machine in list(self.machines.values()):
            self._kill(machine)
            self._power_off(machine, "the stand-in stopped")

    def serve(self, interval: float = 0.25) -> None:
        while True:
            try:
                self.step()
            except Exception as e:  # LocalStack restarting: keep watching
                log.warning("stand-in round failed: %s", e)
                time.sleep(1)
            time.sleep(interval)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m ncaas_dev.cloud.ec2.standin ENDPOINT_URL``: serve until killed."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s standin %(message)s")
    settings = Settings.from_env(endpoint_url=args[0] if args else None)
    log.info("running the user-data of instances launched on %s", settings.endpoint_url)
    standin = StandIn(settings)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)  # `ncaas-dev down`: power every machine off first
    try:
        standin.serve()
    finally:
        standin.power_off_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
