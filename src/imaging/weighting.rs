//! Imaging weights: natural (the data weights), uniform and Briggs robust. The weight
//! density is accumulated on the image's uv grid (cell 1 / (N_grid cell)) from every group
//! of the image, summed over ranks by the caller, then each visibility's weight is divided
//! by (1 + f^2 density) (Briggs 1995; uniform is the limit f^2 density >> 1). An optional
//! Gaussian taper multiplies the weights by the transform of an image-plane Gaussian of
//! the given FWHM, exp(-pi^2 theta^2 (u^2 + v^2) / (4 ln 2)), as WSClean's -taper-gaussian.

use super::gridder::GridSpec;
use crate::primitives::C_M_S;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    #[default]
    Natural,
    Uniform,
    Briggs,
}

/// The uv cell of (u, v) in wavelengths on the image's grid (both half-planes folded).
#[inline]
fn cell(spec: &GridSpec, u: f64, v: f64) -> Option<usize> {
    let ng = spec.n_grid as i64;
    let scale = spec.n_grid as f64 * spec.cell_rad;
    let (mut x, mut y) = ((u * scale).round() as i64, (v * scale).round() as i64);
    if y < 0 || (y == 0 && x < 0) {
        x = -x;
        y = -y;
    }
    let (gx, gy) = (x + ng / 2, y + ng / 2);
    (gx >= 0 && gy >= 0 && gx < ng && gy < ng).then(|| (gy * ng + gx) as usize)
}

/// Calls `f(channel, uv cell, u^2 + v^2 in wavelengths^2)` for a row's channels that fall
/// on the grid, in channel order.
#[inline]
fn row_cells(spec: &GridSpec, freqs: &[f64], uvw: &[f64; 3], mut f: impl FnMut(usize, usize, f64)) {
    for (c, &fr) in freqs.iter().enumerate() {
        let lam = fr / C_M_S;
        let (u, v) = (uvw[0] * lam, uvw[1] * lam);
        if let Some(k) = cell(spec, u, v) {
            f(c, k, u * u + v * v);
        }
    }
}

/// The grid row a row's channel at frequency `fr` reaches (before the grid's bounds are
/// checked), rounded exactly as `cell` rounds it: |round(v)| is `cell`'s row after the fold
/// (rounding half away from zero is odd-symmetric), non-decreasing in frequency.
#[inline]
fn folded_row(spec: &GridSpec, v_m: f64, fr: f64) -> i64 {
    let scale = spec.n_grid as f64 * spec.cell_rad;
    let v = v_m * (fr / C_M_S);
    spec.n_grid as i64 / 2 + ((v * scale).round() as i64).abs()
}

/// Grid-row bounds of `n` stripes holding about equal numbers of samples (each used row's
/// channels counted at its middle channel's grid row).
fn balanced_stripes(
    spec: &GridSpec,
    freqs: &[f64],
    uvw_m: &[[f64; 3]],
    use_row: &[bool],
    n: usize,
) -> Vec<usize> {
    let ng = spec.n_grid;
    let mid = freqs[freqs.len() / 2];
    let mut hist = vec![0usize; ng];
    for (uvw, _) in uvw_m.iter().zip(use_row).filter(|(_, &u)| u) {
        hist[folded_row(spec, uvw[1], mid).clamp(0, ng as i64 - 1) as usize] += 1;
    }
    let total: usize = hist.iter().sum();
    let mut bounds = vec![0];
    let mut acc = 0;
    for (y, h) in hist.iter().enumerate() {
        acc += h;
        if bounds.len() < n
            && acc * n >= total * bounds.len()
            && y + 1 > *bounds.last().unwrap_or(&0)
        {
            bounds.push(y + 1);
        }
    }
    bounds.push(ng);
    bounds.dedup();
    bounds
}

/// How weights are rescaled: the scheme with its Briggs f^2 and the rank-combined density
/// (empty for natural), and the taper's image-plane FWHM (rad; 0 = none).
pub struct Reweight<'a> {
    pub scheme: Weighting,
    pub f2: f64,
    pub density: &'a [f64],
    pub taper_fwhm_rad: f64,
}

impl<'a> Reweight<'a> {
    /// The reweighting of the imaging settings `im` with the image's combined `density`
    /// (`accumulate_density` over every group of the image, on every rank; empty for
    /// natural weighting).
    pub fn of(im: &crate::imaging::settings::ImagingConfig, density: &'a [f64]) -> Self {
        Reweight {
            scheme: im.weighting,
            f2: briggs_f2(density, im.robust),
            density,
            taper_fwhm_rad: (im.taper_gaussian_arcsec / 3600.0).to_radians(),
        }
    }

    /// Whether any weight changes.
    pub fn active(&self) -> bool {
        changes_weights(self.scheme, self.taper_fwhm_rad)
    }
}

/// Whether imaging reweights the data (`Reweight::active`): any scheme but natural, or a
/// taper (its FWHM in radians, or in any unit: only its sign counts).
pub fn changes_weights(scheme: Weighting, taper_fwhm: f64) -> bool {
    scheme != Weighting::Natural || taper_fwhm > 0.0
}

/// The Gaussian taper's weight factor at u^2 + v^2 (wavelengths^2).
pub fn taper(fwhm_rad: f64, uv2: f64) -> f64 {
    (-(std::f64::consts::PI * fwhm_rad).powi(2) * uv2 / (4.0 * std::f64::consts::LN_2)).exp()
}

/// Adds a group's weights to the density grid (`n_grid^2` entries). `uvw_m` per row,
/// `weight` per (row, channel, pol), rows where `use_row` is false skipped.
pub fn accumulate_density(
    spec: &GridSpec,
    density: &mut [f64],
    freqs: &[f64],
    npol: usize,
    uvw_m: &[[f64; 3]],
    weight: &[f32],
    use_row: &[bool],
) {
    let (ng, nc) = (spec.n_grid, freqs.len());
    if nc == 0 {
        return;
    }
    // In parallel over stripes of grid rows: each stripe adds the samples landing in it,
    // rows and channels in order, so every cell sums the same terms in the same order as a
    // serial pass (bit-identical).
    let bounds = balanced_stripes(
        spec,
        freqs,
        uvw_m,
        use_row,
        4 * rayon::current_num_threads(),
    );
    let mut stripes: Vec<(usize, &mut [f64])> = Vec::new();
    let mut rest = density;
    for w in bounds.windows(2) {
        let (a, b) = rest.split_at_mut((w[1] - w[0]) * ng);
        stripes.push((w[0], a));
        rest = b;
    }
    let (f0, f1) = (freqs[0], freqs[nc - 1]);
    stripes.into_par_iter().for_each(|(y0, stripe)| {
        let (lo, hi) = (y0 as i64, (y0 + stripe.len() / ng) as i64);
        for (r, uvw) in uvw_m.iter().enumerate().filter(|(r, _)| use_row[*r]) {
            let (ya, yb) = (folded_row(spec, uvw[1], f0), folded_row(spec, uvw[1], f1));
            if ya.max(yb) < lo || ya.min(yb) >= hi {
                continue;
            }
            row_cells(spec, freqs, uvw, |c, k, _| {
                if (y0 * ng..y0 * ng + stripe.len()).contains(&k) {
                    let i = (r * nc + c) * npol;
                    stripe[k - y0 * ng] +=
                        weight[i..i + npol].iter().map(|&x| x as f64).sum::<f64>();
                }
            });
        }
    });
}

/// The Briggs f^2 for robustness `robust` from the summed density: (5 10^-R)^2 / (sum d^2 / sum w).
pub fn briggs_f2(density: &[f64], robust: f64) -> f64 {
    let (s1, s2) = density
        .iter()
        .fold((0.0, 0.0), |(a, b), &d| (a + d, b + d * d));
    if s2 <= 0.0 {
        return 0.0;
    }
    (5.0 * 10f64.powf(-robust)).powi(2) / (s2 / s1)
}

/// Rescales the weights in place.
pub fn apply(
    spec: &GridSpec,
    rw: &Reweight,
    freqs: &[f64],
    npol: usize,
    uvw_m: &[[f64; 3]],
    weight: &mut [f32],
    use_row: &[bool],
) {
    if !rw.active() {
        return;
    }
    let nc = freqs.len();
    weight
        .par_chunks_mut(nc * npol)
        .zip(uvw_m)
        .zip(use_row)
        .filter(|(_, &u)| u)
        .for_each(|((w, uvw), _)| {
            row_cells(spec, freqs, uvw, |c, k, uv2| {
                let d = rw.density.get(k).copied().unwrap_or(0.0);
                let div = match rw.scheme {
                    _ if d <= 0.0 => 1.0,
                    Weighting::Uniform => d,
                    Weighting::Briggs => 1.0 + rw.f2 * d,
                    Weighting::Natural => 1.0,
                };
                let t = if rw.taper_fwhm_rad > 0.0 {
                    taper(rw.taper_fwhm_rad, uv2)
                } else {
                    1.0
                };
                for w in &mut w[c * npol..(c + 1) * npol] {
                    *w = (*w as f64 * t / div) as f32;
                }
            })
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parallel density (stripes of grid rows) and reweighting (rows) equal a serial
    /// pass bit for bit: rows in every direction, some off the grid, some not in use.
    #[test]
    fn parallel_density_and_weights_equal_a_serial_pass() {
        let spec = GridSpec::new(256, (20.0f64 / 3600.0).to_radians(), 1e-4);
        let freqs: Vec<f64> = (0..48).map(|c| 1.31e9 + 2.44e5 * c as f64).collect();
        let (nc, npol) = (freqs.len(), 2);
        let nrow = 3000;
        let uvw: Vec<[f64; 3]> = (0..nrow)
            .map(|r| {
                let a = r as f64 * 2.399963;
                // One row in ten beyond the grid's edge.
                let len = if r % 10 == 3 {
                    3000.0
                } else {
                    20.0 + 800.0 * ((r * 7919) % nrow) as f64 / nrow as f64
                };
                let v = if r % 50 == 0 { 0.0 } else { len * a.sin() };
                [len * a.cos(), v, 0.0]
            })
            .collect();
        let use_row: Vec<bool> = (0..nrow).map(|r| r % 13 != 0).collect();
        let weight: Vec<f32> = (0..nrow * nc * npol)
            .map(|i| 0.5 + (i % 11) as f32 * 0.25)
            .collect();
        let mut density = vec![0.0; spec.n_grid * spec.n_grid];
        accumulate_density(&spec, &mut density, &freqs, npol, &uvw, &weight, &use_row);
        let mut serial = vec![0.0; spec.n_grid * spec.n_grid];
        let mut cells = 0;
        for (r, row) in uvw.iter().enumerate().filter(|(r, _)| use_row[*r]) {
            row_cells(&spec, &freqs, row, |c, k, _| {
                let i = (r * nc + c) * npol;
                serial[k] += weight[i..i + npol].iter().map(|&x| x as f64).sum::<f64>();
                cells += 1;
            });
        }
        assert!(
            cells > nrow * nc / 2 && cells < nrow * nc,
            "{cells} samples on the grid"
        );
        assert!(density == serial, "the parallel density differs");
        let rw = Reweight {
            scheme: Weighting::Briggs,
            f2: briggs_f2(&density, 0.0),
            density: &density,
            taper_fwhm_rad: (30.0f64 / 3600.0).to_radians(),
        };
        let mut got = weight.clone();
        apply(&spec, &rw, &freqs, npol, &uvw, &mut got, &use_row);
        let mut want = weight.clone();
        for (r, row) in uvw.iter().enumerate().filter(|(r, _)| use_row[*r]) {
            row_cells(&spec, &freqs, row, |c, k, uv2| {
                let d = density[k];
                let div = if d <= 0.0 { 1.0 } else { 1.0 + rw.f2 * d };
                let t = taper(rw.taper_fwhm_rad, uv2);
                for w in &mut want[(r * nc + c) * npol..(r * nc + c + 1) * npol] {
                    *w = (*w as f64 * t / div) as f32;
                }
            });
        }
        assert!(got == want, "the parallel reweighting differs");
        assert!(got != weight);
    }

    /// The taper is the transform of an image-plane Gaussian of that FWHM: check the
    /// numerical transform of exp(-4 ln2 x^2 / theta^2) at one u against the formula.
    #[test]
    fn taper_is_the_transform_of_the_image_gaussian() {
        let theta = (30.0f64 / 3600.0).to_radians();
        for u in [0.0, 2000.0, 5000.0, 9000.0] {
            let n = 20000;
            let dx = 8.0 * theta / n as f64;
            let (mut re, mut norm) = (0.0, 0.0);
            for i in 0..n {
                let x = (i as f64 - n as f64 / 2.0) * dx;
                let g = (-4.0 * std::f64::consts::LN_2 * x * x / (theta * theta)).exp();
                re += g * (2.0 * std::f64::consts::PI * u * x).cos();
                norm += g;
            }
            let expect = taper(theta, u * u);
            assert!(
                (re / norm - expect).abs() < 1e-9,
                "u {u}: {} vs {expect}",
                re / norm
            );
        }
    }
}
