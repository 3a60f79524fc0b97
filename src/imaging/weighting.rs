//! Imaging weights: natural (the data weights), uniform and Briggs robust. The weight
//! density is accumulated on the image's uv grid (cell 1 / (N_grid cell)) from every group
//! of the image, summed over ranks by the caller, then each visibility's weight is divided
//! by (1 + f^2 density) (Briggs 1995; uniform is the limit f^2 density >> 1). An optional
//! Gaussian taper multiplies the weights by the transform of an image-plane Gaussian of
//! the given FWHM, exp(-pi^2 theta^2 (u^2 + v^2) / (4 ln 2)), as WSClean's -taper-gaussian.

use super::gridder::GridSpec;
use crate::primitives::C_M_S;
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

/// Calls `f(first index of the (row, channel) weights, uv cell, u^2 + v^2 in wavelengths^2)`
/// for every used row and channel that falls on the grid.
fn for_each_cell(
    spec: &GridSpec,
    freqs: &[f64],
    npol: usize,
    uvw_m: &[[f64; 3]],
    use_row: &[bool],
    mut f: impl FnMut(usize, usize, f64),
) {
    let nc = freqs.len();
    for (r, uvw) in uvw_m.iter().enumerate().filter(|(r, _)| use_row[*r]) {
        for (c, &fr) in freqs.iter().enumerate() {
            let lam = fr / C_M_S;
            let (u, v) = (uvw[0] * lam, uvw[1] * lam);
            if let Some(k) = cell(spec, u, v) {
                f((r * nc + c) * npol, k, u * u + v * v);
            }
        }
    }
}

/// How weights are rescaled: the scheme with its Briggs f^2 and the rank-combined density
/// (empty for natural), and the taper's image-plane FWHM (rad; 0 = none).
pub struct Reweight<'a> {
    pub scheme: Weighting,
    pub f2: f64,
    pub density: &'a [f64],
    pub taper_fwhm_rad: f64,
}

impl Reweight<'_> {
    /// Whether any weight changes.
    pub fn active(&self) -> bool {
        self.scheme != Weighting::Natural || self.taper_fwhm_rad > 0.0
    }
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
    for_each_cell(spec, freqs, npol, uvw_m, use_row, |i, k, _| {
        density[k] += weight[i..i + npol].iter().map(|&x| x as f64).sum::<f64>();
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
    for_each_cell(spec, freqs, npol, uvw_m, use_row, |i, k, uv2| {
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
        for w in &mut weight[i..i + npol] {
            *w = (*w as f64 * t / div) as f32;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
