#!/usr/bin/env bash
# End-to-end group benchmark: simulates a night of real-sized groups (96 antennas, 16 x 48
# channels, 24 integrations; set N_GROUPS, NPIX, CELL, RANKS) and times `contimg run`,
# reporting groups per hour and the per-stage times from summary.json.
#   bash benches/group.sh            # 1 group, 1 rank
#   RANKS=2 N_GROUPS=2 bash benches/group.sh
#   MS=1 bash benches/group.sh       # also times `contimg convert` (Measurement Set export)
#   PREFETCH=false N_GROUPS=3 bash benches/group.sh  # each group read only when needed
#   GPU=required bash benches/group.sh   # on a GPU node: the `gpu` feature, compute.gpu required
#   CONTIMG_BIN=path/contimg bash benches/group.sh  # a prebuilt binary (no cargo; one rank
#                                    # runs without mpirun when there is none)
#   WEIGHTING=briggs ROBUST=0.5 bash benches/group.sh  # imaging weights (default natural)
#   GAINS=off bash benches/group.sh  # unit gains: data in Jy, so the uncalibrated image shows
#                                    # the sources and CLEAN works as on calibrated data (the
#                                    # default, the telescope's raw scale with random antenna
#                                    # phases, images scrambled sources; a WORK dir's night is
#                                    # reused as it is)
set -euo pipefail
cd "$(dirname "$0")/.."
N_GROUPS=${N_GROUPS:-1}; RANKS=${RANKS:-1}; NPIX=${NPIX:-2400}; CELL=${CELL:-6.0}
N_ANT=${N_ANT:-96}; N_CHAN=${N_CHAN:-48}; NITER=${NITER:-1000}
WORK=${WORK:-$(mktemp -d)}; mkdir -p "$WORK"
FEATURES=""
[ "${MS:-0}" = 1 ] && FEATURES="ms"
[ -n "${GPU:-}" ] && FEATURES="${FEATURES:+$FEATURES,}gpu"
BIN=${CONTIMG_BIN:-./target/release/contimg}
[ -n "${CONTIMG_BIN:-}" ] || cargo build --release --quiet ${FEATURES:+--features $FEATURES}
cat > "$WORK/bench.yaml" <<YAML
input: {dir: $WORK/night}
output: {dir: $WORK/out}
imaging: {npix: $NPIX, cell_arcsec: $CELL, epsilon: 1.0e-4, niter: $NITER, weighting: ${WEIGHTING:-natural}, robust: ${ROBUST:-0.0}}
calibration: {enabled: false}
compute: {gpu: ${GPU:-auto}, prefetch: ${PREFETCH:-true}}
simulate: {n_groups: $N_GROUPS, n_antennas: $N_ANT, n_channels: $N_CHAN, n_random_sources: 5, gains: {enabled: $([ "${GAINS:-on}" = off ] && echo false || echo true)}}
YAML
[ -d "$WORK/night" ] || "$BIN" simulate --config "$WORK/bench.yaml" --out "$WORK/night"
du -sh "$WORK/night"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-$(( $(nproc) / RANKS > 0 ? $(nproc) / RANKS : 1 ))}
start=$(date +%s.%N)
LAUNCH=(mpirun -n "$RANKS" --bind-to none --oversubscribe)
[ "$RANKS" = 1 ] && ! command -v mpirun >/dev/null && LAUNCH=()
"${LAUNCH[@]}" "$BIN" run --config "$WORK/bench.yaml" >/dev/null 2>"$WORK/log" || { echo "contimg run failed:"; tail -20 "$WORK/log"; }
end=$(date +%s.%N)
python3 - "$WORK/out/summary.json" "$start" "$end" "$N_GROUPS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); wall = float(sys.argv[3]) - float(sys.argv[2]); n = int(sys.argv[4])
nvis = sum(g["n_vis"] for r in s["ranks"] for g in r["groups"])
print(f"groups {s['groups_ok']}/{n} ranks {s['n_ranks']} wall {wall:.1f} s -> {3600*s['groups_ok']/wall:.1f} groups/hour, {nvis/wall/1e6:.2f} M vis/s")
for r in s["ranks"]:
    print(f"  rank {r['rank']} ({r.get('compute', '?')}): " + ", ".join(f"{k} {v:.1f} s ({nvis/max(v,1e-9)/1e6/len(s['ranks']):.1f} M vis/s)" for k, v in r["stage_s"].items() if v > 0.05))
    if r.get("gpu"):
        u = r["gpu"]
        print(f"    {u['device']}: utilisation mean {u['utilization_mean_pct']:.0f} % (max {u['utilization_max_pct']} %), peak memory {u['memory_used_max_gib']:.1f} of {u['memory_total_gib']:.1f} GiB ({u['samples']} samples)")
PY
if [ "${MS:-0}" = 1 ]; then
  for spw in merged subbands; do
    start=$(date +%s.%N)
    "$BIN" convert --config "$WORK/bench.yaml" --output "$WORK/ms-$spw" --spectral-windows $spw 2>>"$WORK/log" | tail -1
    end=$(date +%s.%N)
    echo "  convert ($spw windows): $(python3 -c "print(f'{$end - $start:.1f}')") s, MS size $(du -sh "$WORK/ms-$spw/ms" | cut -f1)"
  done
fi
echo "work dir: $WORK"
