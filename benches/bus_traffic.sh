#!/usr/bin/env bash
# Bytes across the bus (host to device and back) of one group's `contimg run` with
# gpu: required, counted on the emulated driver (kernels/host/emulator.cpp with
# CONTIMG_EMULATOR_STATS=1), so it runs without a GPU. Two simulated groups that differ
# only in their integrations (N_TIMES and 2 x N_TIMES) give the traffic that grows with the
# visibilities (the difference, per visibility of both polarizations) apart from what a
# group costs whatever its size (images, PSF transforms, tables). Each size runs with the
# default outliers (fetched and put back every major cycle for their refit) and without.
#   bash benches/bus_traffic.sh
#   CONTIMG_BIN=/path/to/contimg bash benches/bus_traffic.sh   # another build (gpu feature)
# Needs NVRTC (scripts/python-env.sh's venv: scripts/test.sh's setup) and a C++20 compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
N_ANT=${N_ANT:-32}; N_CHAN=${N_CHAN:-16}; N_TIMES=${N_TIMES:-12}
WORK=${WORK:-$(mktemp -d)}; mkdir -p "$WORK"
BIN=${CONTIMG_BIN:-./target/release/contimg}
[ -n "${CONTIMG_BIN:-}" ] || cargo build --release --quiet --features gpu
EMU=$(bash scripts/emulated-gpu.sh)
PY=${CONTIMG_MS_PYTHON:-.venv/bin/python}
NVRTC_LIB=$("$PY" -c "import nvidia.cuda_nvrtc, os; print(os.path.join(list(nvidia.cuda_nvrtc.__path__)[0], 'lib'))")
cat > "$WORK/bus.yaml" <<YAML
station_table: $PWD/configs/dsa110/DSA110_Station_Coordinates.csv
input: {dir: $WORK/night, n_subbands: 4}
output: {dir: $WORK/out}
calibration: {enabled: false}
imaging: {npix: 512, cell_arcsec: 20.0, niter: 300, nterms: 1}
compute: {gpu: required, prefetch: false}
simulate:
  seed: 5
  n_groups: 1
  n_subbands: 4
  n_channels: $N_CHAN
  n_times: $N_TIMES
  n_antennas: $N_ANT
  n_random_sources: 6
  gains: {enabled: false}
  rfi: {enabled: false}
YAML
declare -A up down
for t in "$N_TIMES" $((2 * N_TIMES)); do
  [ -d "$WORK/night-$t" ] || "$BIN" simulate --config "$WORK/bus.yaml" --set simulate.n_times="$t" \
    --out "$WORK/night-$t" > /dev/null 2>&1
  for o in 0.01 0.999; do
    rm -rf "$WORK/out-$t-$o"
    line=$(LD_LIBRARY_PATH="$EMU:$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" CONTIMG_EMULATOR_STATS=1 \
      "$BIN" run --config "$WORK/bus.yaml" --set input.dir="$WORK/night-$t" \
      --set output.dir="$WORK/out-$t-$o" --set imaging.outlier_min_beam=$o 2>&1 | grep "emulated CUDA device: .* MB up")
    up[$t-$o]=$(echo "$line" | sed -E 's/.*: ([0-9.]+) MB up.*/\1/')
    down[$t-$o]=$(echo "$line" | sed -E 's/.*, ([0-9.]+) MB down.*/\1/')
    echo "$t integrations, outlier_min_beam $o: $line"
  done
done
# Visibilities (both polarizations) the second group has beyond the first.
nvis=$(( N_ANT * (N_ANT + 1) / 2 * N_TIMES * 4 * N_CHAN * 2 ))
for o in 0.01 0.999; do
  awk -v u1="${up[$N_TIMES-$o]}" -v u2="${up[$((2 * N_TIMES))-$o]}" -v d1="${down[$N_TIMES-$o]}" \
    -v d2="${down[$((2 * N_TIMES))-$o]}" -v n="$nvis" -v o="$o" 'BEGIN {
    printf "outlier_min_beam %s: %.1f bytes up and %.1f down per visibility; %.1f MB up and %.1f down a group whatever its size\n",
      o, (u2 - u1) * 1e6 / n, (d2 - d1) * 1e6 / n, 2 * u1 - u2, 2 * d1 - d2 }'
done
