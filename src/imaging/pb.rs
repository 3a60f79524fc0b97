//! The primary beam of an image: the Airy power pattern of a 4.65 m dish about each
//! integration's pointing (HA = 0 at the pointing declination), averaged over the group's
//! integrations and band, on the image's SIN grid.

use super::gridder::GridSpec;
use super::Centre;
use crate::primitives::astrometry::{radec_to_vec, separation, FrameOfDate, Site, UvwBasis};
use crate::primitives::beam::airy_power;
use crate::primitives::iers::EarthOrientation;
use rayon::prelude::*;

/// PB image (row-major, same pixel convention as the gridder's images).
#[allow(clippy::too_many_arguments)]
pub fn primary_beam(
    spec: &GridSpec,
    centre: Centre,
    times_jd: &[f64],
    pointing_dec: f64,
    site: &Site,
    eop: &EarthOrientation,
    freqs: &[f64],
    dish_m: f64,
) -> Vec<f64> {
    let n = spec.n_image;
    // Pointing directions (ICRS) at up to 6 times; up to 6 frequencies across the band.
    let pick = |len: usize, k: usize| -> Vec<usize> {
        (0..k.min(len))
            .map(|i| {
                if k.min(len) == 1 {
                    len / 2
                } else {
                    i * (len - 1) / (k.min(len) - 1)
                }
            })
            .collect()
    };
    let pointings: Vec<[f64; 3]> = pick(times_jd.len(), 6)
        .into_iter()
        .map(|i| {
            let f = FrameOfDate::new(eop.epoch(times_jd[i]), site);
            let (ra, dec) = f.hadec_to_icrs(0.0, pointing_dec);
            radec_to_vec(ra, dec)
        })
        .collect();
    let fs: Vec<f64> = pick(freqs.len(), 6).into_iter().map(|i| freqs[i]).collect();
    let basis = UvwBasis::new(radec_to_vec(centre.ra_rad, centre.dec_rad), [0.0, 0.0, 1.0]);
    let c = (n / 2) as f64;
    let eval = |x: f64, y: f64| -> f64 {
        let (l, m) = ((c - x) * spec.cell_rad, (y - c) * spec.cell_rad);
        if l * l + m * m >= 1.0 {
            return 0.0;
        }
        let s = basis.from_lm(l, m);
        let mut sum = 0.0;
        for p in &pointings {
            let th = separation(s, *p);
            for &f in &fs {
                sum += airy_power(th, f, dish_m);
            }
        }
        sum / (pointings.len() * fs.len()).max(1) as f64
    };
    // Coarse grid, then bilinear interpolation (the beam is smooth on these scales).
    let step = (n / 128).max(1);
    let nc = n / step + 2;
    let coarse: Vec<f64> = (0..nc * nc)
        .into_par_iter()
        .map(|i| eval(((i % nc) * step) as f64, ((i / nc) * step) as f64))
        .collect();
    let mut out = vec![0.0; n * n];
    out.par_chunks_mut(n).enumerate().for_each(|(y, row)| {
        let (gy, fy) = (y / step, (y % step) as f64 / step as f64);
        for (x, v) in row.iter_mut().enumerate() {
            let (gx, fx) = (x / step, (x % step) as f64 / step as f64);
            let a = coarse[gy * nc + gx] * (1.0 - fx) + coarse[gy * nc + gx + 1] * fx;
            let b = coarse[(gy + 1) * nc + gx] * (1.0 - fx) + coarse[(gy + 1) * nc + gx + 1] * fx;
            *v = a * (1.0 - fy) + b * fy;
        }
    });
    out
}
