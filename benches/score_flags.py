#!/usr/bin/env python3
"""Scores a flag set against the RFI truth of a group written by
tests/reference/make_independent_group.py.

    score_flags.py TRUTH_DIR --ms PATH.ms [--name NAME] [--json OUT.json]
    score_flags.py TRUTH_DIR --contimg-flags flags/GROUP.h5 [--name NAME] [--json OUT.json]

Flags come from a Measurement Set's FLAG column (rows mapped through ANTENNA1/ANTENNA2 and the
ANTENNA table's station NAMEs, TIME to the truth's integrations, DATA_DESC_ID -> SPECTRAL_WINDOW
CHAN_FREQ to the truth's ascending channels, POLARIZATION CORR_TYPE 9/12 to XX/YY), or from
contimg's flags/<group>.h5 (flags (time, baseline, channel ascending, pol), ant1/ant2 station
numbers). Both are put on the truth's layout (time, sorted baseline, channel ascending, pol).

Scored on cross-correlation samples only, leaving out the dropped (NaN/zero) samples and the
garbage cell (kind 5, reported on its own):
  recall      flagged RFI samples / RFI samples (overall, per kind, per rfi_sigma bin)
  false-flag  flagged clean samples / clean samples
  precision   flagged RFI samples / flagged samples
"""

import argparse
import json
import sys

import h5py
import numpy as np

KINDS = ["none", "persistent", "intermittent", "broadband", "ramp", "garbage"]
SIG_BINS = [0, 3, 5, 10, 20, 1e9]


def load_truth(d):
    with h5py.File(f"{d}/truth_rfi.h5", "r") as h:
        t = {k: h[k][()] for k in ("rfi", "rfi_sigma", "kind", "dropped", "ant_1", "ant_2", "freq_hz", "time_jd")}
    t["rfi_sigma"] = t["rfi_sigma"].astype(np.float32)
    return t


def bl_lookup(t):
    return {(int(a), int(b)): k for k, (a, b) in enumerate(zip(t["ant_1"], t["ant_2"]))}


def chan_index(truth_f, f):
    idx = np.searchsorted(truth_f, f)
    idx = np.clip(idx, 0, len(truth_f) - 1)
    lo = np.clip(idx - 1, 0, len(truth_f) - 1)
    idx = np.where(np.abs(truth_f[lo] - f) < np.abs(truth_f[idx] - f), lo, idx)
    bad = np.abs(truth_f[idx] - f) > 1.0
    if bad.any():
        raise SystemExit(f"frequencies {f[bad][:3]} are not the truth's channels")
    return idx


def time_index(truth_jd, jd):
    idx = np.argmin(np.abs(truth_jd[None, :] - np.asarray(jd)[:, None]), axis=1)
    if np.max(np.abs(truth_jd[idx] - jd)) * 86400 > 1.0:
        raise SystemExit("times do not match the truth's integrations (> 1 s)")
    return idx


def flags_from_ms(path, t):
    from casacore.tables import table

    shape = t["rfi"].shape
    out = np.zeros(shape, np.uint8)
    seen = np.zeros(shape, np.uint8)
    ant = table(f"{path}/ANTENNA", ack=False)
    names = ant.getcol("NAME")
    ant.close()
    num = np.array([int(n) - 1 if str(n).strip().isdigit() else i for i, n in enumerate(names)])
    spw = table(f"{path}/SPECTRAL_WINDOW", ack=False)
    chan_freq = [np.asarray(spw.getcell("CHAN_FREQ", r)) for r in range(spw.nrows())]
    spw.close()
    dd = table(f"{path}/DATA_DESCRIPTION", ack=False)
    dd_spw = dd.getcol("SPECTRAL_WINDOW_ID")
    dd_pol = dd.getcol("POLARIZATION_ID")
    dd.close()
    pol = table(f"{path}/POLARIZATION", ack=False)
    corr = [list(pol.getcell("CORR_TYPE", r)) for r in range(pol.nrows())]
    pol.close()
    bl = bl_lookup(t)
    main = table(path, ack=False)
    n = main.nrows()
    step = 200000
    for r0 in range(0, n, step):
        nr = min(step, n - r0)
        a1 = num[main.getcol("ANTENNA1", r0, nr)]
        a2 = num[main.getcol("ANTENNA2", r0, nr)]
        ti = time_index(t["time_jd"], main.getcol("TIME", r0, nr) / 86400.0 + 2400000.5)  # MJD s -> JD
        ddi = main.getcol("DATA_DESC_ID", r0, nr)
        fl = main.getcol("FLAG", r0, nr)  # (rows, chan, corr)
        for d in np.unique(ddi):
            sel = ddi == d
            ci = chan_index(t["freq_hz"], chan_freq[dd_spw[d]])
            pi = [{9: 0, 12: 1}[c] for c in corr[dd_pol[d]]]
            b = np.array([bl[(min(x, y), max(x, y))] for x, y in zip(a1[sel], a2[sel])])
            for j, p in enumerate(pi):
                out[ti[sel][:, None], b[:, None], ci[None, :], p] = fl[sel][:, :, j]
                seen[ti[sel][:, None], b[:, None], ci[None, :], p] = 1
    main.close()
    return out, seen


def flags_from_contimg(path, t):
    shape = t["rfi"].shape
    out = np.zeros(shape, np.uint8)
    seen = np.zeros(shape, np.uint8)
    with h5py.File(path, "r") as h:
        fl = h["flags"][()]
        a1 = h["ant1"][()].astype(int) - 1  # station numbers -> antenna numbers
        a2 = h["ant2"][()].astype(int) - 1
        ti = time_index(t["time_jd"], h["time_jd"][()])
        ci = chan_index(t["freq_hz"], h["freq_hz"][()])
    bl = bl_lookup(t)
    b = np.array([bl[(min(x, y), max(x, y))] for x, y in zip(a1, a2)])
    out[ti[:, None, None], b[None, :, None], ci[None, None, :], :] = fl
    seen[ti[:, None, None], b[None, :, None], ci[None, None, :], :] = 1
    return out, seen


def score(flags, seen, t):
    cross = (t["ant_1"] != t["ant_2"])[None, :, None, None]
    base = cross & (t["dropped"] == 0) & (seen == 1)
    rfi = (t["rfi"] == 1) & (t["kind"] != 5) & base
    clean = (t["rfi"] == 0) & base
    garbage = (t["kind"] == 5) & base
    f = flags == 1
    n_rfi, n_clean = int(rfi.sum()), int(clean.sum())
    tp = int((f & rfi).sum())
    fp = int((f & clean).sum())
    res = dict(
        samples_scored=int(base.sum()), rfi_samples=n_rfi, clean_samples=n_clean,
        recall=tp / max(n_rfi, 1), false_flag_rate=fp / max(n_clean, 1), precision=tp / max(tp + fp, 1),
        flagged_fraction=float(f[base].mean()) if base.any() else 0.0,
        not_seen=int(((seen == 0) & cross).sum()),
    )
    res["by_kind"] = {}
    for k in range(1, 5):
        m = rfi & (t["kind"] == k)
        if m.any():
            res["by_kind"][KINDS[k]] = dict(samples=int(m.sum()), recall=float(f[m].mean()))
    res["by_sigma"] = {}
    for lo, hi in zip(SIG_BINS[:-1], SIG_BINS[1:]):
        m = rfi & (t["rfi_sigma"] >= lo) & (t["rfi_sigma"] < hi)
        if m.any():
            res["by_sigma"][f"{lo:g}-{hi:g}" if hi < 1e9 else f">={lo:g}"] = dict(samples=int(m.sum()), recall=float(f[m].mean()))
    if garbage.any():
        res["garbage_cell_recall"] = float(f[garbage].mean())
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("truth_dir")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--ms")
    g.add_argument("--contimg-flags")
    ap.add_argument("--name", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    t = load_truth(a.truth_dir)
    flags, seen = flags_from_ms(a.ms, t) if a.ms else flags_from_contimg(a.contimg_flags, t)
    res = score(flags, seen, t)
    res["name"] = a.name or (a.ms or a.contimg_flags)
    kinds = ", ".join(f"{k} {v['recall']:.3f}" for k, v in res["by_kind"].items())
    sig = ", ".join(f"{k}: {v['recall']:.3f}" for k, v in res["by_sigma"].items())
    print(f"{res['name']}: recall {res['recall']:.4f}, false-flag rate {res['false_flag_rate']:.4f}, "
          f"precision {res['precision']:.4f} (flagged {res['flagged_fraction']:.4f} of {res['samples_scored']} scored)")
    print(f"  by kind: {kinds}")
    print(f"  by rfi_sigma: {sig}")
    if "garbage_cell_recall" in res:
        print(f"  garbage cell recall {res['garbage_cell_recall']:.3f}")
    if res["not_seen"]:
        print(f"  WARNING: {res['not_seen']} cross samples of the truth absent from the flags")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
