#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the SLURM sweep test (tests/spine/test_slurm.py) or to try
# `hydra/launcher=slurm` before a real cluster. Needs root and Debian's slurm-wlm + munge
# (apt-get install -y slurm-wlm munge). Everything lives under $AAEXP_SLURM_DIR (default /tmp/aaexp-slurm);
# clients find it through SLURM_CONF, which this prints.
#   scripts/local_slurm.sh start    # prints: export SLURM_CONF=...
#   scripts/local_slurm.sh stop
set -euo pipefail
DIR=${AAEXP_SLURM_DIR:-/tmp/aaexp-slurm}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)

stop() {
  for d in slurmd slurmctld; do
    if [ -f "$DIR/$d.pid" ]; then kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true; rm -f "$DIR/$d.pid"; fi
  done
  if [ -f "$DIR/munge/munged.pid" ]; then kill "$(cat "$DIR/munge/munged.pid")" 2>/dev/null || true; fi
  # a job step's slurmstepd outlives a stopped slurmd (it waits to report): end this cluster's ones, by their folder
  for pid in $(pgrep -x slurmstepd || true); do
    case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in "$DIR"*) kill -9 "$pid" 2>/dev/null || true ;; esac  # it ignores SIGTERM
  done
}

start() {
  for b in munged slurmctld slurmd sbatch; do
    command -v "$b" >/dev/null || { echo "local_slurm: $b not found (apt-get install -y slurm-wlm munge)" >&2; exit 3; }
  done
  [ "$(id -u)" = 0 ] || { echo "local_slurm: needs root (slurmd runs jobs as their user)" >&2; exit 3; }
  stop
  mkdir -p "$DIR"/{state,spool,log,munge}
  chmod 755 "$DIR"   # munged runs as the munge user: it must reach its folder
  # munge: its own key and socket under $DIR, so a system munged (if any) is left alone
  [ -f "$DIR/munge/munge.key" ] || { dd if=/dev/urandom bs=1 count=1024 of="$DIR/munge/munge.key" status=none; }
  chown -R munge:munge "$DIR/munge"; chmod 700 "$DIR/munge"; chmod 400 "$DIR/munge/munge.key"
  runuser -u munge -- munged --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/seed" --force
  CPUS=$(nproc); MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > "$CONF" <<CONF
ClusterName=aaexp-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${AAEXP_SLURMCTLD_PORT:-16817}
SlurmdPort=${AAEXP_SLURMD_PORT:-16818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=30
SchedulerType=sched/backfill
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$CONF
  slurmctld -f "$CONF"
  slurmd -f "$CONF"
  for _ in $(seq 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      echo "export SLURM_CONF=$CONF"; return 0
    fi
    sleep 1
  done
  echo "local_slurm: the node did not become idle in 60 s; see $DIR/log/" >&2; sinfo >&2 || true; exit 4
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
