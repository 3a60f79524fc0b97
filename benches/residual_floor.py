"""The residual floor a model type leaves around one bright point source (issue 18).

A drift-scan source's apparent flux is S(nu) B(theta(t), nu): its spectrum times the Airy
power beam it sees at each integration and channel. A model CLEAN can build reproduces
only part of that: nterms 1 a constant, nterms 2 a constant + a slope in
x = (nu - ref) / ref, the drifting beam (imaging.drift_beam_chunk) the beam's time
variation at the reference frequency. The rest stays in the residual. This script fits
each model to the source's apparent flux over (time, channel) by least squares (natural
weights, as CLEAN's major cycles converge to) and images what is left by a direct Fourier
transform at random pixels of a 2.8 deg tile, with the group's own uvw: the residual rms
that model leaves, against the thermal noise of the same data.

Usage: residual_floor.py NIGHT_DIR GROUP_PREFIX DRA_DEG DDEC_DEG S14_JY ALPHA [NPIX]
  DRA/DDEC: the source's offset from the pointing at the group's middle (RA deg, dec deg).
Example (the demo's 3C147 in the middle of group 1):
  residual_floor.py demo-out/night 2026-03-14T02:08 0.027 -0.015 22.5 -0.837
"""
import glob
import json
import sys

import h5py
import numpy as np
from scipy.special import j1

C = 299792458.0
DISH_M = 4.65
REF_HZ = 1.405e9

night, grp = sys.argv[1], sys.argv[2]
dra0, ddec, s14, alpha = map(float, sys.argv[3:7])
npx = int(sys.argv[7]) if len(sys.argv) > 7 else 400

heads = [h5py.File(f)["Header"] for f in sorted(glob.glob(f"{night}/{grp}*.hdf5"))]
h0 = heads[0]
cross = h0["ant_1_array"][:] != h0["ant_2_array"][:]
uvw = h0["uvw_array"][:][cross].astype(float)
tt = h0["time_array"][:][cross]
freqs = np.sort(np.concatenate([h["freq_array"][:].ravel() for h in heads]))
# The pointing declination (a simulated night's truth.json).
dec0 = json.load(open(f"{night}/truth.json"))["pointing_dec_deg"]
times = np.unique(tt)
tind = np.searchsorted(times, tt)


def airy(theta, f):
    x = np.pi * DISH_M * np.sin(theta) * f / C
    x = np.where(np.abs(x) < 1e-8, 1e-8, x)
    return (2 * j1(x) / x) ** 2


# The source drifts in RA at the sidereal rate through a beam fixed on the meridian.
dra = dra0 + (times - times.mean()) * 360.9856
theta = np.radians(np.hypot(dra * np.cos(np.radians(dec0)), ddec))
true = airy(theta[:, None], freqs[None, :]) * s14 * (freqs / 1.4e9) ** alpha  # (T, F)
T, F = true.shape
x = (freqs - REF_HZ) / REF_HZ
one = np.ones((T, F, 1))
slope = np.broadcast_to(x[None, :, None], (T, F, 1))
b_ref = airy(theta, REF_HZ)
drift = (b_ref / b_ref.mean())[:, None, None]


def left(design):
    a = design.reshape(-1, design.shape[-1])
    coef, *_ = np.linalg.lstsq(a, true.ravel(), rcond=None)
    return true - (a @ coef).reshape(true.shape)


cases = {
    "nterms 1": left(one),
    "nterms 2": left(np.concatenate([one, slope], -1)),
    "nterms 1 + drifting beam": left(one * drift),
    "nterms 2 + drifting beam": left(np.concatenate([one, slope], -1) * drift),
}
rng = np.random.default_rng(1)
lm = np.radians(rng.uniform(-1.4, 1.4, (2, npx)))
img = {k: np.zeros(npx) for k in cases}
for fi in range(F):
    u, v = uvw[:, 0] * freqs[fi] / C, uvw[:, 1] * freqs[fi] / C
    ph = np.exp(2j * np.pi * (np.outer(u, lm[0]) + np.outer(v, lm[1])))
    for k, e in cases.items():
        img[k] += (e[tind, fi][:, None] * ph).real.sum(0)
n = uvw.shape[0] * F
# Thermal: the demo's per-visibility sigma (SEFD 6000 Jy, 0.98 MHz, 12.9 s) over both pols,
# 18 % of the samples flagged (autocorrelations and RFI).
thermal = 1.196 / np.sqrt(2 * n * 0.82)
print(f"{grp}: apparent flux over (t, nu) {true.min():.2f}..{true.max():.2f} Jy; thermal {1e3 * thermal:.3f} mJy")
for k in cases:
    r = (img[k] / n).std()
    print(f"  {k:26s} residual rms {1e3 * r:7.3f} mJy = {r / thermal:6.2f} x thermal")
