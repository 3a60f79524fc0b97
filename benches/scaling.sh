#!/usr/bin/env bash
# Strong and weak scaling of `contimg run` over MPI ranks: a results table (CSV and
# Markdown) and a plot (SVG: groups per hour and parallel efficiency against ranks).
#   bash benches/scaling.sh                     # ranks 1 2 on this machine (mpirun)
#   RANKS="1 2 4 8" GROUPS_STRONG=16 GROUPS_PER_RANK=2 THREADS=8 bash benches/scaling.sh
# Under Slurm (slurm/scaling.sbatch) ranks are launched with srun --mpi=pmix, else mpirun.
# Strong: GROUPS_STRONG groups on R ranks, efficiency T(1) / (R T(R)). Weak: R x
# GROUPS_PER_RANK groups, efficiency T(1) / T(R). Each rank runs THREADS rayon threads
# (default: cores / the largest rank count). Group size: N_ANT antennas, N_CHAN channels per
# subband (16 subbands, 24 integrations), NPIX image, NITER CLEAN iterations.
set -euo pipefail
cd "$(dirname "$0")/.."
RANKS=${RANKS:-"1 2"}
GROUPS_STRONG=${GROUPS_STRONG:-4}; GROUPS_PER_RANK=${GROUPS_PER_RANK:-2}
N_ANT=${N_ANT:-24}; N_CHAN=${N_CHAN:-12}; NPIX=${NPIX:-512}; CELL=${CELL:-15.0}; NITER=${NITER:-200}
max_r=$(for r in $RANKS; do echo "$r"; done | sort -n | tail -1)
THREADS=${THREADS:-$(( $(nproc) / max_r > 0 ? $(nproc) / max_r : 1 ))}
WORK=${WORK:-$(mktemp -d)}; mkdir -p "$WORK"
OUT=${OUT:-benches/scaling-results}; mkdir -p "$OUT"
[ -x target/release/contimg ] || cargo build --release --quiet
cargo build --release --quiet --example scaling_plot
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 RAYON_NUM_THREADS=$THREADS

night() {  # groups -> night directory (simulated once)
  local n=$1 d=$WORK/night-$1
  if [ ! -d "$d" ]; then
    cat > "$WORK/sim-$n.yaml" <<YAML
simulate: {n_groups: $n, n_antennas: $N_ANT, n_channels: $N_CHAN, n_random_sources: 4}
YAML
    ./target/release/contimg simulate --config "$WORK/sim-$n.yaml" --out "$d" >/dev/null 2>&1
  fi
  echo "$d"
}
launch() {  # ranks, args...
  local r=$1; shift
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    srun --mpi=pmix --cpu-bind=none -n "$r" --cpus-per-task="$THREADS" "$@"
  else
    mpirun -n "$r" --bind-to none --oversubscribe "$@"
  fi
}
cat > "$WORK/run.yaml" <<YAML
imaging: {npix: $NPIX, cell_arcsec: $CELL, niter: $NITER}
calibration: {enabled: false}
YAML

csv=$OUT/scaling.csv
echo "mode,ranks,threads,groups,wall_s,groups_per_hour,efficiency" > "$csv"
for mode in strong weak; do
  t1=""
  for r in $RANKS; do
    if [ $mode = strong ]; then g=$GROUPS_STRONG; else g=$(( GROUPS_PER_RANK * r )); fi
    d=$(night "$g")
    rm -rf "$WORK/out"
    start=$(date +%s.%N)
    launch "$r" ./target/release/contimg run --config "$WORK/run.yaml" --input "$d" --output "$WORK/out" >"$WORK/log-$mode-$r" 2>&1 \
      || { echo "run failed ($mode, $r ranks): see $WORK/log-$mode-$r"; exit 1; }
    wall=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")
    [ -n "$t1" ] || t1=$wall
    eff=$(python3 -c "t1=$t1; t=$wall; r=$r; print(f'{(t1 / (r * t)) if \"$mode\" == \"strong\" else (t1 / t):.3f}')")
    gph=$(python3 -c "print(f'{3600 * $g / $wall:.1f}')")
    echo "$mode,$r,$THREADS,$g,$wall,$gph,$eff" | tee -a "$csv"
  done
done
{
  echo "| mode | ranks | threads/rank | groups | wall (s) | groups/hour | efficiency |"
  echo "|---|---|---|---|---|---|---|"
  tail -n +2 "$csv" | while IFS=, read -r m r t g w gph e; do echo "| $m | $r | $t | $g | $w | $gph | $e |"; done
} > "$OUT/scaling.md"
./target/release/examples/scaling_plot "$csv" "$OUT/scaling.svg"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >> "$OUT/scaling.md"
cat "$OUT/scaling.md"
