#!/usr/bin/env bash
# Group read benchmark: writes one full-size subband group with the simulator (96 antennas,
# 16 subbands x 48 channels, 24 integrations; contiguous uncompressed arrays as the correlator
# writes them), warms the page cache, then times
#   - `cat` of the 16 files to /dev/null (best of REPS),
#   - contimg's group read (examples/read_group.rs: headers + data + scatter), direct path,
#   - the same through the HDF5 library only (--library),
#   - in one process, a first read and a second into the first's buffers (--again: what a
#     run of same-shaped groups can do, with no fresh memory to fault in and zero),
# and prints the ratio read/cat, CPU time (user+sys: the machine may be shared) and peak RSS
# (/usr/bin/time). The wall times include process start, header reading and the scatter. Nothing is dropped
# from the page cache (that needs root on a quiet machine): these are warm-cache numbers.
#   bash benches/read_group.sh
#   WORK=/tmp/rg REPS=5 bash benches/read_group.sh    # reuse a simulated group
set -euo pipefail
cd "$(dirname "$0")/.."
N_ANT=${N_ANT:-96}; N_CHAN=${N_CHAN:-48}; REPS=${REPS:-3}
WORK=${WORK:-$(mktemp -d)}; mkdir -p "$WORK"
#   NO_BUILD=1 bash benches/read_group.sh              # use the binaries already in target/release
#   CONTIMG_BIN=DIR/contimg READ_GROUP_BIN=DIR/read_group bash benches/read_group.sh  # prebuilt
BIN=${CONTIMG_BIN:-./target/release/contimg}; RG=${READ_GROUP_BIN:-./target/release/examples/read_group}
if [ -z "${NO_BUILD:-}${CONTIMG_BIN:-}" ]; then
  cargo build --release --quiet
  cargo build --release --quiet --example read_group
fi
cat > "$WORK/bench.yaml" <<YAML
station_table: $PWD/configs/dsa110/DSA110_Station_Coordinates.csv
input: {dir: $WORK/night}
output: {dir: $WORK/out}
calibration: {enabled: false}
simulate: {n_groups: 1, n_antennas: $N_ANT, n_channels: $N_CHAN, n_random_sources: 2}
YAML
[ -d "$WORK/night" ] || "$BIN" simulate --config "$WORK/bench.yaml" --out "$WORK/night" >/dev/null
FILES=("$WORK"/night/*.hdf5)
echo "${#FILES[@]} files, $(du -shc "${FILES[@]}" | tail -1 | cut -f1); load $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
cat "${FILES[@]}" > /dev/null; cat "${FILES[@]}" > /dev/null
# Each measurement: /usr/bin/time's wall, user+sys CPU and peak RSS; the best wall of REPS.
# Where there is no /usr/bin/time (a bare GPU node), Python's rusage of the child instead.
timed() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%e %U %S %M" "$@" 2>&1 >/dev/null | tail -1
  else
    python3 -c "import resource, subprocess, sys, time
t = time.perf_counter(); subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f'{time.perf_counter() - t:.3f} {r.ru_utime:.3f} {r.ru_stime:.3f} {r.ru_maxrss}')" "$@"
  fi
}
measure() {
  for i in $(seq "$REPS"); do timed "$@"; done | sort -g | head -1
}
CAT=$(measure cat "${FILES[@]}")
DIRECT=$(measure "$RG" "${FILES[@]}")
LIB=$(measure "$RG" --library "${FILES[@]}")
"$RG" --again "${FILES[@]}"
python3 - "$CAT" "$DIRECT" "$LIB" <<'PY'
import sys
(cw, cu, cs, _), (dw, du, ds, dm), (lw, lu, ls, lm) = [[float(x) for x in a.split()] for a in sys.argv[1:4]]
print(f"warm cat: wall {cw:.2f} s, cpu {cu+cs:.2f} s")
print(f"direct read: wall {dw:.2f} s = {dw/cw:.2f} x cat, cpu {du+ds:.2f} s (user {du:.2f}, sys {ds:.2f}), peak RSS {dm/1048576:.2f} GiB")
print(f"library read: wall {lw:.2f} s = {lw/cw:.2f} x cat, cpu {lu+ls:.2f} s (user {lu:.2f}, sys {ls:.2f}), peak RSS {lm/1048576:.2f} GiB")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "work dir: $WORK"
