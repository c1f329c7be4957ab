#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests of sweeps on Slurm: Debian's
# slurm-wlm and munge, this host as both controller and compute node (all its CPUs,
# proctrack/linuxproc, no cgroups, no accounting database), its state under
# $SLURM_LOCAL_DIR (default /tmp/rudder-slurm). Nothing listens beyond this host.
#
# Usage: tools/slurm-local.sh start|stop|status
#   start   installs the packages if missing (apt-get, with sudo when not root),
#           writes the configuration, starts munged, slurmctld and slurmd, and waits
#           until sinfo shows the node idle
#   stop    cancels every job and stops the daemons
#   status  sinfo's line for the node (exit 1 when the cluster is not up)
set -euo pipefail

dir=${SLURM_LOCAL_DIR:-/tmp/rudder-slurm}
node=$(hostname -s)
conf=/etc/slurm/slurm.conf
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

up() {
  sinfo -h -N -n "$node" -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

start() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge >/dev/null
  fi
  $sudo mkdir -p "$dir"/ctld "$dir"/d "$dir"/log /etc/slurm /etc/munge /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    $sudo dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  $sudo chown -R munge:munge /etc/munge /run/munge 2>/dev/null || true
  $sudo chmod 0400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || $sudo -u munge munged 2>/dev/null || $sudo munged --force
  local cpus mem
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
  $sudo tee "$conf" >/dev/null <<CONF
ClusterName=rudder
SlurmctldHost=$node
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
  pgrep -x slurmctld >/dev/null || $sudo slurmctld -c
  pgrep -x slurmd >/dev/null || $sudo slurmd
  for _ in $(seq 1 60); do
    if up; then
      status
      return 0
    fi
    scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  echo "slurm-local: the node did not come up; see $dir/log" >&2
  exit 1
}

stop() {
  scancel --user="$(id -un)" >/dev/null 2>&1 || true
  $sudo pkill -x slurmd 2>/dev/null || true
  $sudo pkill -x slurmctld 2>/dev/null || true
  $sudo pkill -x munged 2>/dev/null || true
}

status() {
  if up; then
    sinfo -N -n "$node" -o '%N %T %c %m'
  else
    echo "slurm-local: not up" >&2
    return 1
  fi
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: tools/slurm-local.sh start|stop|status" >&2; exit 2 ;;
esac
