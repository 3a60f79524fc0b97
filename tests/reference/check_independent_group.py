#!/usr/bin/env python3
"""Checks a group written by make_independent_group.py WITHOUT contimg and without the
generator's own geometry code.

    /work/main/.venv/bin/python tests/reference/check_independent_group.py DIR [--subbands 0,7,15]

1. Layout: 16 files, sb00 highest, channels descending, contiguous band, time-major, 24
   integrations, one Header/time_array[0] for the group, autocorrelations, rows with
   ant_1 > ant_2, extra_keywords as the correlator writes them.
2. Sky model by pyuvdata's phasing machinery (ERFA apparent coordinates, its own LST): for each
   truth source, a constant S(nu) B(t, nu) phased at the source is rephased by pyuvdata to the
   file's drift phase centre (driftscan, HA = 0); the beam B comes from astropy AltAz
   separations. Data / (g_1 conj(g_2)) - model must be noise: chi^2 per real/imaginary part
   ~ 1 on samples without RFI (all baselines and short baselines, where smearing is nil).
3. Calibrator: the data less the other sources, gain-corrected and phased by pyuvdata to the
   calibrator, averaged over cross baselines and channels per integration and subband: real
   part / (S B) ~ 1, imaginary part ~ 0 within the noise.
4. A direct astropy computation of the calibrator's fringe phase (its AltAz direction and the
   pointing's, as ECEF vectors) on the longest baselines against the data's phase.
5. RFI truth: residual samples above 6 sigma outside the RFI/dropped mask (should be none),
   and |residual| / sigma against the recorded rfi_sigma inside it.
Prints the numbers and exits non-zero when a check fails.
"""

import argparse
import glob
import json
import logging
import math
import os
import sys
import warnings

warnings.filterwarnings("ignore", module="astropy")

import h5py
import numpy as np
from astropy.utils import iers

iers.conf.auto_download = False
logging.getLogger("pyuvdata").setLevel(logging.ERROR)
import astropy.units as u  # noqa: E402
from astropy.coordinates import AltAz, EarthLocation, SkyCoord  # noqa: E402
from astropy.time import Time  # noqa: E402
from pyuvdata import UVData  # noqa: E402

C = 299792458.0


def fail(msg, failures):
    print("FAIL:", msg)
    failures.append(msg)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--subbands", default="all", help="comma list of subbands to check in depth (default all)")
    a = ap.parse_args(argv)
    truth = json.load(open(os.path.join(a.dir, "truth.json")))
    failures = []
    files = sorted(glob.glob(os.path.join(a.dir, "*_sb??.hdf5")), key=lambda p: p[-7:])
    # ---------------- 1. layout ----------------
    if len(files) != 16:
        fail(f"{len(files)} files, expected 16", failures)
    t0s, fmax = [], []
    for p in files:
        with h5py.File(p, "r") as h:
            hd = h["Header"]
            t = hd["time_array"][()]
            nbls, ntimes = int(hd["Nbls"][()]), int(hd["Ntimes"][()])
            f = hd["freq_array"][()].ravel()
            t0s.append(t[0])
            fmax.append(f.max())
            assert ntimes == 24 and len(t) == nbls * ntimes
            assert np.all(np.diff(f) < 0), "channels not descending"
            tb = t.reshape(ntimes, nbls)
            assert np.all(tb == tb[:, :1]) and np.all(np.diff(tb[:, 0]) > 0), "not time-major"
            assert abs(np.diff(tb[:, 0]).mean() * 86400 - 12.884901888) < 1e-3
            a1, a2 = hd["ant_1_array"][:nbls], hd["ant_2_array"][:nbls]
            n_rev = int(np.sum(a1 > a2))
            n_auto = int(np.sum(a1 == a2))
            ek = hd["extra_keywords"]
            assert abs(ek["phase_center_dec"][()] - math.radians(truth["pointing"]["dec_app_deg"])) < 1e-12
            assert ek["ha_phase_center"][()] == 0.0 and bytes(ek["phase_center_epoch"][()]) == b"HADEC"
            assert h["Data/visdata"].dtype == np.complex64 and not h["Data/flags"][()].any()
    if len(set(t0s)) != 1:
        fail("Header/time_array[0] differs between the files", failures)
    if not np.all(np.diff(fmax) < 0):
        fail("sb00 is not the highest frequency", failures)
    fr = np.array(truth["freq_hz"])
    print(f"layout: 16 files, {nbls} baselines ({n_auto} autos, {n_rev} rows with ant_1 > ant_2), "
          f"band {fr[0] / 1e6:.3f}-{fr[-1] / 1e6:.3f} MHz in {len(fr)} channels, steps "
          f"{np.ptp(np.diff(fr)):.2e} Hz apart (contiguous)")
    if n_rev == 0:
        fail("no rows with ant_1 > ant_2", failures)

    # ---------------- truth pieces ----------------
    ants = truth["antennas"]["numbers"]
    aidx = {x: i for i, x in enumerate(ants)}
    G = np.array(truth["gains"]["re"]) + 1j * np.array(truth["gains"]["im"])  # (ant, pol, chan asc)
    drift = np.array(truth["gains"]["drift_deg"])
    sig_data = truth["sigma_data"]
    nchan = len(fr)
    n_ch = truth["chan_per_subband"]
    site = truth["site"]
    loc = EarthLocation.from_geodetic(site["longitude_deg"] * u.deg, site["latitude_deg"] * u.deg, site["altitude_m"] * u.m)
    az, alt = truth["pointing"]["az_deg"], truth["pointing"]["alt_deg"]
    srcs = truth["sources"]
    cal_i = [i for i, s in enumerate(srcs) if s["role"] == "calibrator"][0]
    with h5py.File(os.path.join(a.dir, "truth_rfi.h5"), "r") as h:
        rfi = h["rfi"][()]
        rsig = h["rfi_sigma"][()].astype(np.float32)
        kind = h["kind"][()]
        drop = h["dropped"][()]
        tb1, tb2 = h["ant_1"][()], h["ant_2"][()]
    bl_index = {(int(x), int(y)): k for k, (x, y) in enumerate(zip(tb1, tb2))}

    sbs = range(16) if a.subbands == "all" else [int(x) for x in a.subbands.split(",")]
    chi_all, chi_short, n_out_mask, n_clean = [], [], 0, 0
    ratio_rfi = []
    cal_rows = []
    phase_err = []
    for sb in sbs:
        path = [p for p in files if p.endswith(f"_sb{sb:02d}.hdf5")][0]
        uv = UVData.from_file(path, file_type="uvh5")
        times = np.unique(uv.time_array)
        T = len(times)
        nb = uv.Nbls
        f = uv.freq_array.ravel()
        gch = np.searchsorted(fr, f)
        assert np.allclose(fr[gch], f)
        a1, a2 = uv.ant_1_array, uv.ant_2_array
        i1 = np.array([aidx[x] for x in a1])
        i2 = np.array([aidx[x] for x in a2])
        tidx = np.searchsorted(times, uv.time_array)
        tfrac = (tidx + 0.5) / T - 0.5
        g = np.empty((uv.Nblts, len(f), 2), complex)
        for p in range(2):
            ga = G[i1][:, p, :][:, gch] * np.exp(1j * np.radians(drift[i1, p] * tfrac))[:, None]
            gb = G[i2][:, p, :][:, gch] * np.exp(1j * np.radians(drift[i2, p] * tfrac))[:, None]
            g[..., p] = ga * np.conj(gb)
        # beam by astropy: separation of each source from the fixed (az, alt) pointing
        tt = Time(times, format="jd", scale="utc")
        point = SkyCoord(AltAz(az=np.full(T, az) * u.deg, alt=np.full(T, alt) * u.deg, obstime=tt, location=loc))
        models = []
        for s in srcs:
            sep = point.separation(SkyCoord(s["ra_deg"] * u.deg, s["dec_deg"] * u.deg)).rad  # (T,)
            fwhm = 1.05 * C / f / 4.65
            B = np.exp(-4 * math.log(2) * (sep[:, None] / fwhm[None, :]) ** 2)  # (T, nf)
            S = s["flux_1400mhz_jy"] * (f / 1.4e9) ** s["spectral_index"]
            m = uv.copy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.phase(ra=math.radians(s["ra_deg"]), dec=math.radians(s["dec_deg"]), epoch="J2000", cat_name=s["name"])
                m.data_array = np.repeat((S[None, :] * B)[tidx][:, :, None], 2, axis=2).astype(complex)
                m.phase(lon=math.radians(az), lat=math.radians(alt), phase_frame="altaz", cat_type="driftscan",
                        cat_name="back")
            models.append(m.data_array)
        model = np.sum(models, axis=0)
        data = uv.data_array.astype(complex)
        cross = (a1 != a2)
        srt = np.array([bl_index[(min(x, y), max(x, y))] for x, y in zip(a1, a2)])
        # truth masks in file layout (blt, chan file order, pol)
        mk = rfi[tidx[:, None], srt[:, None], gch[None, :], :]
        sg = rsig[tidx[:, None], srt[:, None], gch[None, :], :]
        dr = drop[tidx[:, None], srt[:, None], gch[None, :], :]
        resid = data - g * model  # data units
        chi = resid / sig_data
        clean = cross[:, None, None] & (mk == 0) & (dr == 0)
        blen = np.linalg.norm(uv.uvw_array, axis=1)
        short = (blen < 300.0)[:, None, None] & clean
        chi_all.append(chi[clean])
        chi_short.append(chi[short])
        n_out_mask += int(np.sum(np.abs(chi[clean]) > 6.0))
        n_clean += int(clean.sum())
        strong = (mk == 1) & (dr == 0) & (sg >= 5) & (kind[tidx[:, None], srt[:, None], gch[None, :], :] != 5)
        ratio_rfi.append(np.abs(chi[strong]) / sg[strong])
        # ---------------- 3. calibrator ----------------
        others = model - models[cal_i]
        c = uv.copy()
        c.data_array = np.where(clean, data / g - others, 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c.phase(ra=math.radians(srcs[cal_i]["ra_deg"]), dec=math.radians(srcs[cal_i]["dec_deg"]), epoch="J2000",
                    cat_name="cal")
        m = uv.copy()
        m.data_array = models[cal_i].copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.phase(ra=math.radians(srcs[cal_i]["ra_deg"]), dec=math.radians(srcs[cal_i]["dec_deg"]), epoch="J2000",
                    cat_name="cal")
        w = clean.astype(float)
        sj2 = (sig_data / np.abs(g)) ** 2  # variance per part (Jy^2)
        for k in range(T):
            sel = tidx == k
            ww = w[sel]
            n = ww.sum()
            if n == 0:
                continue
            mean = (c.data_array[sel] * ww).sum() / n
            expect = (m.data_array[sel].real * ww).sum() / n
            err = math.sqrt((sj2[sel] * ww).sum()) / n
            cal_rows.append((sb, k, mean.real, mean.imag, expect, err))
        # ---------------- 4. direct astropy (AltAz) geometry of the calibrator ----------------
        # the calibrator's topocentric direction from astropy's AltAz frame (no refraction) and
        # the drift centre from the pointing's (az, alt), both turned into ECEF unit vectors with
        # the geodetic east/north/up axes; phase = 2 pi nu b.(s_cal - s_c) / c.
        s = srcs[cal_i]
        aa = SkyCoord(s["ra_deg"] * u.deg, s["dec_deg"] * u.deg).transform_to(AltAz(obstime=tt, location=loc))

        def enu_to_ecef(az_r, alt_r):
            la, lo = loc.lat.rad, loc.lon.rad
            e, n, up = np.cos(alt_r) * np.sin(az_r), np.cos(alt_r) * np.cos(az_r), np.sin(alt_r)
            ex = np.array([-math.sin(lo), math.cos(lo), 0.0])
            nx = np.array([-math.sin(la) * math.cos(lo), -math.sin(la) * math.sin(lo), math.cos(la)])
            ux = np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])
            return np.multiply.outer(e, ex) + np.multiply.outer(n, nx) + np.multiply.outer(up, ux)

        s_cal = enu_to_ecef(aa.az.rad, aa.alt.rad)  # (T, 3)
        s_c = enu_to_ecef(np.array(math.radians(az)), np.array(math.radians(alt)))
        pos = uv.telescope.antenna_positions
        num = list(uv.telescope.antenna_numbers)
        bx = np.array([pos[num.index(y)] - pos[num.index(x)] for x, y in zip(a1, a2)])  # ECEF offsets
        dw = np.einsum("bi,bi->b", bx, s_cal[tidx] - s_c)  # metres, (blt,)
        pred = 2 * np.pi * dw[:, None] * f[None, :] / C
        resid_cal = data / g - others  # cal only + noise (Jy)
        longb = cross & (blen > np.quantile(blen[cross], 0.8))
        for p in range(2):
            sel = longb[:, None] & clean[:, :, p]
            ang = np.angle(resid_cal[:, :, p] * np.exp(-1j * pred))[sel]
            snr = np.abs(models[cal_i][:, :, p])[sel] / (sig_data / np.abs(g[:, :, p]))[sel]
            phase_err.append((ang, snr))
        print(f"  sb{sb:02d}: {uv.Nblts} blts x {uv.Nfreqs} ch, checked", flush=True)

    # ---------------- report ----------------
    ca = np.concatenate(chi_all)
    cs = np.concatenate(chi_short)
    chi2 = float(np.mean(np.abs(ca) ** 2) / 2)
    chi2s = float(np.mean(np.abs(cs) ** 2) / 2)
    print(f"residual (data - gains x pyuvdata model) / sigma on {ca.size} clean cross samples: "
          f"chi2/part = {chi2:.4f} (all baselines), {chi2s:.4f} ({cs.size} samples on baselines < 300 m); "
          f"mean re {ca.real.mean():+.4f}, im {ca.imag.mean():+.4f}")
    print(f"  samples > 6 sigma outside the RFI/dropped mask: {n_out_mask} of {n_clean}")
    if not (0.9 < chi2s < 1.1):
        fail(f"short-baseline chi2 {chi2s:.3f} is not ~1", failures)
    if chi2 > 1.5:
        fail(f"all-baseline chi2 {chi2:.3f} is far from 1 (beyond smearing)", failures)
    if n_out_mask > 1e-5 * n_clean + 3:
        fail(f"{n_out_mask} samples above 6 sigma outside the mask", failures)
    rr = np.concatenate(ratio_rfi)
    if rr.size:
        print(f"  RFI samples (rfi_sigma >= 5, not garbage): {rr.size}, |residual| / rfi_sigma median {np.median(rr):.3f}, "
              f"5-95% {np.quantile(rr, 0.05):.3f}-{np.quantile(rr, 0.95):.3f}")
        if not 0.85 < np.median(rr) < 1.15:
            fail("injected RFI amplitudes do not match rfi_sigma", failures)
    cr = np.array(cal_rows)
    if cr.size:
        ratio = cr[:, 2] / cr[:, 4]
        pull_re = (cr[:, 2] - cr[:, 4]) / cr[:, 5]
        pull_im = cr[:, 3] / cr[:, 5]
        print(f"calibrator {truth['calibrator']} (phased by pyuvdata, gains divided out, other sources subtracted), "
              f"{len(cr)} integration x subband averages: Re/(S B) = {ratio.mean():.5f} +- {ratio.std():.5f} "
              f"(S B {cr[:, 4].min():.2f}-{cr[:, 4].max():.2f} Jy), pulls re {pull_re.mean():+.2f} +- {pull_re.std():.2f}, "
              f"im {pull_im.mean():+.2f} +- {pull_im.std():.2f}; apparent flux in truth "
              f"{srcs[cal_i]['apparent_flux_jy']:.3f} Jy")
        if abs(ratio.mean() - 1) > 0.01 or pull_im.std() > 1.5 or abs(pull_im.mean()) > 0.5:
            fail("calibrator visibilities are not real and equal to S B", failures)
    ang = np.concatenate([x[0] for x in phase_err])
    snr = np.concatenate([x[1] for x in phase_err])
    good = snr > 5
    if good.any():
        rms = float(np.degrees(np.sqrt(np.mean(ang[good] ** 2))))
        expect = float(np.degrees(np.sqrt(np.mean(1 / snr[good] ** 2))))
        print(f"calibrator fringe phase (astropy AltAz geometry, longest 20% baselines, SNR > 5, {good.sum()} samples): "
              f"data - prediction mean {np.degrees(ang[good].mean()):+.3f} deg, rms {rms:.3f} deg "
              f"(noise alone {expect:.3f} deg)")
        if rms > 1.5 * expect + 0.5:
            fail("calibrator phases disagree with the direct astropy computation", failures)
    print("OK" if not failures else f"{len(failures)} checks failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
