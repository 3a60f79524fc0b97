#!/usr/bin/env bash
# CI test on a real single-node Slurm (started and stopped here, see cluster.sh):
#  1. an archive campaign: slurm/submit_archive.sh over 3 tiny simulated nights (array
#     throttled to 2 at a time, 2 ranks per task under srun --mpi=pmix) and the final
#     summary job: every night complete with its images, archive_summary.json lists them;
#  2. resubmitting the campaign resumes it: complete nights are skipped, not redone;
#  3. slurm/night.sbatch runs one night on 2 ranks under srun.
# Needs root; scripts/setup.sh installs the Slurm and munge packages.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export CONTIMG=${CONTIMG:-$ROOT/target/release/contimg}
[ -x "$CONTIMG" ] || cargo build --release
WORK=$(mktemp -d /tmp/contimg-slurm.XXXXXX)
source tests/slurm/cluster.sh
trap 'cluster_stop "$WORK/cluster"' EXIT
cluster_start "$WORK/cluster"
echo "slurm up: $(sinfo -h -o '%P %D %c %T')"

fail() { echo "FAIL: $*"; for f in "$WORK"/*.log "$WORK"/products/*/run.log; do [ -f "$f" ] && { echo "== $f"; tail -20 "$f"; }; done; exit 1; }
wait_jobs() {  # job ids...
  for _ in $(seq 1 600); do
    [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ] && return 0
    sleep 1
  done
  fail "jobs $* still queued after 10 min: $(squeue)"
}

# Three tiny nights on consecutive dates.
: > "$WORK/nights.txt"
for d in 14 15 16; do
  cat > "$WORK/night-$d.yaml" <<YAML
station_table: $ROOT/configs/dsa110/DSA110_Station_Coordinates.csv
input: {n_subbands: 2}
imaging: {npix: 256, cell_arcsec: 20.0, niter: 200}
calibration: {enabled: false}
simulate: {start_time: "2026-03-${d}T05:00:00", n_groups: 2, n_subbands: 2, n_channels: 4, n_times: 6, n_antennas: 12, n_random_sources: 2}
YAML
  "$CONTIMG" simulate --config "$WORK/night-$d.yaml" --out "$WORK/nights/2026-03-$d" >/dev/null 2>&1
  echo "$WORK/nights/2026-03-$d" >> "$WORK/nights.txt"
done
export CONFIG=$WORK/night-14.yaml   # imaging/flagging settings for every night
cd "$WORK"

# 1. The campaign.
read -r array summary < <("$ROOT/slurm/submit_archive.sh" "$WORK/nights.txt" "$WORK/products" 2)
wait_jobs "$array" "$summary"
for d in 14 15 16; do
  out=$WORK/products/2026-03-$d
  "$CONTIMG" status "$out" >/dev/null || fail "night 2026-03-$d not complete: $("$CONTIMG" status "$out")"
  n=$(ls "$out"/images/*.restored.fits 2>/dev/null | wc -l)
  [ "$n" = 2 ] || fail "night 2026-03-$d: $n restored images, expected 2"
  grep -q '"n_ranks": 2' "$out/summary.json" || fail "night 2026-03-$d did not run on 2 ranks"
done
[ -s "$WORK/products/archive_summary.json" ] || fail "no archive_summary.json"
grep -q '"complete": 3' "$WORK/products/archive_summary.json" || fail "archive summary: $(cat "$WORK/products/archive_summary.txt")"
echo "ok: archive array over 3 nights complete, final summary written"
cat "$WORK/products/archive_summary.txt"

# 2. Resubmission resumes: nothing is redone.
before=$(stat -c %Y "$WORK"/products/*/summary.json | tr '\n' ' ')
read -r array2 summary2 < <("$ROOT/slurm/submit_archive.sh" "$WORK/nights.txt" "$WORK/products" 3)
wait_jobs "$array2" "$summary2"
after=$(stat -c %Y "$WORK"/products/*/summary.json | tr '\n' ' ')
[ "$before" = "$after" ] || fail "a complete night was processed again"
[ "$(grep -l 'already complete' "$WORK"/contimg-archive-"${array2%%;*}"_*.log | wc -l)" = 3 ] || fail "resubmitted tasks did not skip complete nights"
echo "ok: resubmitted campaign skipped the 3 complete nights"

# 3. One night job on 2 ranks.
job=$(sbatch --parsable --ntasks-per-node=2 --export=ALL,NIGHT_DIR="$WORK/nights/2026-03-15",OUT_DIR="$WORK/night-job" "$ROOT/slurm/night.sbatch")
wait_jobs "$job"
"$CONTIMG" status "$WORK/night-job" >/dev/null || fail "night job incomplete: $(cat "$WORK"/contimg-night-"$job".log)"
grep -q '"n_ranks": 2' "$WORK/night-job/summary.json" || fail "night job did not run on 2 ranks"
echo "ok: slurm/night.sbatch ran a night on 2 ranks under srun --mpi=pmix"
echo "slurm test passed"
