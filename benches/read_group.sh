#!/usr/bin/env bash
# Group read benchmark: writes one full-size subband group with the simulator (96 antennas,
# 16 subbands x 48 channels, 24 integrations; contiguous uncompressed arrays as the correlator
# writes them), warms the page cache, then times
#   - `cat` of the 16 files to /dev/null (best of REPS),
#   - contimg's group read (examples/read_group.rs: headers + data + scatter), direct path,
#   - the same through the HDF5 library only (--library),
# and prints the ratio read/cat and each read's peak RSS (/usr/bin/time -v). Nothing is dropped
# from the page cache (that needs root on a quiet machine): these are warm-cache numbers.
#   bash benches/read_group.sh
#   WORK=/tmp/rg REPS=5 bash benches/read_group.sh    # reuse a simulated group
set -euo pipefail
cd "$(dirname "$0")/.."
N_ANT=${N_ANT:-96}; N_CHAN=${N_CHAN:-48}; REPS=${REPS:-3}
WORK=${WORK:-$(mktemp -d)}; mkdir -p "$WORK"
#   NO_BUILD=1 bash benches/read_group.sh              # use the binaries already in target/release
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --quiet
  cargo build --release --quiet --example read_group
fi
BIN=./target/release/contimg; RG=./target/release/examples/read_group
cat > "$WORK/bench.yaml" <<YAML
station_table: configs/dsa110/DSA110_Station_Coordinates.csv
input: {dir: $WORK/night}
output: {dir: $WORK/out}
calibration: {enabled: false}
simulate: {n_groups: 1, n_antennas: $N_ANT, n_channels: $N_CHAN, n_random_sources: 2}
YAML
[ -d "$WORK/night" ] || "$BIN" simulate --config "$WORK/bench.yaml" --out "$WORK/night" >/dev/null
FILES=("$WORK"/night/*.hdf5)
echo "${#FILES[@]} files, $(du -shc "${FILES[@]}" | tail -1 | cut -f1); load $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
cat "${FILES[@]}" > /dev/null; cat "${FILES[@]}" > /dev/null
best() { sort -g | head -1; }
CAT=$(for i in $(seq "$REPS"); do s=$(date +%s.%N); cat "${FILES[@]}" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; done | best)
run() {  # prints best wall of REPS runs (the example's own timing) and the peak RSS of the last
  local t rss
  t=$(for i in $(seq "$REPS"); do "$RG" "$@" "${FILES[@]}" | cut -d' ' -f1; done | best)
  rss=$( { /usr/bin/time -v "$RG" "$@" "${FILES[@]}" >/dev/null; } 2>&1 | awk '/Maximum resident/ {print $6}')
  echo "$t $rss"
}
read -r DIRECT DRSS < <(run)
read -r LIB LRSS < <(run --library)
"$RG" "${FILES[@]}"
python3 - "$CAT" "$DIRECT" "$DRSS" "$LIB" "$LRSS" <<'PY'
import sys
cat, d, drss, lib, lrss = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"warm cat {cat:.3f} s")
print(f"direct read {d:.3f} s = {d/cat:.2f} x cat, peak RSS {drss/1048576:.2f} GiB")
print(f"library read {lib:.3f} s = {lib/cat:.2f} x cat, peak RSS {lrss/1048576:.2f} GiB")
PY
echo "work dir: $WORK"
