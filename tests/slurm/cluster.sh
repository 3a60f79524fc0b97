#!/usr/bin/env bash
# A real single-node Slurm on this machine, no systemd: munged, slurmctld and slurmd with a
# throw-away configuration under DIR.
#   source tests/slurm/cluster.sh; cluster_start DIR; ...; cluster_stop DIR
# Needs root and the packages slurm-wlm slurmctld slurmd slurm-client munge.

cluster_start() {
  local dir=$1
  mkdir -p "$dir"/{state,spool,log}
  # munge: a key if the package left none, then the daemon as its own user.
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 755 /run/munge
  if ! pgrep -x munged >/dev/null; then runuser -u munge -- /usr/sbin/munged; fi
  local cpus mem
  cpus=$(( $(nproc) < 4 ? 4 : $(nproc) ))   # declared: 2 ranks + a second array task on 2 cores
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=contimg-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  export SLURM_CONF=$dir/slurm.conf
  /usr/sbin/slurmctld
  /usr/sbin/slurmd -N localhost
  for _ in $(seq 1 100); do
    if sinfo -h -o '%T' 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'; then return 0; fi
    sleep 0.2
  done
  echo "slurm did not come up:"; sinfo; tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log"
  return 1
}

cluster_stop() {
  local dir=$1
  SLURM_CONF=$dir/slurm.conf scontrol shutdown >/dev/null 2>&1 || true
  for f in slurmd slurmctld; do
    [ -f "$dir/$f.pid" ] && kill "$(cat "$dir/$f.pid")" 2>/dev/null || true
  done
  sleep 0.5
}
