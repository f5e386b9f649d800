#!/usr/bin/env bash
# A real single-node SLURM cluster on 127.0.0.1 for the SLURM launcher's tests (idempotent).
#   munge                    authentication between the SLURM daemons and clients
#   slurmctld, slurmd        the controller and the node daemon (Debian's SLURM 22.05)
#   slurm-client             sbatch, squeue, scancel, sinfo, scontrol
# No systemd here: the daemons are started directly. Everything the cluster writes (state,
# spool, logs, pid files, the config itself) lives under $NCAAS_SLURM_HOME; /etc/slurm/slurm.conf
# is a link to the config, so every client finds it the way it would on a real cluster.
# A slurm.conf that this script did not write (a real site) is never touched: then the script
# only checks that the cluster answers.
set -euo pipefail

HOME_DIR=${NCAAS_SLURM_HOME:-/var/lib/ncaas-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by ncaas-dev scripts/ensure-slurm.sh"
PKGS=(munge slurmctld slurmd slurm-client)
NODE=$(hostname -s)

die() { echo "ensure-slurm: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
# /proc, not kill -0: a user who is not root may not signal the root daemons, only see them.
alive() { [ -f "$1" ] && [ -d "/proc/$(cat "$1")" ]; }
node_state() { timeout 5 sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -1; }

# 1. packages (only those missing)
source "$(dirname "$0")/lib/apt.sh"
ensure_apt_packages ensure-slurm "${PKGS[@]}"

# A site's own cluster: check it, change nothing.
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  sinfo -h >/dev/null 2>&1 || die "$CONF is not ours and sinfo fails: is the site's SLURM up?"
  exit 0
fi

# 2. the config: one node, this machine, addressed as 127.0.0.1 (never the LAN address).
# slurmd -C reports the hardware exactly as slurmd will check it (CPUs, sockets, memory).
hw=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //')
mem=$(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<<"$hw")
# Leave room for the OS: a node configured with more memory than it has is drained.
hw=$(sed -E "s/RealMemory=[0-9]+/RealMemory=$((mem - 1024))/" <<<"$hw")
new=$(mktemp)
trap 'rm -f "$new"' EXIT
cat >"$new" <<EOF
$MARK
ClusterName=ncaas
SlurmctldHost=$NODE(127.0.0.1)
# Both daemons bind the addresses above (127.0.0.1), not every interface: the cluster is
# this machine's alone. (By default slurmctld and slurmd listen on 0.0.0.0.)
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
# Other users of the machine see neither our jobs nor their comments (bucket, group, job,
# dataset): squeue, scontrol and sacct show each user their own jobs only.
PrivateData=jobs
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$HOME_DIR/state
SlurmdSpoolDir=$HOME_DIR/spool
SlurmctldPidFile=$HOME_DIR/run/slurmctld.pid
SlurmdPidFile=$HOME_DIR/run/slurmd.pid
SlurmctldLogFile=$HOME_DIR/log/slurmctld.log
SlurmdLogFile=$HOME_DIR/log/slurmd.log
# No systemd and no cgroup delegation in a container: track processes by their parentage.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# The completion log: one line per finished job.
JobCompType=jobcomp/filetxt
JobCompLoc=$HOME_DIR/log/jobcomp.log
# Finished jobs stay visible to squeue for an hour (the launcher reads their end state there).
MinJobAge=3600
KillWait=30
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
# Cores and memory are consumable, but the partition lets up to 16 jobs share a core (each
# analysis container has its own CPU limit), so this 2-core node runs more datasets at once
# than it has cores; memory is never oversubscribed.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerParameters=sched_interval=5
NodeName=$NODE NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:16
EOF
# Already up, idle (or busy with jobs) and configured so: nothing to do, and no root needed.
if cmp -s "$new" "$HOME_DIR/etc/slurm.conf" && [ "$(stat -c %a "$HOME_DIR/log" 2>/dev/null)" = 700 ] &&
  alive "$HOME_DIR/run/slurmctld.pid" && alive "$HOME_DIR/run/slurmd.pid"; then
  case "$(node_state)" in
    idle|mixed|allocated|completing) exit 0 ;;
  esac
fi
is_root || die "the local SLURM cluster is not running as configured; start it as root: sudo $0"
mkdir -p "$HOME_DIR"/{etc,state,spool,log,run} /etc/slurm
# The logs name every job and its comment: root's alone, as is the controller's state.
chmod 0700 "$HOME_DIR/log" "$HOME_DIR/state"
find "$HOME_DIR/log" -type f -exec chmod 0600 {} +
changed=0
if ! cmp -s "$new" "$HOME_DIR/etc/slurm.conf"; then
  mv "$new" "$HOME_DIR/etc/slurm.conf"
  changed=1
fi
chmod 644 "$HOME_DIR/etc/slurm.conf"
ln -sfn "$HOME_DIR/etc/slurm.conf" "$CONF"

# 3. the daemons, without systemd
stop() { alive "$1" && kill "$(cat "$1")" && sleep 1; rm -f "$1"; }
if [ "$changed" = 1 ]; then
  stop "$HOME_DIR/run/slurmd.pid" || true
  stop "$HOME_DIR/run/slurmctld.pid" || true
fi
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1; chown munge:munge /etc/munge/munge.key; }
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi
if ! alive "$HOME_DIR/run/slurmctld.pid"; then
  /usr/sbin/slurmctld || die "slurmctld did not start (see $HOME_DIR/log/slurmctld.log)"
fi
if ! alive "$HOME_DIR/run/slurmd.pid"; then
  /usr/sbin/slurmd -N "$NODE" || die "slurmd did not start (see $HOME_DIR/log/slurmd.log)"
fi

# 4. wait for the node to be idle; a node a test left down or drained is brought back.
for _ in $(seq 120); do
  state=$(node_state || true)
  case "$state" in
    idle|mixed|allocated) echo "ensure-slurm: node $NODE $state"; exit 0 ;;
    down*|drain*|fail*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
  esac
  sleep 0.5
done
die "node $NODE is '${state:-unknown}' after 60 s, not idle (see $HOME_DIR/log/slurmd.log)"
