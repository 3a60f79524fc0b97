"""Independent check of a Measurement Set written by `contimg convert`.

Reads the MS with python-casacore and checks, against the simulation's truth.json:
- structure: the MS v2 main-table columns and subtables, cell shapes, correlations XX/YY,
  frequencies ascending within and across spectral windows, the FIELD phase centre equal
  to the group's centre (0.1 arcsec);
- UVW against pyuvdata's calc_uvw (its J2000 convention, the frame position angle
  recomputed converged) from the ANTENNA table's ITRF positions: within 1 mm;
- visibilities: for a noise-free single point source, the phase of each visibility after
  removing exp(+2 pi i (u l + v m + w (n - 1)) / lambda) (l, m, n of the truth position
  about the phase centre, SIN) — the MS convention — is a position offset under 0.5 arcsec
  (differential aberration, J2000 vs apparent) with < 1e-3 rad rms left, and a direct
  Fourier transform of the MS at the source gives its apparent flux (1 %);
- with --wsclean: WSClean 3 images the MS (dirty, natural weighting); the peak lies within
  0.1 pixel of the truth position through the FITS WCS and equals the direct transform (1 %);
- with --contimg-image: contimg's own dirty image of the group agrees with the direct
  transform at the source (1 %).

Run: python tests/reference/check_ms.py --ms G.ms --truth night/truth.json --group 0
     --iers tests/data/finals2000A_extract.txt [--wsclean] [--contimg-image G.dirty.fits]
Needs python-casacore, numpy, astropy, pyuvdata (>= 3). Exit status 1 on any failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from astropy import units as u
from astropy.coordinates import EarthLocation
from astropy.io import fits
from astropy.utils import iers
from astropy.wcs import WCS
from casacore.tables import table

C = 299792458.0
REQUIRED_MAIN = ["UVW", "FLAG", "FLAG_CATEGORY", "WEIGHT", "SIGMA", "ANTENNA1", "ANTENNA2", "ARRAY_ID", "DATA_DESC_ID",
                 "EXPOSURE", "FEED1", "FEED2", "FIELD_ID", "FLAG_ROW", "INTERVAL", "OBSERVATION_ID", "PROCESSOR_ID",
                 "SCAN_NUMBER", "SIGMA", "STATE_ID", "TIME", "TIME_CENTROID", "DATA", "WEIGHT_SPECTRUM"]
REQUIRED_SUB = ["ANTENNA", "DATA_DESCRIPTION", "FEED", "FIELD", "FLAG_CMD", "HISTORY", "OBSERVATION", "POINTING",
                "POLARIZATION", "PROCESSOR", "SPECTRAL_WINDOW", "STATE"]
SITE = (37.233386982, -118.283405115, 1188.0)  # DSA-110 (deg, deg, m), as in the UVH5 headers

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def lmn(ra, dec, ra0, dec0):
    """Direction cosines of (ra, dec) about (ra0, dec0), l towards east (rad)."""
    l = np.cos(dec) * np.sin(ra - ra0)
    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ra - ra0)
    return l, m, np.sqrt(1.0 - l * l - m * m)


def dft(uvw, lam, vis, wt, l, m, n):
    """Weighted direct Fourier transform at (l, m): the dirty-image value (Jy/beam)."""
    ph = -2j * np.pi * (uvw[:, 0:1] * l + uvw[:, 1:2] * m + uvw[:, 2:3] * (n - 1.0)) / lam
    return float(np.sum((wt * vis * np.exp(ph)).real) / np.sum(wt))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ms", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--group", type=int, default=0)
    ap.add_argument("--iers", required=True)
    ap.add_argument("--wsclean", action="store_true")
    ap.add_argument("--contimg-image")
    a = ap.parse_args()
    truth = json.load(open(a.truth))
    grp = truth["groups"][a.group]

    # --- structure
    t = table(a.ms, ack=False)
    cols = t.colnames()
    check(all(c in cols for c in REQUIRED_MAIN), f"main table has the MS v2 columns ({len(cols)} columns)")
    kw = t.getkeywords()
    check(all(s in kw for s in REQUIRED_SUB), "main table links every required subtable")
    spw = table(a.ms + "/SPECTRAL_WINDOW", ack=False)
    dd = table(a.ms + "/DATA_DESCRIPTION", ack=False)
    nspw = spw.nrows()
    chan = [spw.getcell("CHAN_FREQ", i) for i in range(nspw)]
    spw_of_dd = dd.getcol("SPECTRAL_WINDOW_ID")
    ascending = all(np.all(np.diff(f) > 0) for f in chan) and all(chan[i + 1][0] > chan[i][-1] for i in range(nspw - 1))
    check(ascending, f"frequencies ascend within and across {nspw} spectral window(s)")
    allf = np.concatenate(chan)
    check(np.allclose(np.sort(allf), np.sort(truth["freq_hz"]), rtol=0, atol=1.0), f"{len(allf)} channels equal the simulated ones")
    pol = table(a.ms + "/POLARIZATION", ack=False)
    check(list(pol.getcell("CORR_TYPE", 0)) == [9, 12], "correlations XX, YY")
    nrow = t.nrows()
    ddid = t.getcol("DATA_DESC_ID")
    nbl_t = nrow // (len(grp["times_jd"]) * nspw)
    check(nbl_t * len(grp["times_jd"]) * nspw == nrow, f"{nrow} rows = times x windows x {nbl_t} baselines")
    field = table(a.ms + "/FIELD", ack=False)
    ra0, dec0 = field.getcell("PHASE_DIR", 0)[0]
    sep = np.hypot((ra0 - np.deg2rad(grp["centre_ra_deg"])) * np.cos(dec0), dec0 - np.deg2rad(grp["centre_dec_deg"]))
    check(np.rad2deg(sep) * 3600 < 0.1, f"FIELD phase centre = the group centre ({np.rad2deg(sep) * 3600:.4f} arcsec)")
    times = np.unique(t.getcol("TIME"))
    dt = np.abs(times / 86400.0 + 2400000.5 - np.array(grp["times_jd"])).max() * 86400
    check(dt < 1e-3, f"TIME (MJD s) equal the integration centres ({dt * 1e3:.3f} ms)")

    # --- UVW against pyuvdata
    iers.conf.auto_download = False
    iers.earth_orientation_table.set(iers.IERS_A.open(a.iers))
    from pyuvdata.utils.phasing import calc_app_coords, calc_frame_pos_angle, calc_uvw
    from pyuvdata.utils.times import get_lst_for_time
    loc = EarthLocation.from_geodetic(SITE[1] * u.deg, SITE[0] * u.deg, SITE[2] * u.m)
    site = np.array([loc.x.to_value("m"), loc.y.to_value("m"), loc.z.to_value("m")])
    antpos = table(a.ms + "/ANTENNA", ack=False).getcol("POSITION") - site
    a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
    jd = t.getcol("TIME") / 86400.0 + 2400000.5
    app_ra, app_dec = calc_app_coords(lon_coord=ra0, lat_coord=dec0, coord_frame="icrs", time_array=jd, telescope_loc=loc)
    pa = calc_frame_pos_angle(time_array=jd, app_ra=app_ra, app_dec=app_dec, telescope_loc=loc, ref_frame="icrs", offset_pos=1e-5)
    lst = get_lst_for_time(jd, telescope_loc=loc, astrometry_library="erfa")
    ref = calc_uvw(app_ra=app_ra, app_dec=app_dec, frame_pa=pa, lst_array=lst, use_ant_pos=True, antenna_positions=antpos,
                   antenna_numbers=np.arange(len(antpos)), ant_1_array=a1, ant_2_array=a2, telescope_lat=loc.lat.rad,
                   telescope_lon=loc.lon.rad)
    uvw = t.getcol("UVW")
    duvw = np.abs(uvw - ref).max()
    check(duvw < 1e-3, f"UVW agree with pyuvdata within 1 mm (max {duvw * 1e3:.3f} mm, |b| up to {np.abs(uvw).max():.0f} m)")

    # --- visibilities of the group's single source
    srcs = [s for s in truth["sources"] if s["apparent_flux_jy"][a.group] > 0.01 * max(x["apparent_flux_jy"][a.group] for x in truth["sources"])]
    check(len(srcs) == 1, "the group sees one source (needed by the phase check)")
    s = srcs[0]
    l, m, n = lmn(np.deg2rad(s["ra_deg"]), np.deg2rad(s["dec_deg"]), ra0, dec0)
    data, flag, wsp = t.getcol("DATA"), t.getcol("FLAG"), t.getcol("WEIGHT_SPECTRUM")
    freq = np.array([chan[spw_of_dd[d]] for d in ddid])
    lam = C / freq
    cross = a1 != a2
    vis = 0.5 * (data[..., 0] + data[..., 1])
    wt = np.where(flag[..., 0] | flag[..., 1], 0.0, wsp[..., 0] + wsp[..., 1])
    wt[~cross] = 0.0
    model = np.exp(2j * np.pi * (uvw[:, 0:1] * l + uvw[:, 1:2] * m + uvw[:, 2:3] * (n - 1.0)) / lam)
    good = wt > 0
    resid = np.angle(vis * np.conj(model))[good]
    # What is left is a position offset: J2000 (l, m) differ from the apparent offset the
    # telescope sees by differential aberration (~20" x the 0.7 deg offset). Fit it.
    ul = np.broadcast_to((uvw[:, 0:1] / lam), wt.shape)[good]
    vl = np.broadcast_to((uvw[:, 1:2] / lam), wt.shape)[good]
    (dl, dm), *_ = np.linalg.lstsq(2 * np.pi * np.stack([ul, vl], axis=1), resid, rcond=None)
    post = resid - 2 * np.pi * (ul * dl + vl * dm)
    rms0, rms1 = float(np.sqrt(np.mean(resid ** 2))), float(np.sqrt(np.mean(post ** 2)))
    off = np.rad2deg(np.hypot(dl, dm)) * 3600
    check(off < 0.5 and rms1 < 1e-3, f"visibility phases match the source at ({np.rad2deg(l):.3f}, {np.rad2deg(m):.3f}) deg: "
          f"rms {rms0:.2e} rad, an offset of {off:.3f} arcsec, then {rms1:.2e} rad")
    peak = dft(uvw, lam, vis, wt, l, m, n)
    app = s["apparent_flux_jy"][a.group]
    check(abs(peak / app - 1) < 0.01, f"direct transform at the source {peak:.4f} Jy = apparent flux {app:.4f} Jy ({100 * (peak / app - 1):+.2f} %)")

    def image_check(path, name, world_to_pix):
        h = fits.open(path)[0]
        img = np.squeeze(h.data)
        w = WCS(h.header).celestial
        x, y = world_to_pix(w, s["ra_deg"], s["dec_deg"])
        xi, yi = int(round(x)), int(round(y))
        box = img[yi - 2:yi + 3, xi - 2:xi + 3]
        j, i = np.unravel_index(np.argmax(box), box.shape)
        py, px = yi - 2 + j, xi - 2 + i
        c = img[py - 1:py + 2, px - 1:px + 2]
        dx = 0.5 * (c[1, 0] - c[1, 2]) / (c[1, 0] - 2 * c[1, 1] + c[1, 2])
        dy = 0.5 * (c[0, 1] - c[2, 1]) / (c[0, 1] - 2 * c[1, 1] + c[2, 1])
        off = np.hypot(px + dx - x, py + dy - y)
        check(off < 0.1, f"{name}: source peak within 0.1 pixel of the truth position ({off:.3f} px)")
        val = float(img[py, px])
        # the transform at the peak pixel's own position
        ra_p, dec_p = w.all_pix2world(px, py, 0)
        lp, mp, np_ = lmn(np.deg2rad(float(ra_p)), np.deg2rad(float(dec_p)), ra0, dec0)
        ref_v = dft(uvw, lam, vis, wt, lp, mp, np_)
        check(abs(val / ref_v - 1) < 0.01, f"{name}: peak pixel {val:.4f} Jy/beam = direct transform {ref_v:.4f} ({100 * (val / ref_v - 1):+.2f} %)")

    def w2p(w, ra, dec):
        x, y = w.all_world2pix(ra, dec, 0)
        return float(x), float(y)

    if a.contimg_image:
        image_check(a.contimg_image, "contimg dirty image", w2p)
    if a.wsclean:
        exe = shutil.which("wsclean")
        check(exe is not None, "wsclean is installed")
        if exe:
            with tempfile.TemporaryDirectory() as d:
                ms = os.path.join(d, "g.ms")  # wsclean cannot take ':' in names
                shutil.copytree(a.ms, ms)
                cell = 15.0
                npix = 512
                cmd = [exe, "-quiet", "-reorder", "-size", str(npix), str(npix), "-scale", f"{cell}asec", "-weight", "natural",
                       "-niter", "0", "-use-wgridder", "-wgridder-accuracy", "1e-6", "-padding", "2", "-name", os.path.join(d, "w"), ms]
                r = subprocess.run(cmd, capture_output=True, text=True)
                check(r.returncode == 0, "wsclean ran" + ("" if r.returncode == 0 else f": {r.stdout[-500:]} {r.stderr[-500:]}"))
                if r.returncode == 0:
                    image_check(os.path.join(d, "w-dirty.fits"), "WSClean dirty image", w2p)

    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all MS checks passed")


if __name__ == "__main__":
    main()
