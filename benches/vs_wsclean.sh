#!/usr/bin/env bash
# contimg's imaging against WSClean on one simulated group at matched parameters (issue 20
# item 4). Prints each tool's wall time and peak RSS (/usr/bin/time -v), contimg's per-stage
# times (summary.json), their ratio, contimg's peak RSS over the group's visibility bytes
# (issue 20 item 3), and both restored images against the truth (benches/compare_images.py:
# each source's peak and position, off-source rms, the restoring beams).
#
#   bash benches/vs_wsclean.sh                                   # full-size group (96 ant x 768 ch)
#   N_ANT=32 N_CHAN=8 bash benches/vs_wsclean.sh                 # a reduced group
#   NIGHT=dir bash benches/vs_wsclean.sh                         # an existing night (first group)
#   WSCLEAN_ARGS="-use-wgridder" bash benches/vs_wsclean.sh      # WSClean's wgridder instead
#
# Settings (env): NPIX 2048, CELL 6 (arcsec), ROBUST 0 (Briggs), NITER 1000, AUTO_THRESHOLD 3,
# MGAIN 0.8, THREADS 2, EPS 1e-4 (contimg's gridding epsilon); the group: N_ANT 96, N_CHAN 48
# per subband, N_TIMES 24, N_SRC 5, SEED 1. Calibration and flagging are off for both (the
# simulated group has no gain errors and no RFI; the MS's FLAG column marks only NaN/zero
# samples, which contimg drops as well).
#
# contimg images the UVH5 files (its input); WSClean the Measurement Set written from them by
# `contimg convert` (one merged spectral window, no autocorrelations, rephased to the group's
# centre). Needs: .venv (astropy, numpy, scipy: pyuvdata's dependency), /usr/bin/wsclean, a contimg built with
# `--features ms` (built here unless CONTIMG is set). Results: $WORK/results.md, logs in
# $WORK/logs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${WORK:-bench-out/vs_wsclean}
N_ANT=${N_ANT:-96}; N_CHAN=${N_CHAN:-48}; N_TIMES=${N_TIMES:-24}; N_SRC=${N_SRC:-5}; SEED=${SEED:-1}
NPIX=${NPIX:-2048}; CELL=${CELL:-6}; ROBUST=${ROBUST:-0}; NITER=${NITER:-1000}
AUTO_THRESHOLD=${AUTO_THRESHOLD:-3}; MGAIN=${MGAIN:-0.8}; THREADS=${THREADS:-2}; EPS=${EPS:-1e-4}
WSCLEAN=${WSCLEAN:-/usr/bin/wsclean}
WSCLEAN_ARGS=${WSCLEAN_ARGS:-}
mkdir -p "$WORK/logs"
WORK=$(cd "$WORK" && pwd)
NIGHT=${NIGHT:-$WORK/night}
TIME=(/usr/bin/time -v)
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 1; }
[ -x "$WSCLEAN" ] || { echo "wsclean not found at $WSCLEAN (scripts/setup-peers.sh)" >&2; exit 1; }

if [ -z "${CONTIMG:-}" ]; then
  nice cargo build --release --features ms >"$WORK/logs/build.log" 2>&1 \
    || { echo "build failed: $WORK/logs/build.log" >&2; exit 1; }
  CONTIMG=target/release/contimg
fi

# (1) the group: no gain errors, no RFI, thermal noise on
cat >"$WORK/simulate.yaml" <<EOF
simulate:
  seed: $SEED
  n_groups: 1
  n_antennas: $N_ANT
  n_channels: $N_CHAN
  n_times: $N_TIMES
  n_random_sources: $N_SRC
  gains: {enabled: false}
  rfi: {enabled: false}
  noise: {enabled: true}
EOF
if [ ! -f "$NIGHT/truth.json" ]; then
  echo "== simulating one group ($N_ANT antennas, 16 x $N_CHAN channels, $N_TIMES integrations) in $NIGHT"
  "$CONTIMG" simulate --config "$WORK/simulate.yaml" --out "$NIGHT" >"$WORK/logs/simulate.log" 2>&1
fi
NIGHT=$(cd "$NIGHT" && pwd)
echo "   $(du -sh "$NIGHT" | cut -f1) of UVH5"

# (2) the Measurement Set
cat >"$WORK/convert.yaml" <<EOF
input: {dir: $NIGHT}
output:
  dir: $WORK/convert
  resume: false
  ms: {spectral_windows: merged, autocorrelations: false}
calibration: {enabled: false}
flagging: {enabled: false}
EOF
rm -rf "$WORK/convert"
echo "== contimg convert"
"${TIME[@]}" -o "$WORK/logs/convert.time" "$CONTIMG" convert --config "$WORK/convert.yaml" \
  >"$WORK/logs/convert.log" 2>&1 || { tail "$WORK/logs/convert.log"; exit 1; }
MS=$(ls -d "$WORK"/convert/ms/*.ms | head -1)
echo "   $(du -sh "$MS" | cut -f1) MS"

# Each tool starts with its input in the page cache (read once just before), so that neither
# pays for disk reads the other does not (a VM whose host reclaims cold pages may have
# evicted files written minutes earlier).
warm() { find "$@" -type f -exec cat {} + >/dev/null; }

# (3) WSClean
rm -rf "$WORK/wsclean"; mkdir -p "$WORK/wsclean"
warm "$MS"
echo "== wsclean ($NPIX x ${CELL}\", briggs $ROBUST, niter $NITER, auto-threshold $AUTO_THRESHOLD, mgain $MGAIN, -j $THREADS $WSCLEAN_ARGS)"
# shellcheck disable=SC2086
"${TIME[@]}" -o "$WORK/logs/wsclean.time" "$WSCLEAN" -name "$WORK/wsclean/img" \
  -size "$NPIX" "$NPIX" -scale "${CELL}asec" -weight briggs "$ROBUST" -niter "$NITER" \
  -auto-threshold "$AUTO_THRESHOLD" -mgain "$MGAIN" -gain 0.1 -j "$THREADS" -pol I \
  -data-column DATA -no-update-model-required $WSCLEAN_ARGS "$MS" \
  >"$WORK/logs/wsclean.log" 2>&1 || { tail "$WORK/logs/wsclean.log"; exit 1; }

# (4) contimg
cat >"$WORK/run.yaml" <<EOF
input: {dir: $NIGHT}
output: {dir: $WORK/contimg, resume: false, mosaic: false, report: false}
imaging:
  npix: $NPIX
  cell_arcsec: $CELL
  epsilon: $EPS
  weighting: briggs
  robust: $ROBUST
  niter: $NITER
  auto_threshold: $AUTO_THRESHOLD
  mgain: $MGAIN
  gain: 0.1
calibration: {enabled: false}
flagging: {enabled: false}
compute: {prefetch: false}
EOF
rm -rf "$WORK/contimg"
warm "$NIGHT"
echo "== contimg run (RAYON_NUM_THREADS=$THREADS)"
RAYON_NUM_THREADS=$THREADS "${TIME[@]}" -o "$WORK/logs/contimg.time" "$CONTIMG" run \
  --config "$WORK/run.yaml" >"$WORK/logs/contimg.log" 2>&1 || { tail "$WORK/logs/contimg.log"; exit 1; }
IMG=$(ls "$WORK"/contimg/images/*.restored.fits | head -1)

# (5) the images against the truth
"$PY" benches/compare_images.py "$NIGHT/truth.json" "contimg=$IMG" "wsclean=$WORK/wsclean/img-image.fits" \
  --residual "contimg=${IMG%.restored.fits}.residual.fits" --residual "wsclean=$WORK/wsclean/img-residual.fits" --json "$WORK/compare.json" >"$WORK/compare.md" 2>"$WORK/logs/compare.log"

# (6) the table
"$PY" - "$WORK" "$NIGHT" "$MS" <<'EOF'
import datetime, json, os, platform, re, subprocess, sys
work, night, ms = sys.argv[1:4]
def timing(name):
    t = open(f"{work}/logs/{name}.time").read()
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t)
    wall = sum(float(p) * 60 ** i for i, p in enumerate(reversed(m.group(1).split(":"))))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) * 1024
    user = float(re.search(r"User time \(seconds\): (\S+)", t).group(1))
    sys_ = float(re.search(r"System time \(seconds\): (\S+)", t).group(1))
    return wall, rss, user + sys_
truth = json.load(open(f"{night}/truth.json"))
summ = json.load(open(f"{work}/contimg/summary.json"))
rank = summ["ranks"][0]
n_vis = sum(g["n_vis"] for r in summ["ranks"] for g in r["groups"])
vis_bytes = 8 * n_vis  # complex<f32> per visibility, as read from the files
cw, crss, ccpu = timing("contimg")
ww, wrss, wcpu = timing("wsclean")
vw, vrss, _ = timing("convert")
ws_log = open(f"{work}/logs/wsclean.log").read()
ws_inv = re.search(r"Inversion: ([0-9:.]+), prediction: ([0-9:.]+), deconvolution: ([0-9:.]+)", ws_log)
load = os.getloadavg()
cpu = ""
try:
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
except Exception:
    pass
c = json.load(open(f"{work}/compare.json"))
ms_bytes = int(subprocess.run(["du", "-sb", ms], capture_output=True, text=True).stdout.split()[0])
out = [
    f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, {cpu}); "
    f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
    f"group: {len(truth['stations'])} antennas, {len(truth['freq_hz'])} channels, "
    f"{len(truth['groups'][0]['times_jd'])} integrations, {len(truth['sources'])} sources, seed {truth['seed']}; "
    f"contimg read {n_vis / 1e6:.2f} M visibilities = {vis_bytes / 1e9:.3f} GB (8 bytes each); MS {ms_bytes / 1e9:.3f} GB",
    "",
    "| | wall s | CPU s | peak RSS GB | RSS / visibility bytes |",
    "| --- | --- | --- | --- | --- |",
    f"| WSClean (MS) | {ww:.1f} | {wcpu:.1f} | {wrss / 1e9:.3f} | {wrss / vis_bytes:.2f} |",
    f"| contimg run (UVH5) | {cw:.1f} | {ccpu:.1f} | {crss / 1e9:.3f} | {crss / vis_bytes:.2f} |",
    f"| contimg convert (UVH5 -> MS, not part of either) | {vw:.1f} | | {vrss / 1e9:.3f} | |",
    "",
    f"contimg / WSClean wall: **{cw / ww:.2f}**; CPU time ratio {ccpu / wcpu:.2f}",
    "contimg stages (summary.json): " + ", ".join(f"{k} {v:.1f} s" for k, v in rank["stage_s"].items() if v > 0.05),
]
for im in summ["images"]:
    out.append(f"contimg CLEAN: {im['clean_iterations']} iterations in {im['major_cycles']} major cycles, "
               f"residual robust rms {im['residual_rms_jy'] * 1e3:.3f} mJy/beam")
ws_iter = re.findall(r"Performed (\d+) iterations in total", ws_log)
ws_major = re.findall(r"(\d+) major iterations were performed", ws_log)
out.append(f"WSClean CLEAN: {ws_iter[-1] if ws_iter else '?'} iterations, {ws_major[-1] if ws_major else '?'} major cycles (from its log)")
if ws_inv:
    out.append(f"WSClean's own totals: inversion {ws_inv.group(1)}, prediction {ws_inv.group(2)}, deconvolution {ws_inv.group(3)}")
out += ["", open(f"{work}/compare.md").read()]
open(f"{work}/results.md", "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
