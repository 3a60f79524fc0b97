#!/usr/bin/env bash
# contimg's flagger against AOFlagger on an independently generated group with known RFI
# (issue 16 item 6). Scores recall (overall, per RFI kind and strength), false-flag rate and
# precision against truth_rfi.h5, and times each flagger with /usr/bin/time -v.
#
#   bash benches/vs_aoflagger.sh                       # full-size group (96 ant x 768 ch, 2.3 GB)
#   N_ANT=48 CHAN=48 bash benches/vs_aoflagger.sh      # a reduced group
#   GROUP=tests/data/independent/seed1 bash benches/vs_aoflagger.sh   # an existing group
#
# Needs: .venv (pyuvdata, astropy, h5py, python-casacore), aoflagger (scripts/setup-peers.sh),
# a contimg built with `--features ms` (built here unless CONTIMG is set).
# Steps: (1) write the group with tests/reference/make_independent_group.py (unless GROUP has
# one); (2) `contimg convert` with flagging off, one spectral window per subband, to an MS;
# (3) AOFlagger's default strategy on one copy (each 48-channel window on its own) and with
# -combine-spws on another (the whole band at once); (4) `contimg run` with
# flagging.write_flags (calibration off, a small dirty image); (5) benches/score_flags.py on
# each. Results: $WORK/results.md and $WORK/*.json, logs in $WORK/logs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${WORK:-bench-out/vs_aoflagger}
SEED=${SEED:-3}
N_ANT=${N_ANT:-96}
CHAN=${CHAN:-48}
DEC=${DEC:-54.6}
THREADS=${THREADS:-$(nproc)}
GROUP=${GROUP:-$WORK/group}
mkdir -p "$WORK/logs"
WORK=$(cd "$WORK" && pwd)
TIME=(/usr/bin/time -v)

if [ -z "${CONTIMG:-}" ]; then
  nice cargo build --release --features ms,gpu >"$WORK/logs/build.log" 2>&1
  CONTIMG=target/release/contimg
fi
command -v aoflagger >/dev/null || { echo "aoflagger not found: run scripts/setup-peers.sh" >&2; exit 1; }

# (1) the group
if [ ! -f "$GROUP/truth_rfi.h5" ]; then
  echo "== writing the group ($N_ANT antennas, $CHAN channels per subband, seed $SEED) in $GROUP"
  "${TIME[@]}" -o "$WORK/logs/generate.time" "$PY" tests/reference/make_independent_group.py \
    --seed "$SEED" --out "$GROUP" --n-ant "$N_ANT" --chan-per-subband "$CHAN" --pointing-dec "$DEC" \
    >"$WORK/logs/generate.log" 2>&1
fi
GROUP=$(cd "$GROUP" && pwd)

# (2) the Measurement Set (no flagging: only NaN/zero samples are flagged)
cat >"$WORK/convert.yaml" <<EOF
input:
  dir: $GROUP
output:
  dir: $WORK/convert
  resume: false
calibration:
  enabled: false
flagging:
  enabled: false
EOF
rm -rf "$WORK/convert"
echo "== contimg convert"
"${TIME[@]}" -o "$WORK/logs/convert.time" "$CONTIMG" convert --config "$WORK/convert.yaml" \
  --spectral-windows subbands >"$WORK/logs/convert.log" 2>&1
MS=$(ls -d "$WORK"/convert/ms/*.ms | head -1)

# (3) AOFlagger: default strategy per window, and with -combine-spws
for variant in default combine-spws; do
  rm -rf "$WORK/aoflagger-$variant.ms"
  cp -a "$MS" "$WORK/aoflagger-$variant.ms"
  extra=()
  [ "$variant" = combine-spws ] && extra=(-combine-spws)
  echo "== aoflagger ($variant)"
  "${TIME[@]}" -o "$WORK/logs/aoflagger-$variant.time" aoflagger -j "$THREADS" "${extra[@]}" \
    "$WORK/aoflagger-$variant.ms" >"$WORK/logs/aoflagger-$variant.log" 2>&1
done

# (4) contimg's flagger (default flagging settings; the image is only a byproduct)
cat >"$WORK/flag.yaml" <<EOF
input:
  dir: $GROUP
output:
  dir: $WORK/contimg
  resume: false
  mosaic: false
  report: false
imaging:
  npix: 256
  cell_arcsec: 60.0
  niter: 0
calibration:
  enabled: false
flagging:
  write_flags: true
EOF
rm -rf "$WORK/contimg"
echo "== contimg run (flagging)"
"${TIME[@]}" -o "$WORK/logs/contimg.time" "$CONTIMG" run --config "$WORK/flag.yaml" >"$WORK/logs/contimg.log" 2>&1
FLAGS=$(ls "$WORK"/contimg/flags/*.h5 | head -1)

# (5) scores
"$PY" benches/score_flags.py "$GROUP" --ms "$MS" --name "no flagger (NaN/zero only)" --json "$WORK/none.json"
"$PY" benches/score_flags.py "$GROUP" --contimg-flags "$FLAGS" --name contimg --json "$WORK/contimg.json"
for variant in default combine-spws; do
  "$PY" benches/score_flags.py "$GROUP" --ms "$WORK/aoflagger-$variant.ms" --name "aoflagger $variant" \
    --json "$WORK/aoflagger-$variant.json"
done

# table
"$PY" - "$WORK" "$GROUP" <<'EOF'
import json, re, sys, os, platform, datetime
work, group = sys.argv[1], sys.argv[2]
truth = json.load(open(f"{group}/truth.json"))
def wall(name):
    try:
        t = open(f"{work}/logs/{name}.time").read()
    except OSError:
        return None, None
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t)
    parts = [float(x) for x in m.group(1).split(":")]
    s = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1e6
    return s, rss
flag_s = None
try:
    summ = json.load(open(f"{work}/contimg/summary.json"))
    txt = json.dumps(summ)
    m = re.search(r'"flag": ([0-9.]+)', txt)
    flag_s = float(m.group(1)) if m else None
except OSError:
    pass
rows = [("aoflagger default", "aoflagger-default"), ("aoflagger -combine-spws", "aoflagger-combine-spws"),
        ("contimg", "contimg"), ("none (NaN/zero only)", "none")]
nant = len(truth["antennas"]["numbers"]); nch = len(truth["freq_hz"])
out = [f"{datetime.date.today()} on {platform.node()} ({os.cpu_count()} cores), group {os.path.basename(group)}: "
       f"{nant} antennas, {truth['nbls']} baselines, {nch} channels, 24 integrations, seed {truth['args']['seed']}",
       "", "| flagger | recall | false-flag rate | precision | persistent | intermittent | broadband | ramp | "
       "rfi_sigma <3 | 3-5 | 5-10 | 10-20 | >=20 | wall s | max RSS GB |",
       "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for label, key in rows:
    r = json.load(open(f"{work}/{key}.json"))
    k = r["by_kind"]; s = r["by_sigma"]
    w, rss = wall(key) if key != "none" else (None, None)
    ws = f"{w:.1f}" if w is not None else "-"
    if key == "contimg" and flag_s is not None:
        ws += f" (flagging stage {flag_s:.1f})"
    rs = f"{rss:.2f}" if rss is not None else "-"
    out.append(f"| {label} | {r['recall']:.3f} | {r['false_flag_rate']:.4f} | {r['precision']:.3f} | "
               + " | ".join(f"{k[x]['recall']:.3f}" if x in k else "-" for x in ("persistent", "intermittent", "broadband", "ramp"))
               + " | " + " | ".join(f"{s[x]['recall']:.3f}" if x in s else "-" for x in ("0-3", "3-5", "5-10", "10-20", ">=20"))
               + f" | {ws} | {rs} |")
cw, _ = wall("convert")
out.append("")
out.append(f"contimg convert (MS, 16 windows): {cw:.1f} s" if cw else "")
open(f"{work}/results.md", "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
