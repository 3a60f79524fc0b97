//! Imaging weights: natural (the data weights), uniform and Briggs robust. The weight
//! density is accumulated on the image's uv grid (cell 1 / (N_grid cell)) from every group
//! of the image, summed over ranks by the caller, then each visibility's weight is divided
//! by (1 + f^2 density) (Briggs 1995; uniform is the limit f^2 density >> 1).

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

/// Calls `f(first index of the (row, channel) weights, uv cell)` for every used row and
/// channel that falls on the grid.
fn for_each_cell(spec: &GridSpec, freqs: &[f64], npol: usize, uvw_m: &[[f64; 3]], use_row: &[bool], mut f: impl FnMut(usize, usize)) {
    let nc = freqs.len();
    for (r, uvw) in uvw_m.iter().enumerate().filter(|(r, _)| use_row[*r]) {
        for (c, &fr) in freqs.iter().enumerate() {
            let lam = fr / C_M_S;
            if let Some(k) = cell(spec, uvw[0] * lam, uvw[1] * lam) {
                f((r * nc + c) * npol, k);
            }
        }
    }
}

/// Adds a group's weights to the density grid (`n_grid^2` entries). `uvw_m` per row,
/// `weight` per (row, channel, pol), rows where `use_row` is false skipped.
pub fn accumulate_density(spec: &GridSpec, density: &mut [f64], freqs: &[f64], npol: usize, uvw_m: &[[f64; 3]], weight: &[f32], use_row: &[bool]) {
    for_each_cell(spec, freqs, npol, uvw_m, use_row, |i, k| {
        density[k] += weight[i..i + npol].iter().map(|&x| x as f64).sum::<f64>();
    });
}

/// The Briggs f^2 for robustness `robust` from the summed density: (5 10^-R)^2 / (sum d^2 / sum w).
pub fn briggs_f2(density: &[f64], robust: f64) -> f64 {
    let (s1, s2) = density.iter().fold((0.0, 0.0), |(a, b), &d| (a + d, b + d * d));
    if s2 <= 0.0 {
        return 0.0;
    }
    (5.0 * 10f64.powf(-robust)).powi(2) / (s2 / s1)
}

/// Rescales the weights in place.
#[allow(clippy::too_many_arguments)]
pub fn apply(spec: &GridSpec, scheme: Weighting, f2: f64, density: &[f64], freqs: &[f64], npol: usize, uvw_m: &[[f64; 3]], weight: &mut [f32], use_row: &[bool]) {
    if scheme == Weighting::Natural {
        return;
    }
    for_each_cell(spec, freqs, npol, uvw_m, use_row, |i, k| {
        let d = density[k];
        if d <= 0.0 {
            return;
        }
        let div = match scheme {
            Weighting::Uniform => d,
            Weighting::Briggs => 1.0 + f2 * d,
            Weighting::Natural => 1.0,
        };
        for w in &mut weight[i..i + npol] {
            *w = (*w as f64 / div) as f32;
        }
    });
}
