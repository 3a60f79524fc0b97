#!/usr/bin/env python3
"""Independent DSA-110 subband-group generator (ground truth for contimg's tests and benches).

Writes one subband group -- 16 UVH5 files ``YYYY-MM-DDTHH:MM:SS_sbNN.hdf5`` (sb00 the highest
frequency, channels descending within each file, 24 time-major integrations of 12.884901888 s,
autocorrelations included, XX/YY) -- with pyuvdata 3 (``write_uvh5``), plus the truth beside it.
Nothing here comes from contimg's own simulator (src/simulate): conventions are those of
docs/dsa110.md and pyuvdata, the physics is chosen to differ from contimg's model.

Run with /work/main/.venv/bin/python (numpy, astropy, pyuvdata 3, h5py), e.g.

    make_independent_group.py --seed 1 --out /tmp/grp --n-ant 20 --chan-per-subband 6
    make_independent_group.py --seed 3 --out /tmp/full --full        # 96 ant x 48 ch, 2.3 GB

Conventions
-----------
* Baseline rows come in the correlator's order (0-0, 0-1, 1-1, 0-2, ...) over an antenna order
  that is NOT sorted, so some rows have ant_1 > ant_2. For every row
  uvw = pos(ant_2) - pos(ant_1) and vis = conj(E_ant_1) E_ant_2, i.e. a point source of flux S in
  direction s gives S B exp(+2 pi i nu (s - s_c).(x_2 - x_1) / c) (pyuvdata's convention: it
  rephases with exp(-2 pi i (w_new - w_old) nu / c)).
* "Drift" phasing: integration k is fringe-stopped (tracking within the integration) to HA = 0
  at the apparent pointing declination dec_p at its midpoint t_k. That direction is fixed in the
  Earth frame: s_c = (cos dec_p cos lon, cos dec_p sin lon, sin dec_p) in ITRS. uvw_array holds
  the baselines projected on that frame (u east, v north, w along s_c), the same for every
  time. The phase-centre catalogue says so the pyuvdata way (cat_type "driftscan", altaz frame
  at the azimuth/elevation of HA = 0, dec_p); extra_keywords carry phase_center_dec = dec_p
  (rad), ha_phase_center = 0.0, phase_center_epoch = "HADEC" as the correlator writes them.
* Geometry: ECEF antenna positions from the station table's WGS84 coordinates (astropy
  EarthLocation, station 117 at 1182.6 m); source directions ICRS -> topocentric ITRS with
  astropy/ERFA at every sub-sample time (precession, nutation, annual and diurnal aberration,
  Earth rotation with astropy's IERS UT1-UTC and polar motion; no refraction); exact 3-D phases
  (w-term included); time smearing over the integration and bandwidth smearing over the channel
  by averaging sub-samples. The drift centre is the Earth-fixed (ITRS) direction of HA = 0,
  dec_p, as pyuvdata's driftscan phasing takes it (its rephasing reproduces these data to
  1e-5; see check_independent_group.py). The ITRS pole differs from the celestial pole of date
  by the polar motion (~0.3"): a centre defined on the CIP instead moves every source by the
  same ~0.3", i.e. a per-antenna phase of up to ~7 deg at 1.5 GHz on the outriggers that
  calibration absorbs -- compare solved gains with the truth's up to such a phase slope.
* Primary beam: Gaussian power pattern, FWHM = 1.05 lambda / 4.65 m, fixed on s_c (the dishes
  do not track). Sources unpolarised: XX = YY = Stokes I (I = (XX + YY) / 2).
* Units: correlation coefficients, V_data[row] = g_1 conj(g_2) V_Jy + noise, with the effective
  gains g = A / sqrt(SEFD) * bandpass(nu) * exp(i (phi0 + 360 deg * tau * (nu - 1.405 GHz)
  + bandpass phase)); autocorrelations |g|^2 (SEFD + sky). Thermal noise (independent of the
  gains, as for normalised correlation coefficients): sigma = 1 / sqrt(2 dnu dt) per real and
  imaginary part per visibility in data units, i.e. SEFD / sqrt(2 dnu dt) Jy for unit gains.
* RFI enters through the antennas: on cross baselines g_a conj(g_b) amp sigma_Jy e^{i phi_ab}
  (sorted orientation a < b; the conjugate on rows with ant_1 > ant_2). Its size in data units
  divided by sigma is what truth_rfi.h5 records as rfi_sigma (= amp |g_a g_b| SEFD).
* Dropped correlator buffers: NaNs or exact zeros in a few samples; flags all false, nsamples 1.

Outputs in --out DIR
--------------------
* 16 UVH5 files; ``calibrators.txt`` (NRAO/VLA calibrator-list format: the calibrator with a
  made-up J2000 name and two distractors that are not in this group's strip).
* ``truth.json``: site, pointing, times, conventions, channel frequencies (ascending over the
  band), sigma (Jy and data units), SEFD, antennas (station names, 0-based antenna numbers,
  correlator order), gains (per antenna in ``antennas`` order, pol [XX, YY], channel ascending:
  ``gains.re``/``gains.im``, plus amplitude, phase0, delay, drift parameters), sources (J2000
  RA/Dec, flux at 1.4 GHz, spectral index, apparent = beam-weighted flux averaged over group and
  band), calibrator name, RFI events, dropped samples, the garbage cell if any.
* ``truth_rfi.h5`` (gzip): datasets of shape (Ntimes, Nbls, Nchan_total, Npols), channels in
  ascending frequency over the whole band, baselines as sorted pairs ``ant_1 <= ant_2``
  (0-based antenna numbers, lexicographic order, autocorrelations included, never RFI):
  ``rfi`` (uint8, 1 where RFI or garbage was injected), ``rfi_sigma`` (float16, injected
  amplitude in units of sigma, 0 where none), ``kind`` (uint8: 0 none, 1 persistent
  narrowband, 2 intermittent narrowband, 3 broadband burst, 4 slow ramp, 5 garbage cell; the
  mapping is in the attribute ``kind_names``), ``dropped`` (uint8, 1 where the value was set to
  NaN or 0); plus ``ant_1``, ``ant_2`` (Nbls), ``freq_hz`` (Nchan_total), ``time_jd`` (Ntimes),
  ``pol`` (Npols, AIPS codes -5, -6).
"""

import argparse
import json
import math
import os
import sys
import time as _time
import warnings

import logging

import h5py
import numpy as np
from astropy.utils import iers

iers.conf.auto_download = False
logging.getLogger("pyuvdata").setLevel(logging.ERROR)
import astropy.units as u  # noqa: E402
from astropy.coordinates import ICRS, ITRS, EarthLocation, SkyCoord  # noqa: E402
from astropy.time import Time  # noqa: E402
from pyuvdata import Telescope, UVData  # noqa: E402

C = 299792458.0
DT = 12.884901888
NTIMES = 24
NSB = 16
FINE = 30517.578125  # Hz, the correlator's fine channel
DISH = 4.65
SEFD = 5800.0
NU_REF = 1.405e9
# OVRO (DSA-110) site, WGS84
SITE_LAT, SITE_LON, SITE_ALT = 37.2339, -118.2825, 1222.0
POLS = [-5, -6]
KIND_NAMES = ["none", "persistent", "intermittent", "broadband", "ramp", "garbage"]
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_STATIONS = os.path.join(HERE, "..", "..", "configs", "dsa110", "DSA110_Station_Coordinates.csv")


def read_stations(path):
    """Station number -> (lat, lon, elev) from the DSA-110 station table."""
    out = {}
    with open(path) as fh:
        for line in fh:
            cols = [c.strip() for c in line.split(",")]
            if len(cols) < 4 or not cols[1].startswith("DSA-") or not cols[1][4:].isdigit():
                continue
            num = int(cols[1][4:])
            elev = float(cols[4]) if len(cols) > 4 and cols[4] else 1182.6
            out[num] = (float(cols[2]), float(cols[3]), elev)
    return out


def choose_antennas(rng, n_ant, stations):
    """A mix of the EW arm (1-51), NS arm (52-102) and outriggers (103-117), with 103."""
    ew = [s for s in stations if s <= 51]
    ns = [s for s in stations if 52 <= s <= 102]
    out = [s for s in stations if s >= 103]
    if n_ant > len(stations) or n_ant < 4:
        raise SystemExit(f"--n-ant must be 4..{len(stations)}")
    n_out = min(len(out), max(2, round(n_ant * 15 / 117)))
    n_ns = min(len(ns), (n_ant - n_out) // 2)
    n_ew = n_ant - n_out - n_ns
    chosen = [103]
    chosen += list(rng.choice([s for s in out if s != 103], n_out - 1, replace=False))
    chosen += list(rng.choice(ns, n_ns, replace=False))
    chosen += list(rng.choice(ew, n_ew, replace=False))
    return sorted(int(s) for s in chosen)


def correlator_order(rng, ants):
    """An unsorted antenna order: the sorted list with about a quarter of it swapped."""
    order = list(ants)
    for _ in range(max(1, len(order) // 4)):
        i, j = rng.choice(len(order), 2, replace=False)
        order[i], order[j] = order[j], order[i]
    return order


def channel_freqs(n_ch):
    """(16, n_ch) centre frequencies in file order: sb00 highest, channels descending."""
    if 384 % n_ch:
        raise SystemExit("--chan-per-subband must divide 384 (48, 24, 12, 6, ...)")
    m = 384 // n_ch
    s = np.arange(NSB)[:, None]
    c = np.arange(n_ch)[None, :]
    return 1.53e9 - (1024 + 384 * s + m * c + (m - 1) / 2.0) * FINE, m * FINE


def smooth_series(rng, x, n_terms, peak):
    """A smooth random function of x in [0, 1] with max |value| = peak."""
    y = np.zeros_like(x)
    for m in range(1, n_terms + 1):
        y += rng.normal() / m * np.sin(np.pi * m * x + rng.uniform(0, 2 * np.pi))
    return y * peak / np.max(np.abs(y))


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def icrs_to_itrs(ra_deg, dec_deg, times, site):
    """Unit topocentric ITRS directions (len(times), n_src, 3) of ICRS positions at the given
    Times (diurnal aberration included, no refraction)."""
    n = len(ra_deg)
    t = Time(np.repeat(times.jd[:, None], n, axis=1), format="jd", scale="utc")
    sc = SkyCoord(ra=np.broadcast_to(ra_deg, t.shape) * u.deg, dec=np.broadcast_to(dec_deg, t.shape) * u.deg, frame="icrs")
    it = sc.transform_to(ITRS(obstime=t, location=site))
    xyz = np.moveaxis(it.cartesian.xyz.value, 0, -1)
    return unit(xyz)


def itrs_to_icrs(vec, times, site):
    """ICRS (ra, dec) in degrees of fixed topocentric ITRS unit vectors (n, 3) at Times (n)."""
    from astropy.coordinates import CartesianRepresentation

    rep = CartesianRepresentation(vec[:, 0], vec[:, 1], vec[:, 2])
    it = ITRS(rep, obstime=times, location=site)
    ic = SkyCoord(it).transform_to(ICRS())
    return ic.ra.deg, ic.dec.deg


def sexa(ra_deg, dec_deg):
    h = (ra_deg % 360.0) / 15.0
    hh = int(h)
    mm = int((h - hh) * 60)
    ss = (h - hh - mm / 60.0) * 3600
    sign = "-" if dec_deg < 0 else ""
    d = abs(dec_deg)
    dd = int(d)
    dm = int((d - dd) * 60)
    ds = (d - dd - dm / 60.0) * 3600
    return f"{hh:02d}h{mm:02d}m{ss:09.6f}s", f"{sign}{dd:02d}d{dm:02d}'{ds:09.6f}\""


def jname(ra_deg, dec_deg):
    h = (ra_deg % 360.0) / 15.0
    hh = int(h)
    mm = int((h - hh) * 60)
    sign = "-" if dec_deg < 0 else "+"
    d = abs(dec_deg)
    return f"{hh:02d}{mm:02d}{sign}{int(d):02d}{int((d - int(d)) * 10)}"


def write_calibrators(path, cals):
    lines = ["IAU NAME EQUINOX  PC RA(hh,mm,ss)    DEC(ddd,mm,ss)   POS.REF ALT.NAME",
             "===================================================================", " "]
    for c in cals:
        ra, dec = sexa(c["ra_deg"], c["dec_deg"])
        f6 = c["flux_1400mhz_jy"] * (4.86 / 1.4) ** c["spectral_index"]
        lines += [f"{c['name']}   J2000  A {ra}  {dec}  Gen01  SIM",
                  "-----------------------------------------------------",
                  "BAND        A B C D    FLUX(Jy)    UVMIN(kL)  UVMAX(kL)",
                  "=====================================================",
                  f" 20cm    L  P P P P  {c['flux_1400mhz_jy']:9.3f}",
                  f"  6cm    C  P P P P  {f6:9.3f}", " "]
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def repack_gzip(src, dst):
    """Copies an HDF5 file, gzip-compressing every dataset of more than 256 elements except
    Data/visdata (the small committed fixtures; values and dtypes are unchanged)."""
    with h5py.File(src, "r") as fi, h5py.File(dst, "w") as fo:
        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                fo.require_group(name)
            elif obj.shape is None or obj.size <= 256 or name == "Data/visdata":
                fi.copy(obj, fo, name=name)
            else:
                fo.create_dataset(name, data=obj[()], dtype=obj.dtype, compression="gzip", compression_opts=6,
                                  shuffle=True, chunks=True)
            for k, v in obj.attrs.items():
                fo[name].attrs[k] = v
        fi.visititems(copy)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--n-ant", type=int, default=20)
    p.add_argument("--chan-per-subband", type=int, default=48)
    p.add_argument("--pointing-dec", type=float, default=54.6, help="apparent pointing declination (deg)")
    p.add_argument("--start", default="2026-03-15T08:00:00", help="UTC start of the group (first integration's start)")
    p.add_argument("--full", action="store_true", help="96 antennas, 48 channels (2.3 GB)")
    p.add_argument("--stations", default=DEFAULT_STATIONS)
    p.add_argument("--compress", choices=["none", "gzip"], default="none",
                   help="gzip: flags, nsamples and the large Header/ arrays gzip-compressed (visdata never)")
    p.add_argument("--time-subsamples", type=int, default=5, help="sub-samples per integration (time smearing)")
    p.add_argument("--freq-subsamples", type=int, default=0, help="sub-samples per channel (0: one per 244 kHz)")
    p.add_argument("--no-rfi", action="store_true")
    p.add_argument("--no-noise", action="store_true")
    p.add_argument("--no-dropped", action="store_true", help="no NaN/zero samples")
    p.add_argument("--garbage-cell", action="store_true", help="one channel of one pol is garbage on every baseline")
    p.add_argument("--max-delay-ns", type=float, default=4.4, help="delays uniform in +-this (ns); 0: none")
    p.add_argument("--gain-drift-deg", type=float, default=0.0, help="max slow phase drift over the group (deg)")
    a = p.parse_args(argv)
    if a.full:
        a.n_ant, a.chan_per_subband = 96, 48
    return a


def main(argv=None):
    a = parse_args(argv)
    t_start_wall = _time.time()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)

    # ---------------- site, antennas, baselines ----------------
    site = EarthLocation.from_geodetic(SITE_LON * u.deg, SITE_LAT * u.deg, SITE_ALT * u.m)
    site_xyz = np.array([site.x.to_value(u.m), site.y.to_value(u.m), site.z.to_value(u.m)])
    stations = read_stations(a.stations)
    st_nums = sorted(stations)
    if st_nums != list(range(1, len(st_nums) + 1)):
        raise SystemExit(f"{a.stations}: stations are not numbered 1..N")
    lat = np.array([stations[s][0] for s in st_nums])
    lon = np.array([stations[s][1] for s in st_nums])
    el = np.array([stations[s][2] for s in st_nums])
    loc = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, el * u.m)
    ecef = np.stack([loc.x.to_value(u.m), loc.y.to_value(u.m), loc.z.to_value(u.m)], axis=1)
    ant_pos_rel = ecef - site_xyz  # (117, 3), index = antenna number = station - 1
    ants_st = choose_antennas(rng, a.n_ant, st_nums)
    ants = [s - 1 for s in ants_st]  # 0-based antenna numbers, sorted
    n_ant = len(ants)
    order = correlator_order(rng, ants)
    aidx = {ant: i for i, ant in enumerate(ants)}
    rows = [(order[i], order[j]) for j in range(n_ant) for i in range(j + 1)]
    ant1 = np.array([r[0] for r in rows])
    ant2 = np.array([r[1] for r in rows])
    i1 = np.array([aidx[x] for x in ant1])
    i2 = np.array([aidx[x] for x in ant2])
    nbls = len(rows)
    sorted_bls = sorted((min(r), max(r)) for r in rows)
    sidx = {b: k for k, b in enumerate(sorted_bls)}
    row_to_sorted = np.array([sidx[(min(r), max(r))] for r in rows])
    row_flipped = ant1 > ant2
    x_ant = ant_pos_rel[ants]  # (n_ant, 3)

    # ---------------- times, frequencies ----------------
    t0 = Time(a.start, format="isot", scale="utc")
    t_mid_int = t0 + (np.arange(NTIMES) + 0.5) * DT * u.s
    t_group_mid = t0 + NTIMES / 2 * DT * u.s
    nsub_t = max(1, a.time_subsamples)
    sub_off = ((np.arange(nsub_t) + 0.5) / nsub_t - 0.5) * DT
    freqs_file, chan_w = channel_freqs(a.chan_per_subband)
    n_ch = a.chan_per_subband
    nchan = NSB * n_ch
    freq_asc = np.sort(freqs_file.ravel())
    nsub_f = a.freq_subsamples if a.freq_subsamples > 0 else max(1, int(round(chan_w / (8 * FINE))))

    def gidx(sb, c):  # global ascending channel index of file channel c of subband sb
        return (NSB - 1 - sb) * n_ch + (n_ch - 1 - c)

    # ---------------- pointing ----------------
    dec_p = math.radians(a.pointing_dec)
    lon_r = math.radians(SITE_LON)
    s_c = np.array([math.cos(dec_p) * math.cos(lon_r), math.cos(dec_p) * math.sin(lon_r), math.sin(dec_p)])
    e_hat = np.array([-math.sin(lon_r), math.cos(lon_r), 0.0])
    n_hat = np.cross(s_c, e_hat)
    # azimuth/elevation of HA = 0, dec_p (geodetic latitude, as erfa.ae2hd takes it)
    lat_r = math.radians(SITE_LAT)
    pc_alt = math.pi / 2 - abs(lat_r - dec_p)
    pc_az = 0.0 if dec_p > lat_r else math.pi
    # phase centres of each integration in ICRS (tracked within the integration)
    pc_ra, pc_dec = itrs_to_icrs(np.repeat(s_c[None], NTIMES, 0), t_mid_int, site)
    fc_ra, fc_dec = itrs_to_icrs(s_c[None], t_group_mid[None], site)
    fc_ra, fc_dec = float(fc_ra[0]), float(fc_dec[0])

    # ---------------- sky ----------------
    def offset(ra0, dec0, r_deg, pa_deg):
        """Position at angular distance r and position angle pa (N through E) from (ra0, dec0)."""
        ra0, dec0, r, pa = map(math.radians, (ra0, dec0, r_deg, pa_deg))
        dec = math.asin(math.sin(dec0) * math.cos(r) + math.cos(dec0) * math.sin(r) * math.cos(pa))
        ra = ra0 + math.atan2(math.sin(pa) * math.sin(r) * math.cos(dec0), math.cos(r) - math.sin(dec0) * math.sin(dec))
        return math.degrees(ra) % 360.0, math.degrees(dec)

    cal_dt = rng.uniform(-0.5, 0.5) * DT  # transit near the middle of the group
    cal_ddec = rng.choice([-1, 1]) * rng.uniform(0.05, 0.3)
    c_ra, c_dec = itrs_to_icrs(s_c[None], (t_group_mid + cal_dt * u.s)[None], site)
    c_ra, c_dec = float(c_ra[0]), float(c_dec[0]) + cal_ddec
    cal_name = jname(c_ra, c_dec)
    sources = [dict(name=cal_name, role="calibrator", ra_deg=c_ra, dec_deg=c_dec,
                    flux_1400mhz_jy=float(rng.uniform(20, 30)), spectral_index=float(rng.uniform(-0.8, -0.6)))]
    placed = [(c_ra, c_dec)]

    def sep_deg(p, q):
        return SkyCoord(p[0] * u.deg, p[1] * u.deg).separation(SkyCoord(q[0] * u.deg, q[1] * u.deg)).deg

    radii = [1.8] + [None] * 7
    for k, r in enumerate(radii):
        while True:
            rr = r if r is not None else float(rng.uniform(0.15, 1.2))
            pos = offset(fc_ra, fc_dec, rr, float(rng.uniform(0, 360)))
            if all(sep_deg(pos, q) > 0.15 for q in placed):
                break
        placed.append(pos)
        flux = float(rng.uniform(0.3, 0.8)) if r is not None else float(np.exp(rng.uniform(np.log(0.07), np.log(0.8))))
        sources.append(dict(name=f"S{k + 1}", role="field", ra_deg=pos[0], dec_deg=pos[1], flux_1400mhz_jy=flux,
                            spectral_index=float(rng.uniform(-1.0, -0.3)), offset_from_field_centre_deg=rr))
    n_src = len(sources)
    src_ra = np.array([s["ra_deg"] for s in sources])
    src_dec = np.array([s["dec_deg"] for s in sources])
    src_s = np.array([s["flux_1400mhz_jy"] for s in sources])
    src_a = np.array([s["spectral_index"] for s in sources])

    # directions at every sub-time: (NTIMES, nsub_t, n_src, 3); phase centres likewise
    t_sub = Time((t_mid_int.jd[:, None] + sub_off[None, :] / 86400.0).ravel(), format="jd", scale="utc")
    s_src = icrs_to_itrs(src_ra, src_dec, t_sub, site).reshape(NTIMES, nsub_t, n_src, 3)
    s_pc = np.stack([icrs_to_itrs(np.array([pc_ra[k]]), np.array([pc_dec[k]]),
                                  Time(t_sub.jd.reshape(NTIMES, nsub_t)[k], format="jd", scale="utc"), site)[:, 0, :]
                     for k in range(NTIMES)])  # (NTIMES, nsub_t, 3)
    # check: at each midpoint the tracked centre is s_c
    pc_err = np.degrees(np.arccos(np.clip(np.einsum("ki,i->k", icrs_to_itrs(pc_ra, pc_dec, t_mid_int, site)
                                                    .reshape(NTIMES, NTIMES, 3)[np.arange(NTIMES), np.arange(NTIMES)], s_c), -1, 1))) * 3600
    assert pc_err.max() < 0.01, pc_err.max()
    cos_beam = np.einsum("tjki,i->tjk", s_src, s_c)
    theta_beam = np.arccos(np.clip(cos_beam, -1, 1))  # (NTIMES, nsub_t, n_src)

    def beam(theta, nu):
        fwhm = 1.05 * C / nu / DISH
        return np.exp(-4 * math.log(2) * (theta / fwhm) ** 2)

    # apparent (beam-weighted) flux averaged over the group and band
    fgrid = freq_asc
    for k, s in enumerate(sources):
        b = beam(theta_beam[:, :, k][..., None], fgrid[None, None, :])
        s["apparent_flux_jy"] = float(np.mean(b * src_s[k] * (fgrid / 1.4e9) ** src_a[k]))
        s["min_beam_offset_deg"] = float(np.degrees(theta_beam[:, :, k].min()))
        s["transit_integration"] = int(np.argmin(theta_beam[:, nsub_t // 2, k]))

    # ---------------- gains ----------------
    xband = (freq_asc - freq_asc[0]) / (freq_asc[-1] - freq_asc[0])
    amp = rng.uniform(0.6, 1.4, (n_ant, 2))
    ph0 = rng.uniform(-180, 180, (n_ant, 2))
    dscale = a.max_delay_ns / 4.4
    delay_ns = rng.uniform(-4.4, 4.4, (n_ant, 2)) * dscale
    big = int(rng.integers(n_ant))
    # one antenna with >= 250 deg of phase ramp across the band (3.70 ns) at the default maximum
    delay_ns[big, 0] = rng.choice([-1, 1]) * rng.uniform(3.8, 4.4) * dscale
    bp_amp = np.stack([[1 + smooth_series(rng, xband, 5, rng.uniform(0.06, 0.1)) for _ in range(2)] for _ in range(n_ant)])
    bp_ph = np.stack([[smooth_series(rng, xband, 4, rng.uniform(10, 20)) for _ in range(2)] for _ in range(n_ant)])
    phase_deg = ph0[..., None] + 360.0 * delay_ns[..., None] * 1e-9 * (freq_asc - NU_REF) + bp_ph
    gains = (amp[..., None] / math.sqrt(SEFD)) * bp_amp * np.exp(1j * np.radians(phase_deg))  # (n_ant, 2, nchan)
    drift = rng.uniform(-1, 1, (n_ant, 2)) * a.gain_drift_deg
    tfrac = (np.arange(NTIMES) + 0.5) / NTIMES - 0.5  # drift phase = drift * tfrac

    # ---------------- noise levels ----------------
    sigma_data = 1.0 / math.sqrt(2 * chan_w * DT)
    sigma_jy = SEFD * sigma_data

    # ---------------- RFI events ----------------
    events = []
    if not a.no_rfi:
        n_pers = max(3, nchan // 96)
        n_int = max(3, nchan // 128)
        free = list(range(2, nchan - 2))
        rng.shuffle(free)
        garbage = None
        if a.garbage_cell:
            garbage = (free.pop(), int(rng.integers(2)))
        for _ in range(n_pers):
            events.append(dict(kind="persistent", chans=[free.pop()], times=list(range(NTIMES)),
                               amp_sigma=float(rng.uniform(9, 40)), coherent=False))
        for j in range(n_int):
            dur = int(rng.integers(11, 15))
            st = int(rng.integers(0, NTIMES - dur + 1))
            events.append(dict(kind="intermittent", chans=[free.pop()], times=list(range(st, st + dur)),
                               amp_sigma=float(rng.uniform(5, 10)), coherent=(j == 0)))
        for frac in (0.55, 0.75):
            w = int(round(frac * nchan))
            st = int(rng.integers(0, nchan - w + 1))
            events.append(dict(kind="broadband", chans=list(range(st, st + w)), times=[int(rng.integers(NTIMES))],
                               amp_sigma=4.3, amp_per_baseline="x U(0.5, 1.5)", coherent=False))
        events.append(dict(kind="ramp", chans=[free.pop()], times=list(range(NTIMES)), amp_sigma=[2.0, 10.0],
                           coherent=False))
        if garbage is not None:
            events.append(dict(kind="garbage", chans=[garbage[0]], pols=[garbage[1]], times=list(range(NTIMES)),
                               amp_sigma=300.0, coherent=False))
        # two bursts may share times; narrowband channels never coincide with each other
    for k, ev in enumerate(events):
        ev["id"] = k
        ev["freq_hz"] = [float(freq_asc[c]) for c in ev["chans"]] if len(ev["chans"]) <= 4 else \
            [float(freq_asc[ev["chans"][0]]), float(freq_asc[ev["chans"][-1]])]
        ev.setdefault("pols", [0, 1])
        erng = np.random.default_rng(np.random.SeedSequence([a.seed, 7, k]))
        ev["_phase"] = (np.full(nbls, erng.uniform(0, 2 * np.pi)) if ev["coherent"] else erng.uniform(0, 2 * np.pi, nbls))
        ev["_bamp"] = erng.uniform(0.5, 1.5, nbls) if ev["kind"] == "broadband" else np.ones(nbls)
        if ev["coherent"]:
            ev["phase_deg"] = float(np.degrees(ev["_phase"][0]))

    # truth arrays (time, sorted baseline, chan ascending, pol)
    shape = (NTIMES, nbls, nchan, 2)
    t_rfi = np.zeros(shape, np.uint8)
    t_sig = np.zeros(shape, np.float16)
    t_kind = np.zeros(shape, np.uint8)
    t_drop = np.zeros(shape, np.uint8)

    # dropped buffers: (subband, integration, a few cross rows, all channels of the subband)
    dropped = []
    if not a.no_dropped:
        drng = np.random.default_rng(np.random.SeedSequence([a.seed, 11]))
        cross_rows = np.nonzero(ant1 != ant2)[0]
        for val in ("nan", "zero"):
            dropped.append(dict(value=val, subband=int(drng.integers(NSB)), time=int(drng.integers(NTIMES)),
                                rows=sorted(int(r) for r in drng.choice(cross_rows, 3, replace=False))))
        dropped.append(dict(value="nan", subband=int(drng.integers(NSB)), time=int(drng.integers(NTIMES)),
                            rows=[int(drng.choice(cross_rows))], channels=[int(drng.integers(n_ch))], pols=[0]))

    # ---------------- per-subband visibilities ----------------
    nblts = NTIMES * nbls
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tel = Telescope.new(
            name="OVRO_MMA", location=site, antenna_positions=ant_pos_rel,
            antenna_names=[str(s) for s in st_nums], antenna_numbers=np.array(st_nums) - 1,
            antenna_diameters=np.full(len(st_nums), DISH), instrument="DSA", x_orientation="east",
            update_from_known=False,
        )
    uvw_rows = x_ant[i2] - x_ant[i1]
    uvw = np.stack([uvw_rows @ e_hat, uvw_rows @ n_hat, uvw_rows @ s_c], axis=1)
    uvw_all = np.tile(uvw, (NTIMES, 1))
    ds_all = (s_src - s_pc[:, :, None, :])  # (NTIMES, nsub_t, n_src, 3)
    geo = np.einsum("tjki,ai->tjka", ds_all, x_ant)  # metres, (NTIMES, nsub_t, n_src, n_ant)
    fn_rng = np.random.default_rng(np.random.SeedSequence([a.seed, 5]))
    name_jitter = fn_rng.uniform(0, 3.0, NSB)
    files = []
    for sb in range(NSB):
        nrng = np.random.default_rng(np.random.SeedSequence([a.seed, 100 + sb]))
        fch = freqs_file[sb]  # (n_ch,) descending
        g_of_c = np.array([gidx(sb, c) for c in range(n_ch)])
        fsub = (fch[:, None] + ((np.arange(nsub_f) + 0.5) / nsub_f - 0.5)[None, :] * chan_w).ravel()  # (n_ch*nsub_f)
        sky = np.zeros((NTIMES, n_ch, n_ant, n_ant), np.complex128)
        for k in range(NTIMES):
            ph = (2 * np.pi / C) * fsub[None, :, None, None] * geo[k][:, None, :, :]  # (nsub_t, nf, n_src, n_ant)
            P = np.exp(1j * ph)
            W = beam(theta_beam[k][:, None, :], fsub[None, :, None]) * src_s * (fsub[None, :, None] / 1.4e9) ** src_a
            A = P * np.sqrt(W)[..., None]
            M = np.conj(np.swapaxes(A, -1, -2)) @ A  # (nsub_t, nf, n_ant, n_ant): sum_k conj(A_ka) A_kb
            sky[k] = M.reshape(nsub_t, n_ch, nsub_f, n_ant, n_ant).mean(axis=(0, 2))
        vis_sky = sky[:, :, i1, i2]  # (NTIMES, n_ch, nbls)
        vis_sky = np.moveaxis(vis_sky, 1, 2)  # (NTIMES, nbls, n_ch)
        data = np.empty((NTIMES, nbls, n_ch, 2), np.complex128)
        auto = ant1 == ant2
        for p in range(2):
            g = gains[:, p, :][:, g_of_c]  # (n_ant, n_ch)
            gt = g[None, :, :] * np.exp(1j * np.radians(drift[:, p][None, :, None] * tfrac[:, None, None]))  # (T, n_ant, n_ch)
            g1 = gt[:, i1, :]
            g2 = gt[:, i2, :]
            v = g1 * np.conj(g2) * vis_sky
            v[:, auto, :] = (v[:, auto, :].real + (np.abs(g1[:, auto, :]) ** 2) * SEFD).astype(complex)
            if not a.no_noise:
                nr = nrng.standard_normal((NTIMES, nbls, n_ch))
                ni = nrng.standard_normal((NTIMES, nbls, n_ch))
                v[:, ~auto, :] += sigma_data * (nr[:, ~auto, :] + 1j * ni[:, ~auto, :])
                v[:, auto, :] = v[:, auto, :].real * (1 + nr[:, auto, :] / math.sqrt(chan_w * DT))
            # RFI
            for ev in events:
                if p not in ev["pols"]:
                    continue
                cs = [c for c in range(n_ch) if g_of_c[c] in set(ev["chans"])]
                if not cs:
                    continue
                for c in cs:
                    gc = g_of_c[c]
                    for t in ev["times"]:
                        if ev["kind"] == "ramp":
                            amp_ev = ev["amp_sigma"][0] + (ev["amp_sigma"][1] - ev["amp_sigma"][0]) * t / (NTIMES - 1)
                        else:
                            amp_ev = ev["amp_sigma"]
                        if ev["kind"] == "garbage":
                            val = 300.0 * sigma_data * (nrng.standard_normal(nbls) + 1j * nrng.standard_normal(nbls))
                            val[auto] = np.abs(val[auto]) * math.sqrt(2)  # autocorrelations stay real
                            v[t, :, c] = val
                            sig = np.abs(val) / sigma_data
                            rows_sel = np.arange(nbls)
                        else:
                            rows_sel = np.nonzero(~auto)[0]
                            srt = row_to_sorted[rows_sel]
                            phase = ev["_phase"][srt]
                            amp_b = amp_ev * ev["_bamp"][srt]
                            # sorted orientation (a < b): g_a conj(g_b) amp sigma_Jy e^{i phi}
                            ga = np.where(row_flipped[rows_sel], g2[t, rows_sel, c], g1[t, rows_sel, c])
                            gb = np.where(row_flipped[rows_sel], g1[t, rows_sel, c], g2[t, rows_sel, c])
                            r = ga * np.conj(gb) * amp_b * sigma_jy * np.exp(1j * phase)
                            r = np.where(row_flipped[rows_sel], np.conj(r), r)
                            v[t, rows_sel, c] += r
                            sig = np.abs(r) / sigma_data
                        srt_all = row_to_sorted[rows_sel]
                        t_rfi[t, srt_all, gc, p] = 1
                        t_sig[t, srt_all, gc, p] = np.maximum(t_sig[t, srt_all, gc, p].astype(np.float32), sig).astype(np.float16)
                        t_kind[t, srt_all, gc, p] = KIND_NAMES.index(ev["kind"])
            data[..., p] = v
        for d in dropped:
            if d["subband"] != sb:
                continue
            chs = d.get("channels", list(range(n_ch)))
            pls = d.get("pols", [0, 1])
            val = np.nan if d["value"] == "nan" else 0.0
            for r in d["rows"]:
                for c in chs:
                    for p in pls:
                        data[d["time"], r, c, p] = complex(val, val)
                        t_drop[d["time"], row_to_sorted[r], g_of_c[c], p] = 1
        # ---------------- write with pyuvdata ----------------
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            uv = UVData.new(
                freq_array=fch, polarization_array=np.array(POLS), times=t_mid_int.jd, telescope=tel,
                antpairs=np.stack([ant1, ant2], axis=1), do_blt_outer=True, time_axis_faster_than_bls=False,
                integration_time=DT, channel_width=np.full(n_ch, chan_w), vis_units="uncalib",
                phase_center_catalog={0: dict(cat_name="HADEC_drift", cat_type="driftscan", cat_lon=pc_az,
                                              cat_lat=pc_alt, cat_frame="altaz")},
                phase_center_id_array=np.zeros(nblts, int), empty=True, update_telescope_from_known=False,
                history="make_independent_group.py (contimg tests/reference): independent DSA-110 group",
            )
        uv.data_array = data.reshape(nblts, n_ch, 2).astype(np.complex64)
        uv.flag_array = np.zeros((nblts, n_ch, 2), bool)
        uv.nsample_array = np.ones((nblts, n_ch, 2), np.float32)
        # pyuvdata's own uvw for this phase centre (from the antenna positions and its apparent
        # coordinates) must agree with ours; ours are stored.
        uvw_diff = float(np.max(np.abs(uv.uvw_array - uvw_all)))
        if uvw_diff > 1e-3:
            raise SystemExit(f"internal: pyuvdata's uvw differ from the generator's by {uvw_diff} m")
        uv.uvw_array = uvw_all.copy()
        uv.extra_keywords = {"phase_center_dec": float(dec_p), "ha_phase_center": 0.0, "phase_center_epoch": "HADEC",
                             "fs_table": "none (independent generator)", "applied_delays_ns": "0"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            uv.check()
        fname = (t0 + name_jitter[sb] * u.s).strftime("%Y-%m-%dT%H:%M:%S") + f"_sb{sb:02d}.hdf5"
        path = os.path.join(a.out, fname)
        comp = None if a.compress == "none" else "gzip"
        tmp = path + ".tmp"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            uv.write_uvh5(tmp, clobber=True, flags_compression=comp, nsample_compression=comp)
        if comp:
            repack_gzip(tmp, tmp + "2")
            os.replace(tmp + "2", tmp)
        with h5py.File(tmp, "a") as h:
            # as the correlator writes them (pyuvdata ignores phase_type when the file has a
            # phase_center_catalog, so its reading stays right)
            for key, val in (("object_name", "drift_" + cal_name), ("phase_type", "drift")):
                if "Header/" + key in h:
                    del h["Header/" + key]
                h["Header/" + key] = np.bytes_(val)
        os.replace(tmp, path)
        files.append(fname)
        print(f"  sb{sb:02d} -> {fname} ({_time.time() - t_start_wall:.1f} s, |uvw - pyuvdata's| <= {uvw_diff:.1e} m)", flush=True)

    # ---------------- calibrator list ----------------
    cal = dict(sources[0])
    dist1 = dict(name=jname(c_ra, c_dec + 20.0), ra_deg=c_ra, dec_deg=c_dec + 20.0 if c_dec < 60 else c_dec - 20.0,
                 flux_1400mhz_jy=12.0, spectral_index=-0.5)
    dist1["name"] = jname(dist1["ra_deg"], dist1["dec_deg"])
    dist2 = dict(ra_deg=(c_ra + 45.0) % 360.0, dec_deg=c_dec - 0.1, flux_1400mhz_jy=8.0, spectral_index=-0.9)
    dist2["name"] = jname(dist2["ra_deg"], dist2["dec_deg"])
    write_calibrators(os.path.join(a.out, "calibrators.txt"), [cal, dist1, dist2])

    # ---------------- truth ----------------
    with h5py.File(os.path.join(a.out, "truth_rfi.h5.tmp"), "w") as h:
        chunks = (1, min(nbls, 1024), min(nchan, 256), 2)
        for name, arr in (("rfi", t_rfi), ("rfi_sigma", t_sig), ("kind", t_kind), ("dropped", t_drop)):
            h.create_dataset(name, data=arr, compression="gzip", compression_opts=4, chunks=chunks, shuffle=True)
        h["kind"].attrs["kind_names"] = ",".join(KIND_NAMES)
        h["ant_1"] = np.array([b[0] for b in sorted_bls], np.int64)
        h["ant_2"] = np.array([b[1] for b in sorted_bls], np.int64)
        h["freq_hz"] = freq_asc
        h["time_jd"] = t_mid_int.jd
        h["pol"] = np.array(POLS)
        h.attrs["layout"] = "(time, sorted baseline ant_1<=ant_2, channel ascending in frequency, pol [XX, YY])"
    os.replace(os.path.join(a.out, "truth_rfi.h5.tmp"), os.path.join(a.out, "truth_rfi.h5"))

    for ev in events:
        ev.pop("_phase")
        ev.pop("_bamp")
        ev["n_samples"] = int(len(ev["chans"]) * len(ev["times"]) * len(ev["pols"]) *
                              (nbls if ev["kind"] == "garbage" else nbls - n_ant))
    gq = lambda x: np.round(x, 9).tolist()  # noqa: E731
    truth = dict(
        generator="tests/reference/make_independent_group.py",
        args=vars(a),
        site=dict(latitude_deg=SITE_LAT, longitude_deg=SITE_LON, altitude_m=SITE_ALT, ellipsoid="WGS84"),
        pointing=dict(dec_app_deg=a.pointing_dec, dec_app_rad=dec_p, ha_deg=0.0, az_deg=math.degrees(pc_az),
                      alt_deg=math.degrees(pc_alt), itrs_unit_vector=s_c.tolist(),
                      field_centre_mid_group_icrs_deg=[fc_ra, fc_dec]),
        conventions=dict(
            vis="V[row] = g[ant_1] conj(g[ant_2]) V_Jy + noise; V_Jy = sum S B exp(+2 pi i nu (s - s_c).(x_2 - x_1)/c)",
            uvw="pos(ant_2) - pos(ant_1) projected on (east, north, s_c) of HA=0, dec_app",
            stokes="unpolarised sources: XX = YY = I",
            gain_phase="phase0 + 360 * delay_ns * 1e-9 * (nu - 1.405e9) + bandpass phase (deg)",
            drift="extra phase drift_deg * ((k + 0.5) / 24 - 0.5) on integration k",
            rfi="sorted orientation: g_a conj(g_b) amp sigma_Jy exp(i phi_ab); rfi_sigma = |value| / sigma_data",
            ut1="astropy IERS (bundled tables, no download)",
        ),
        times=dict(start_utc=t0.isot, integration_s=DT, ntimes=NTIMES, time_jd=t_mid_int.jd.tolist(),
                   group_mid_utc=t_group_mid.isot, time_subsamples=nsub_t, freq_subsamples=nsub_f,
                   delta_ut1_utc_s=float(t_group_mid.delta_ut1_utc)),
        files=files,
        freq_hz=freq_asc.tolist(),
        channel_width_hz=chan_w,
        chan_per_subband=n_ch,
        sefd_jy=SEFD,
        sigma_jy=sigma_jy,
        sigma_data=sigma_data,
        antennas=dict(numbers=ants, stations=[str(s) for s in ants_st], correlator_order=order,
                      reference_antenna_number=102, reference_station="103"),
        nbls=nbls,
        gains=dict(layout="[antenna (antennas.numbers order)][pol XX, YY][channel ascending]",
                   re=gq(gains.real), im=gq(gains.imag), amplitude=amp.tolist(), phase0_deg=ph0.tolist(),
                   delay_ns=delay_ns.tolist(), big_delay_antenna=ants[big], drift_deg=drift.tolist(),
                   bandpass_amp_peak=float(np.max(np.abs(bp_amp - 1))), bandpass_phase_peak_deg=float(np.max(np.abs(bp_ph)))),
        beam=dict(kind="gaussian", fwhm="1.05 lambda / D", dish_m=DISH),
        sources=sources,
        calibrator=cal_name,
        calibrator_list="calibrators.txt",
        rfi_events=events,
        dropped=dropped,
        wall_s=None,
    )
    truth["wall_s"] = round(_time.time() - t_start_wall, 1)
    tmp = os.path.join(a.out, "truth.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(truth, fh, indent=1)
    os.replace(tmp, os.path.join(a.out, "truth.json"))
    print(f"wrote {a.out}: {len(files)} files, {n_ant} antennas, {nchan} channels, calibrator {cal_name}, "
          f"{len(events)} RFI events, {truth['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
