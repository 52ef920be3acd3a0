#!/usr/bin/env bash
# A real, single-node SLURM cluster for CI (Debian 12, run as root).
#
#   .ci/slurm.sh start STATE_DIR   install (if missing) slurm-wlm + munge, start munged
#                                  (only if none answers), slurmctld and slurmd with a
#                                  slurm.conf in STATE_DIR; wait until partitions `cpu`
#                                  (default) and `gpu` are idle; write STATE_DIR/env.sh
#                                  and print its lines (`export SLURM_CONF=...`,
#                                  `export PATH=STATE_DIR/bin:$PATH`) on stdout.
#   .ci/slurm.sh stop STATE_DIR    kill exactly the daemons recorded in STATE_DIR/pids.
#
# Nothing is exported globally and nothing is written to /etc/slurm: clients find the
# cluster through SLURM_CONF (plus an srun wrapper on PATH, see write_srun_wrapper),
# e.g.  `. STATE_DIR/env.sh`  or  `eval "$(.ci/slurm.sh start DIR)"`.
# All state, spool, pid and log files live in STATE_DIR. Facts behind the settings:
# /work/shared/slurm/LOCAL-SLURM.md (no accounting -> MinJobAge=600 so that the
# snakemake executor can poll job states with squeue).
#
# Optional environment overrides:
#   SLURM_START_TIMEOUT  seconds to wait for idle partitions (default 60)
#   SLURM_NODE_CPUS      CPUs of the node (default: nproc)
#   SLURM_NODE_MEM_MB    RealMemory of the node (default: MemTotal minus headroom)
set -euo pipefail

log() { echo "[slurm.sh] $*" >&2; }
die() { echo "[slurm.sh] ERROR: $*" >&2; exit 1; }

usage() { die "usage: $0 {start|stop} STATE_DIR"; }

[[ $# -eq 2 ]] || usage
cmd=$1
if [[ "$cmd" == stop && ! -d "$2" ]]; then
  log "no $2: nothing to stop"
  exit 0
fi
mkdir -p "$2"
STATE_DIR=$(cd "$2" && pwd -P)
CONF="$STATE_DIR/slurm.conf"
PIDS="$STATE_DIR/pids"

# --- helpers -----------------------------------------------------------------------

# is PID alive and is its command NAME (and, for slurm daemons, started by us with
# our slurm.conf)? Guards against killing a recycled PID.
pid_is_ours() {
  local name=$1 pid=$2
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/comm ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]] || return 1
  if [[ "$name" != munged ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF" || return 1
  fi
  return 0
}

# running and not a zombie (an exited daemon whose parent does not reap it)
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n "$state" && "$state" != Z ]]
}

record_pid() { echo "$1 $2" >>"$PIDS"; }

# read a pid file written by a daemon that forks into the background
wait_pidfile() {
  local file=$1 name=$2
  for _ in $(seq 1 100); do
    if [[ -s "$file" ]]; then
      local pid
      pid=$(tr -dc '0-9' <"$file")
      if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        echo "$pid"
        return 0
      fi
    fi
    sleep 0.1
  done
  return 1
}

# cancel what still runs on this (throw-away) cluster, so that no slurmstepd or job
# process outlives the daemons
cancel_jobs() {
  local ids
  ids=$(SLURM_CONF="$CONF" timeout 20 squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %i 2>/dev/null) || return 0
  [[ -n "$ids" ]] || return 0
  log "cancelling jobs still on the cluster: $(echo "$ids" | tr '\n' ' ')"
  # shellcheck disable=SC2086  # one id per word
  SLURM_CONF="$CONF" timeout 20 scancel $ids 2>/dev/null || true
  for _ in $(seq 1 30); do
    [[ -z "$(SLURM_CONF="$CONF" timeout 20 squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ]] && return 0
    sleep 1
  done
  log "jobs still running after 30 s; stopping the daemons anyway"
}

stop_cluster() {
  [[ -f "$PIDS" ]] || { log "no $PIDS: nothing to stop"; return 0; }
  local name pid
  if [[ -f "$CONF" ]] && grep -q '^slurmctld ' "$PIDS"; then
    cancel_jobs
  fi
  # reverse order: slurmd, slurmctld, then munged (if we started it)
  tac "$PIDS" | while read -r name pid; do
    if pid_is_ours "$name" "$pid"; then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do
        alive "$pid" || break
        sleep 0.1
      done
      if alive "$pid"; then
        log "$name (pid $pid) still alive after 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    else
      log "$name (pid $pid) is not running (or not ours): skipped"
    fi
  done
  rm -f "$PIDS"
}

install_packages() {
  local missing=0 b
  for b in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged /usr/bin/sbatch /usr/bin/munge; do
    [[ -x "$b" ]] || missing=1
  done
  [[ $missing -eq 1 ]] || return 0
  [[ $(id -u) -eq 0 ]] || die "slurm-wlm/munge are missing and installing them needs root"
  log "installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >&2
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  if munge_ok; then
    log "a munge daemon already answers: using it (not recorded, will not be stopped)"
    return 0
  fi
  [[ -s /etc/munge/munge.key ]] || {
    log "creating /etc/munge/munge.key"
    mungekey --create --keyfile=/etc/munge/munge.key >&2
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  }
  mkdir -p /run/munge
  chown munge:munge /run/munge
  chmod 0755 /run/munge
  # a stale pid file or socket left by a killed munged makes a new one refuse to start
  local pidfile=/run/munge/munged.pid
  rm -f "$pidfile"
  log "starting munged"
  # run it as the `munge` user, as the packaged service does (avoids ownership warnings)
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force >&2
  else
    /usr/sbin/munged --force >&2
  fi
  local pid
  pid=$(wait_pidfile "$pidfile" munged) || die "munged did not start (see /var/log/munge/munged.log)"
  record_pid munged "$pid"
  for _ in $(seq 1 50); do munge_ok && return 0; sleep 0.1; done
  die "munged (pid $pid) runs but 'munge -n | unmunge' fails"
}

write_conf() {
  local cpus mem_mb total_mb headroom
  cpus=${SLURM_NODE_CPUS:-$(nproc)}
  if [[ -n "${SLURM_NODE_MEM_MB:-}" ]]; then
    mem_mb=$SLURM_NODE_MEM_MB
  else
    total_mb=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
    # headroom: 10 % of the memory, at least 1 GiB (slurmd drains a node that reports
    # less memory than RealMemory)
    headroom=$((total_mb / 10))
    ((headroom >= 1024)) || headroom=1024
    mem_mb=$((total_mb - headroom))
    ((mem_mb >= 1024)) || mem_mb=1024
  fi
  mkdir -p "$STATE_DIR/state" "$STATE_DIR/spool" "$STATE_DIR/log"
  cat >"$CONF" <<EOF
# written by .ci/slurm.sh for a throw-away one-node CI cluster
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# keep finished jobs visible to squeue/scontrol for 10 minutes: there is no
# accounting database, so the snakemake executor polls with squeue
MinJobAge=600
MailProg=/bin/true
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
NodeName=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
# same node: stands in for a GPU partition (no GRES here) so that routing is testable
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
EOF
  log "wrote $CONF (CPUs=$cpus RealMemory=$mem_mb)"
}

start_daemon() {
  local name=$1
  shift
  log "starting $name"
  if ! "/usr/sbin/$name" -f "$CONF" "$@" >>"$STATE_DIR/log/$name.stderr" 2>&1; then
    tail -n 20 "$STATE_DIR/log/$name.log" "$STATE_DIR/log/$name.stderr" >&2 2>/dev/null || true
    die "$name failed to start"
  fi
  local pid
  if ! pid=$(wait_pidfile "$STATE_DIR/$name.pid" "$name"); then
    tail -n 20 "$STATE_DIR/log/$name.log" "$STATE_DIR/log/$name.stderr" >&2 2>/dev/null || true
    die "$name did not come up (no live pid in $STATE_DIR/$name.pid)"
  fi
  record_pid "$name" "$pid"
}

wait_idle() {
  local timeout=${SLURM_START_TIMEOUT:-60} t0 out=""
  t0=$(date +%s)
  while :; do
    out=$(SLURM_CONF="$CONF" sinfo -h -o '%R %t' 2>/dev/null || true)
    if grep -qx 'cpu idle' <<<"$out" && grep -qx 'gpu idle' <<<"$out"; then
      log "partitions idle after $(($(date +%s) - t0)) s"
      return 0
    fi
    if (($(date +%s) - t0 >= timeout)); then
      log "sinfo said:"
      echo "$out" >&2
      tail -n 20 "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" >&2 2>/dev/null || true
      die "partitions cpu and gpu not idle after ${timeout} s (logs in $STATE_DIR/log)"
    fi
    sleep 1
  done
}

start_cluster() {
  # a previous (possibly failed) start in this STATE_DIR: stop what it left running
  if [[ -f "$PIDS" ]]; then
    log "found $PIDS from an earlier start: stopping those daemons first"
    stop_cluster
  fi
  install_packages
  start_munge
  # fresh controller/node state: no jobs or node states from an earlier run
  rm -rf "$STATE_DIR/state" "$STATE_DIR/spool"
  write_conf
  start_daemon slurmctld
  # -N: the node is called `localhost` in slurm.conf whatever the machine's hostname
  start_daemon slurmd -N localhost
  wait_idle
  write_srun_wrapper
  {
    echo "export SLURM_CONF=$CONF"
    echo "export PATH=$STATE_DIR/bin:\$PATH"
  } >"$STATE_DIR/env.sh"
  log "cluster up; clients need the lines below (also in $STATE_DIR/env.sh)"
  cat "$STATE_DIR/env.sh"
}

# The SLURM jobstep executor (snakemake-executor-plugin-slurm-jobstep 0.6.1) runs each
# job inside its allocation as `srun ... python -m snakemake ...` with every SLURM_*
# variable except the job identity removed from srun's environment, SLURM_CONF
# included. On a real cluster srun then reads /etc/slurm/slurm.conf (or the configless
# cache); here the config lives in STATE_DIR, and srun dies with "Could not establish a
# configuration source". Rather than write /etc/slurm/slurm.conf (global), put an
# `srun` first on the PATH of the clients (env.sh; sbatch --export=ALL carries PATH into
# the jobs) that restores SLURM_CONF and execs the real srun.
write_srun_wrapper() {
  local real_srun
  real_srun=$(PATH=/usr/bin:/bin:/usr/sbin:/sbin command -v srun) || die "srun not found"
  mkdir -p "$STATE_DIR/bin"
  cat >"$STATE_DIR/bin/srun" <<EOF
#!/bin/sh
# written by .ci/slurm.sh: see write_srun_wrapper there
: "\${SLURM_CONF:=$CONF}"
export SLURM_CONF
exec $real_srun "\$@"
EOF
  chmod +x "$STATE_DIR/bin/srun"
}

case "$cmd" in
  start) start_cluster ;;
  stop) stop_cluster ;;
  *) usage ;;
esac
