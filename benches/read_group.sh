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
elif [ ! -x "$RG" ] && [ -z "${READ_GROUP_BIN:-}" ]; then
  cargo build --release --quiet --example read_group   # a prebuilt contimg without read_group
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
# Each measurement: /usr/bin/time's wall, user+sys CPU and peak RSS of the process; the best
# wall of REPS. Where there is no /usr/bin/time (a bare GPU node), Python's rusage of the
# child instead. What the command prints goes to $WORK/LOG.out (read_group's own timings), or
# to /dev/null for LOG '-'.
timed() {
  local log=$1; shift
  local out=/dev/null
  [ "$log" = - ] || out="$WORK/$log.out"
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/.time" "$@" >>"$out" 2>/dev/null
    tail -1 "$WORK/.time"
  else
    python3 -c "import resource, subprocess, sys, time
t = time.perf_counter(); out = open(sys.argv[1], 'a')
subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.DEVNULL, check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f'{time.perf_counter() - t:.3f} {r.ru_utime:.3f} {r.ru_stime:.3f} {r.ru_maxrss}')" "$out" "$@"
  fi
}
measure() {
  local log=$1; shift
  [ "$log" = - ] || rm -f "$WORK/$log.out"
  for i in $(seq "$REPS"); do timed "$log" "$@"; done | sort -g | head -1
}
CAT=$(measure - cat "${FILES[@]}")
# read_group times its own read (headers, data, scatter: what the pipeline waits for), and
# with --again a second read into the first one's buffers; the process's wall adds start-up
# and the release of 1.7 GB at exit.
DIRECT=$(measure direct "$RG" --again "${FILES[@]}")
LIB=$(measure library "$RG" --library "${FILES[@]}")
python3 - "$CAT" "$DIRECT" "$LIB" "$WORK/direct.out" "$WORK/library.out" <<'PY'
import re, sys
(cw, cu, cs, _), (dw, du, ds, dm), (lw, lu, ls, lm) = [[float(x) for x in a.split()] for a in sys.argv[1:4]]
def best(path, again):
    ts = [float(m.group(1)) for m in re.finditer(r"^([0-9.]+) s( \(again)?", open(path).read(), re.M)
          if bool(m.group(2)) == again]
    return min(ts) if ts else float("nan")
first, again, lib = best(sys.argv[4], False), best(sys.argv[4], True), best(sys.argv[5], False)
print(f"warm cat: wall {cw:.2f} s, cpu {cu+cs:.2f} s")
cw = cw or float("nan")  # a group too small for time's 10 ms: no ratio
print(f"direct read: wall {first:.2f} s = {first/cw:.2f} x cat (into fresh buffers; process wall {dw:.2f} s, cpu {du+ds:.2f} s incl. the second read, peak RSS {dm/1048576:.2f} GiB)")
print(f"direct read into reused buffers: wall {again:.2f} s = {again/cw:.2f} x cat")
print(f"library read: wall {lib:.2f} s = {lib/cw:.2f} x cat (process wall {lw:.2f} s, cpu {lu+ls:.2f} s, peak RSS {lm/1048576:.2f} GiB)")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "work dir: $WORK"
