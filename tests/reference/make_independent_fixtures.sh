#!/usr/bin/env bash
# Regenerates the committed independent-generator fixtures tests/data/independent/seed{1,2}
# (see tests/data/independent/README.md). Run from the repository root:
#   tests/reference/make_independent_fixtures.sh [PYTHON]
# PYTHON defaults to .venv/bin/python (numpy, astropy, pyuvdata 3, h5py).
set -euo pipefail
PY=${1:-.venv/bin/python}
GEN=tests/reference/make_independent_group.py
OUT=tests/data/independent
rm -rf "$OUT/seed1" "$OUT/seed2" "$OUT/seed4"
"$PY" "$GEN" --seed 1 --out "$OUT/seed1" --n-ant 20 --chan-per-subband 6 --pointing-dec 54.6 \
    --start 2026-03-15T08:00:00 --compress gzip
"$PY" "$GEN" --seed 2 --out "$OUT/seed2" --n-ant 20 --chan-per-subband 6 --pointing-dec 16.3 \
    --start 2026-06-02T19:30:00 --compress gzip
# Astrometry at a high declination (tests/astrometry_independent.rs): 2 channels a subband
# keep it at ~4 MB.
"$PY" "$GEN" --seed 4 --out "$OUT/seed4" --n-ant 20 --chan-per-subband 2 --pointing-dec 72.0 \
    --start 2026-09-10T03:00:00 --compress gzip
# The independent check (pyuvdata/astropy only); exits non-zero when a check fails.
"$PY" tests/reference/check_independent_group.py "$OUT/seed1"
"$PY" tests/reference/check_independent_group.py "$OUT/seed2"
