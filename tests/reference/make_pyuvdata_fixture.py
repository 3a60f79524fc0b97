"""Writes tests/data/pyuvdata_small.uvh5 with pyuvdata and tests/data/pyuvdata_small.json with
what pyuvdata itself reports about it (visibilities, times, frequencies, baselines), so the
Rust reader can be checked against an independent writer without Python at test time.

Run:  python tests/reference/make_pyuvdata_fixture.py   (needs pyuvdata>=3, astropy, numpy)

The file mimics one DSA-110 subband in pyuvdata-3 shapes: 5 antennas (stations 1, 2, 52, 103,
117), autocorrelations, unsorted baseline order with some ant_1 > ant_2 rows, 3 integrations,
6 descending channels, XX/YY, unprojected (drift) phasing, the pointing declination in
extra_keywords, one NaN sample and one zero sample.
"""
import json
import pathlib

import numpy as np
from astropy.coordinates import EarthLocation
import astropy.units as u
from pyuvdata import Telescope, UVData

here = pathlib.Path(__file__).resolve().parent
out_dir = here.parent / "data"
out_dir.mkdir(exist_ok=True)

lat, lon, alt = 37.233386982, -118.283405115, 1188.0
loc = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, alt * u.m)
names = [str(i) for i in range(1, 118)]
numbers = np.arange(117)
rng = np.random.default_rng(7)
# ECEF offsets (m) from the telescope location, small random spread.
positions = rng.normal(scale=300.0, size=(117, 3))
tel = Telescope.new(
    name="OVRO_MMA",
    location=loc,
    antenna_names=names,
    antenna_numbers=numbers,
    antenna_positions=positions,
    antenna_diameters=np.full(117, 4.65),
    instrument="DSA",
)
ants = [102, 0, 51, 1, 116]  # correlator order, unsorted (0-based numbers)
antpairs = []
for j in range(len(ants)):
    for i in range(j + 1):
        antpairs.append((ants[i], ants[j]))
times = 2461113.708333 + np.arange(3) * 12.884901888 / 86400.0
nch = 6
freqs = 1.53e9 - (1024 + 384 * 3 + 8 * np.arange(nch) + 3.5) * 30517.578125  # descending
nbl = len(antpairs)
nblts = nbl * len(times)
data = (rng.normal(size=(nblts, nch, 2)) + 1j * rng.normal(size=(nblts, nch, 2))).astype(np.complex64)
# Autocorrelations are real and positive.
for t in range(len(times)):
    for b, (a1, a2) in enumerate(antpairs):
        if a1 == a2:
            data[t * nbl + b] = np.abs(data[t * nbl + b]) + 5.0
data[4, 2, 1] = np.nan
data[7, 0, 0] = 0.0
flags = np.zeros(data.shape, dtype=bool)
flags[10, 3, 0] = True
nsamples = np.ones(data.shape, dtype=np.float32)
nsamples[11, 1, 1] = 0.5
uvd = UVData.new(
    freq_array=freqs,
    polarization_array=[-5, -6],
    times=times,
    telescope=tel,
    antpairs=antpairs,
    do_blt_outer=True,
    time_axis_faster_than_bls=False,
    integration_time=12.884901888,
    channel_width=244140.625,
    data_array=data,
    flag_array=flags,
    nsample_array=nsamples,
    history="contimg test fixture",
)
uvd.extra_keywords["phase_center_dec"] = np.deg2rad(54.6)
path = out_dir / "pyuvdata_small.uvh5"
# The telescope writes no compression; pyuvdata's default LZF on flags/nsamples needs an
# HDF5 plugin that the system library does not ship.
uvd.write_uvh5(str(path), clobber=True, flags_compression=None, nsample_compression=None)

# Read back with pyuvdata and record what it reports.
r = UVData.from_file(str(path))
rec = {
    "nbls": int(r.Nbls),
    "ntimes": int(r.Ntimes),
    "freq_hz": [float(f) for f in r.freq_array],
    "times_jd": [float(t) for t in np.unique(r.time_array)],
    "ant_1": [int(a) for a in r.ant_1_array],
    "ant_2": [int(a) for a in r.ant_2_array],
    "time_array": [float(t) for t in r.time_array],
    "vis_re": np.nan_to_num(r.data_array.real, nan=1e30).ravel().tolist(),
    "vis_im": np.nan_to_num(r.data_array.imag, nan=1e30).ravel().tolist(),
    "flags": r.flag_array.ravel().astype(int).tolist(),
    "nsamples": r.nsample_array.ravel().tolist(),
    "polarization_array": [int(p) for p in r.polarization_array],
    "antenna_positions": r.telescope.antenna_positions.ravel().tolist(),
    "latitude_deg": float(r.telescope.location.lat.deg),
    "longitude_deg": float(r.telescope.location.lon.deg),
    "altitude_m": float(r.telescope.location.height.to_value("m")),
    "pointing_dec_rad": float(np.deg2rad(54.6)),
}
(out_dir / "pyuvdata_small.json").write_text(json.dumps(rec))
print("wrote", path, "and pyuvdata_small.json")
