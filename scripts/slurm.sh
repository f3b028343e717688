#!/usr/bin/env bash
# A one-node Slurm cluster on this machine for the tests: Debian's munge, slurmctld and slurmd,
# a throwaway config folder (slurm.conf, topology.conf, gres.conf), free ports, pid files.
#   scripts/slurm.sh start [gres-mismatch]  → prints export lines: SLURM_CONF, SWITCHYARD_TEST_SLURM_DIR, SWITCHYARD_TEST_SLURM_NODE
#   scripts/slurm.sh stop DIR
# `gres-mismatch` configures the node with two GPUs it cannot back: Slurm drains it with
# "gres/gpu count reported lower than configured".
set -euo pipefail
# The daemons must not inherit a caller's pipes (a test reading this script's output until EOF
# would wait for them forever): close every descriptor but stdio and bash's own script (255).
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  if [ "$fd" -gt 2 ] && [ "$fd" -lt 255 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
cmd="${1:-start}"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm: installing Debian's slurmctld, slurmd, slurm-client and munge" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
case "$cmd" in
  start)
    mode="${2:-healthy}"
    dir=$(mktemp -d /tmp/switchyard-slurm.XXXXXX)
    chmod 755 "$dir"
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
    node=$(hostname -s)
    # munge: its own key, socket and pid in the folder.
    dd if=/dev/urandom bs=1 count=1024 of="$dir/munge/munge.key" status=none
    chown -R munge:munge "$dir/munge" 2>/dev/null || true
    chmod 700 "$dir/munge"; chmod 400 "$dir/munge/munge.key"
    # `env --default-signal`: the daemons answer SIGTERM even when the caller ignores it.
    runuser -u munge -- env --default-signal munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
      --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munge.seed" --force >/dev/null 2>&1
    gres_line=""
    [ "$mode" = gres-mismatch ] && gres_line="Gres=gpu:2"
    cat > "$dir/slurm.conf" <<CONF
ClusterName=sytest
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CryptoType=crypto/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
TopologyPlugin=topology/tree
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 State=UNKNOWN $gres_line
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    printf 'SwitchName=leaf0 Nodes=%s\n' "$node" > "$dir/topology.conf"
    : > "$dir/gres.conf"
    export SLURM_CONF="$dir/slurm.conf"
    env --default-signal slurmctld -f "$dir/slurm.conf" >"$dir/slurmctld.out" 2>&1
    env --default-signal slurmd -f "$dir/slurm.conf" >"$dir/slurmd.out" 2>&1
    # Wait until the controller answers and knows the node.
    for _ in $(seq 150); do
      scontrol show node -o 2>/dev/null | grep -q "NodeName=$node" && break
      sleep 0.2
    done
    scontrol show node -o 2>/dev/null | grep -q "NodeName=$node" || { tail -20 "$dir"/*.log >&2; exit 1; }
    echo "export SLURM_CONF=$dir/slurm.conf"
    echo "export SWITCHYARD_TEST_SLURM_DIR=$dir"
    echo "export SWITCHYARD_TEST_SLURM_NODE=$node"
    ;;
  stop)
    dir="${2:?usage: slurm.sh stop DIR}"
    pids=""
    for f in slurmd.pid slurmctld.pid munge/munged.pid; do
      [ -f "$dir/$f" ] && pids="$pids $(cat "$dir/$f")"
    done
    [ -n "$pids" ] && kill $pids 2>/dev/null || true
    # By their pids, with a deadline; what has not exited by then is killed.
    for _ in $(seq 30); do
      alive=""
      for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
      [ -z "$alive" ] && break
      sleep 0.1
    done
    [ -n "${alive:-}" ] && kill -9 $alive 2>/dev/null || true
    rm -rf "$dir"
    ;;
esac
