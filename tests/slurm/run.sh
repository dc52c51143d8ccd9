#!/bin/sh
# Issue 16: a sweep on a real Slurm, byte for byte the single-machine report.
#
# Starts a single-node Slurm on localhost (munge, slurmctld, slurmd; installed from the Debian
# packages when missing, and removed again at the end), then:
#   1. runs tests/slurm/spec.json on this machine (the reference);
#   2. submits it with `lpsim sweep --slurm --shards 4 --submit`, waits for the merge job and
#      checks results.csv, results.json and report.md are byte-identical to the reference;
#   3. submits it again into a fresh directory, cancels one array task mid-run (after some of
#      its runs are stored), checks the merge never ran, resubmits, and checks that the stored
#      runs were reused (nothing lost) and the merged results equal the reference.
# Every daemon it starts is stopped, every file it writes is under one temporary directory, and
# packages it installed are purged. Where Slurm is missing and cannot be installed (not root, no
# apt-get, no network) it says so and exits 0 without testing.
#
# Usage: sh tests/slurm/run.sh   (after `cargo build --release`; LPSIM overrides the binary)
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LPSIM=${LPSIM:-$ROOT/target/release/lpsim}
SPEC=$ROOT/tests/slurm/spec.json
PACKAGES="slurmctld slurmd slurm-client munge"

say() { echo "slurm test: $*"; }
# Purge exactly the packages this script installed (those not there before it), then nothing is
# left of them.
uninstall() {
    if [ -n "$INSTALLED" ]; then
        new=$(packages | comm -13 "$BEFORE" -)
        say "removing what was installed: $(echo $new)"
        [ -z "$new" ] || apt-get purge -y -q $new >/dev/null 2>&1 || true
    fi
    rm -f "$BEFORE"
}
skip() { say "SKIPPED: $*"; uninstall; exit 0; }

[ -x "$LPSIM" ] || { say "no $LPSIM: build it first (cargo build --release)"; exit 1; }

INSTALLED=""
BEFORE=$(mktemp /tmp/lpsim-slurm-packages.XXXXXX)
# The packages installed (or removed with their configuration kept), by name.
packages() {
    dpkg-query -W -f '${db:Status-Status} ${Package}\n' 2>/dev/null \
        | awk '$1 != "not-installed" { print $2 }' | sort
}
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null \
    || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    [ "$(id -u)" = 0 ] || skip "Slurm is not installed and installing it needs root"
    command -v apt-get >/dev/null || skip "Slurm is not installed and there is no apt-get"
    say "installing $PACKAGES"
    export DEBIAN_FRONTEND=noninteractive
    packages >"$BEFORE"
    INSTALLED=yes
    install="apt-get install -y -q --no-install-recommends $PACKAGES"
    if ! $install >/tmp/lpsim-slurm-apt.log 2>&1; then
        apt-get update -q >>/tmp/lpsim-slurm-apt.log 2>&1 || true
        $install >>/tmp/lpsim-slurm-apt.log 2>&1 \
            || skip "cannot install $PACKAGES (see /tmp/lpsim-slurm-apt.log)"
    fi
fi

WORK=$(mktemp -d /tmp/lpsim-slurm.XXXXXX)
PIDS=""
cleanup() {
    status=$?
    if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
        scancel --quiet --user="$(id -un)" 2>/dev/null || true
    fi
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    if [ "$status" != 0 ]; then
        say "FAILED; logs:"
        for f in "$WORK"/*.log "$WORK"/*/slurm/*.log; do
            [ -f "$f" ] && { echo "== $f"; tail -n 20 "$f"; }
        done
    fi
    rm -rf "$WORK"
    uninstall
    exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

HOST=$(hostname -s)
CPUS=$(nproc)
ME=$(id -un)
mkdir -p "$WORK/state" "$WORK/spool"

# munge with a key of our own and a socket in $WORK (nothing under /etc or /run is touched).
dd if=/dev/urandom of="$WORK/munge.key" bs=1024 count=1 2>/dev/null
chmod 0400 "$WORK/munge.key"
munged --force --key-file="$WORK/munge.key" --socket="$WORK/munge.sock" \
    --pid-file="$WORK/munged.pid" --log-file="$WORK/munged.log" --seed-file="$WORK/munged.seed" \
    --foreground >"$WORK/munged.out" 2>&1 &
PIDS="$PIDS $!"

cat >"$WORK/slurm.conf" <<EOF
ClusterName=lpsimtest
SlurmctldHost=$HOST
SlurmUser=$ME
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$WORK/munge.sock
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
NodeName=$HOST CPUs=$CPUS State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$WORK/slurm.conf"

sleep 1
slurmctld -D -i -f "$SLURM_CONF" >"$WORK/slurmctld.out" 2>&1 &
PIDS="$PIDS $!"
slurmd -D -f "$SLURM_CONF" >"$WORK/slurmd.out" 2>&1 &
PIDS="$PIDS $!"

# Wait for the node to be idle.
n=0
until [ "$(sinfo -h -o %T 2>/dev/null | head -n 1)" = idle ]; do
    n=$((n + 1))
    [ $n -lt 60 ] || { say "the Slurm node never became idle"; sinfo || true; exit 1; }
    sleep 1
done
say "Slurm up on $HOST with $CPUS CPUs"

# The state of job $1 (COMPLETED, PENDING, ...), from scontrol.
state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1; }

# Wait until job $1 has left the queue (at most $2 seconds); prints its final state.
wait_job() {
    t=0
    while squeue -h -j "$1" 2>/dev/null | grep -q .; do
        t=$((t + 1))
        [ $t -lt "$2" ] || { say "job $1 still queued after $2 s"; squeue || true; return 1; }
        sleep 1
    done
    state "$1"
}

# Submit the sweep into $1; sets ARRAY and MERGE to the job ids.
submit() {
    out=$("$LPSIM" sweep "$SPEC" --out "$1" --slurm --shards 4 --cpus 1 --submit)
    echo "$out"
    ARRAY=$(echo "$out" | sed -n 's/.*submitted job array \([0-9]*\).*/\1/p')
    MERGE=$(echo "$out" | sed -n 's/.*merge job \([0-9]*\).*/\1/p')
    [ -n "$ARRAY" ] && [ -n "$MERGE" ] || { say "no job ids in: $out"; exit 1; }
}

same_results() {
    for f in results.csv results.json report.md; do
        cmp "$WORK/single/$f" "$1/$f" || { say "$1/$f differs from the single-machine $f"; exit 1; }
    done
}

cd "$ROOT"
say "1. the single-machine reference"
"$LPSIM" sweep "$SPEC" --out "$WORK/single" --jobs 2 >"$WORK/single.log" 2>&1

say "2. a job array of 4 shards and the merge"
submit "$WORK/cluster"
s=$(wait_job "$MERGE" 300)
[ "$s" = COMPLETED ] || { say "merge job $MERGE ended $s"; exit 1; }
same_results "$WORK/cluster"
say "   merged results are byte-identical to the single-machine sweep"

say "3. one task cancelled mid-run, then resubmitted"
submit "$WORK/killed"
# Cancel task 1 once it has stored at least one run (its log says 'done').
t=0
until grep -q "done in" "$WORK/killed/slurm/shard-1.log" 2>/dev/null; do
    t=$((t + 1))
    [ $t -lt 300 ] || { say "task 1 never finished a run"; exit 1; }
    sleep 0.2
done
scancel "${ARRAY}_1"
wait_job "$ARRAY" 300 >/dev/null
s=$(state "$MERGE")
case "$s" in
    PENDING | CANCELLED) scancel "$MERGE" 2>/dev/null || true ;;
    *) say "the merge job ran ($s) although a task was cancelled"; exit 1 ;;
esac
stored=$(ls "$WORK/killed/runs" | grep -c '^[0-9a-f]*\.json$' || true)
[ -f "$WORK/killed/results.csv" ] && { say "results written before the merge"; exit 1; }
submit "$WORK/killed"
s=$(wait_job "$MERGE" 300)
[ "$s" = COMPLETED ] || { say "merge job $MERGE ended $s"; exit 1; }
reused=$(cat "$WORK"/killed/slurm/shard-*.log | sed -n 's/^shard .* \([0-9]*\) reused.*/\1/p' | awk '{s += $1} END {print s + 0}')
[ "$reused" -ge "$stored" ] && [ "$stored" -gt 0 ] \
    || { say "the resubmission reused $reused runs of the $stored stored"; exit 1; }
same_results "$WORK/killed"
say "   $stored runs stored before the cancel were reused; results byte-identical"
say "passed"
