#!/usr/bin/env python3
"""Compare restored images against a simulated group's truth.json (benches/vs_wsclean.sh).

For every image given as NAME=PATH.fits: each truth source's flux and position from a fit of
the header's restoring beam (fixed shape; free amplitude and centre) around the brightest
pixel within BOX pixels of the truth position, and the brightest pixel's parabola-refined peak
(biased low when the beam is undersampled by the pixels, so not comparable between images
with different beams); the offset
from the truth position (arcsec, from each image's own WCS, so each tool's pixel convention is
its own); the off-source rms (plain and 1.4826 x MAD) inside the central half of the image with
a disc of MASK beams around every truth source left out; the restoring beam from the header.
When two images share one grid (same shape, reference pixel and value, increment), the rms of
their difference is printed too (dominated by the sources when the restoring beams differ);
with --residual NAME=PATH for two images, the rms of each residual and their correlation
(the same data and weighting give the same noise pattern).

    compare_images.py truth.json contimg=a.fits wsclean=b.fits [--json out.json]
"""
import argparse
import json
import math
import sys

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy.optimize import least_squares


def load(path):
    with fits.open(path) as h:
        hdr = h[0].header
        data = np.asarray(h[0].data, dtype=np.float64)
    while data.ndim > 2:
        data = data[0]
    wcs = WCS(hdr).celestial
    return data, wcs, hdr


def parabola(ym, y0, yp):
    """Offset (in [-0.5, 0.5]) and value of the vertex of a parabola through three samples."""
    den = ym - 2.0 * y0 + yp
    if den >= 0.0 or not np.isfinite(den):
        return 0.0, y0
    d = 0.5 * (ym - yp) / den
    d = max(-0.5, min(0.5, d))
    return d, y0 - 0.25 * (ym - yp) * d


def beam_fit(data, hdr, px, py):
    """Amplitude and centre (pixels) of the header's restoring beam fitted around (px, py).

    The beam's shape is held fixed (BMAJ, BMIN, BPA east of north, in sky offsets through
    CDELT1/2), so an image whose beam is undersampled by its pixels still gives the source's
    flux, and a header beam that does not match the restored components shows as a misfit."""
    bmaj, bmin, bpa = hdr["BMAJ"], hdr["BMIN"], math.radians(hdr.get("BPA", 0.0))
    c1, c2 = hdr["CDELT1"], hdr["CDELT2"]
    h = max(3, int(math.ceil(1.0 * bmaj / abs(c2))))
    ny, nx = data.shape
    y0, y1, x0, x1 = max(py - h, 0), min(py + h + 1, ny), max(px - h, 0), min(px + h + 1, nx)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    sub = data[y0:y1, x0:x1]
    sa, sb = bmaj / 2.3548200450309493, bmin / 2.3548200450309493

    def model(p):
        e = (xx - p[1]) * c1  # east offset (deg): RA grows with x when CDELT1 > 0
        n = (yy - p[2]) * c2
        a = e * math.sin(bpa) + n * math.cos(bpa)
        b = e * math.cos(bpa) - n * math.sin(bpa)
        return p[0] * np.exp(-0.5 * ((a / sa) ** 2 + (b / sb) ** 2))

    r = least_squares(lambda p: (model(p) - sub).ravel(), [data[py, px], float(px), float(py)])
    resid = r.fun.reshape(sub.shape)
    return r.x[0], r.x[1], r.x[2], float(np.sqrt(np.mean(resid**2)))


def measure(data, wcs, hdr, sources, box, mask_beams):
    ny, nx = data.shape
    cell_deg = abs(hdr["CDELT2"])
    bmaj = hdr.get("BMAJ", 0.0)
    bmin = hdr.get("BMIN", 0.0)
    out = {"sources": [], "beam_arcsec": [bmaj * 3600.0, bmin * 3600.0, hdr.get("BPA", 0.0)]}
    for s in sources:
        x, y = wcs.world_to_pixel_values(s["ra_deg"], s["dec_deg"])
        xi, yi = int(round(float(x))), int(round(float(y)))
        if not (box + 1 <= xi < nx - box - 1 and box + 1 <= yi < ny - box - 1):
            out["sources"].append(None)
            continue
        sub = data[yi - box : yi + box + 1, xi - box : xi + box + 1]
        j, i = np.unravel_index(np.nanargmax(sub), sub.shape)
        py, px = yi - box + j, xi - box + i
        dx, vx = parabola(data[py, px - 1], data[py, px], data[py, px + 1])
        dy, vy = parabola(data[py - 1, px], data[py, px], data[py + 1, px])
        # Peak: the two 1-D vertices' excess over the pixel added (separable approximation).
        peak = data[py, px] + (vx - data[py, px]) + (vy - data[py, px])
        truth = s["apparent_flux_jy"][0] if s.get("apparent_flux_jy") else s["flux_jy"]

        def offset(x, y):
            ra, dec = wcs.pixel_to_world_values(x, y)
            dra = (float(ra) - s["ra_deg"]) * math.cos(math.radians(s["dec_deg"])) * 3600.0
            return dra, (float(dec) - s["dec_deg"]) * 3600.0

        dra, ddec = offset(px + dx, py + dy)
        m = {
            "truth_jy": truth,
            "peak_jy": float(peak),
            "peak_ratio": float(peak) / truth,
            "peak_offset_arcsec": math.hypot(dra, ddec),
        }
        if hdr.get("BMAJ"):
            amp, fx, fy, misfit = beam_fit(data, hdr, px, py)
            fra, fdec = offset(fx, fy)
            m.update(
                fit_jy=float(amp),
                ratio=float(amp) / truth,
                offset_arcsec=math.hypot(fra, fdec),
                dra_arcsec=fra,
                ddec_arcsec=fdec,
                fit_rms_over_peak=misfit / abs(amp),
            )
        else:
            m.update(ratio=m["peak_ratio"], offset_arcsec=m["peak_offset_arcsec"])
        out["sources"].append(m)
    # Off-source rms: central half of the image, discs of mask_beams x BMAJ around sources.
    yy, xx = np.mgrid[0:ny, 0:nx]
    keep = (abs(xx - nx / 2) < nx / 4) & (abs(yy - ny / 2) < ny / 4) & np.isfinite(data)
    r_pix = mask_beams * max(bmaj, 2.0 * cell_deg) / cell_deg
    for s in sources:
        x, y = wcs.world_to_pixel_values(s["ra_deg"], s["dec_deg"])
        keep &= (xx - float(x)) ** 2 + (yy - float(y)) ** 2 > r_pix**2
    v = data[keep]
    out["rms_jy"] = float(np.sqrt(np.mean(v**2)))
    out["rms_mad_jy"] = float(1.4826 * np.median(np.abs(v - np.median(v))))
    out["n_rms_pixels"] = int(v.size)
    out["max_abs_jy"] = float(np.nanmax(np.abs(data)))
    return out


def same_grid(a, b):
    ha, hb = a[2], b[2]
    if a[0].shape != b[0].shape:
        return False
    for k in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2"):
        if abs(ha[k] - hb[k]) > 1e-9 * max(1.0, abs(ha[k])):
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("truth")
    ap.add_argument("images", nargs="+", help="NAME=PATH.fits")
    ap.add_argument("--box", type=int, default=3, help="search half-width (pixels)")
    ap.add_argument("--mask-beams", type=float, default=10.0)
    ap.add_argument("--residual", action="append", default=[], help="NAME=PATH.fits (residual image)")
    ap.add_argument("--json")
    a = ap.parse_args()
    truth = json.load(open(a.truth))
    sources = truth["sources"]
    loaded, res = {}, {}
    for item in a.images:
        name, path = item.split("=", 1)
        loaded[name] = load(path)
        res[name] = measure(*loaded[name], sources, a.box, a.mask_beams)
        res[name]["path"] = path
        h = loaded[name][2]
        res[name]["grid"] = {
            k: h.get(k) for k in ("NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CTYPE1")
        }
    names = list(res)
    lines = []
    hdr = "| source | truth (apparent) Jy | " + " | ".join(
        f"{n} beam fit Jy (/truth) | {n} offset \" | {n} fit misfit | {n} peak pixel (/truth)" for n in names
    ) + " |"
    lines += [hdr, "| " + " | ".join(["---"] * (2 + 4 * len(names))) + " |"]
    for i, s in enumerate(sources):
        t = s["apparent_flux_jy"][0] if s.get("apparent_flux_jy") else s["flux_jy"]
        row = [f"{i}", f"{t:.4f}"]
        for n in names:
            m = res[n]["sources"][i]
            if m is None:
                row += ["outside", "-", "-", "-"]
            else:
                fit = f"{m['fit_jy']:.4f} ({m['ratio']:.3f})" if "fit_jy" in m else "-"
                mis = f"{m['fit_rms_over_peak']:.3f}" if "fit_jy" in m else "-"
                row += [fit, f"{m['offset_arcsec']:.2f}", mis, f"{m['peak_jy']:.4f} ({m['peak_ratio']:.3f})"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for n in names:
        r = res[n]
        ms = [m for m in r["sources"] if m]
        err = [abs(m["ratio"] - 1.0) for m in ms]
        off = [m["offset_arcsec"] for m in ms]
        r["median_abs_flux_error"] = float(np.median(err)) if err else None
        r["median_offset_arcsec"] = float(np.median(off)) if off else None
        b = r["beam_arcsec"]
        lines.append(
            f"- {n}: beam {b[0]:.1f}\" x {b[1]:.1f}\" pa {b[2]:.1f}; off-source rms {r['rms_jy'] * 1e3:.3f} mJy/beam "
            f"(MAD {r['rms_mad_jy'] * 1e3:.3f}); median |fit/truth - 1| {r['median_abs_flux_error']:.4f}, "
            f"median offset {r['median_offset_arcsec']:.2f}\"; grid {r['grid']['NAXIS1']}x{r['grid']['NAXIS2']} "
            f"crpix ({r['grid']['CRPIX1']}, {r['grid']['CRPIX2']}) {r['grid']['CTYPE1']}"
        )
    if len(names) == 2:
        a0, a1 = loaded[names[0]], loaded[names[1]]
        if same_grid(a0, a1):
            d = a0[0] - a1[0]
            rmsd = float(np.sqrt(np.nanmean(d**2)))
            res["difference_rms_jy"] = rmsd
            lines.append(f"- {names[0]} - {names[1]} on the same grid: rms {rmsd * 1e3:.3f} mJy/beam")
        else:
            lines.append(f"- {names[0]} and {names[1]} are on different grids (no pixel difference)")
    resid = {}
    for item in a.residual:
        name, path = item.split("=", 1)
        d, _, h = load(path)
        n = d.shape[0]
        cen = d[n // 4 : 3 * n // 4, n // 4 : 3 * n // 4]
        resid[name] = cen
        res.setdefault(name, {})["residual_rms_central_half_jy"] = float(np.sqrt(np.nanmean(cen**2)))
        lines.append(f"- {name} residual image, central half: rms {res[name]['residual_rms_central_half_jy'] * 1e3:.3f} mJy/beam")
    if len(resid) == 2:
        r0, r1 = resid.values()
        if r0.shape == r1.shape:
            cc = float(np.corrcoef(r0.ravel(), r1.ravel())[0, 1])
            res["residual_correlation"] = cc
            lines.append(f"- residuals' correlation (central half, same grid): {cc:.3f}")
    print("\n".join(lines))
    if a.json:
        json.dump(res, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
