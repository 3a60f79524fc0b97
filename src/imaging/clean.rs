//! Deconvolution: Hogbom or Clark minor cycles (image domain) between major cycles;
//! restoring beam fitted to the PSF main lobe; restoration.

use super::clark::{clark, ClarkPsf, Round};
use super::settings::ImagingConfig;
use crate::primitives::stats::median_and_mad_sigma;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The minor-cycle algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MinorAlgorithm {
    /// Every iteration searches the whole residual and subtracts the PSF patch.
    Hogbom,
    /// Iterations on the brightest pixels only, the full PSF subtracted between rounds by
    /// FFT (src/imaging/clark.rs); much faster on large images.
    #[default]
    Clark,
}

/// Pixels at each edge where components are never placed, whatever `imaging.clean_border`.
pub const EDGE_PX: usize = 4;

/// State carried across major cycles.
#[derive(Default)]
pub struct CleanState {
    pub iterations: usize,
    pub mask: Option<Vec<bool>>,
    pub finished: bool,
    /// The last major cycle's disagreement with the minor cycle's residual before it, per
    /// Jy of components the minor cycle subtracted (term 0; see `measure_error`). None
    /// until a major cycle has been measured.
    pub error_per_jy: Option<f64>,
    clark: Option<Vec<ClarkPsf>>,
}

impl CleanState {
    /// Records how far the major cycle's residual `after` lies from the minor cycle's
    /// `before` (the largest |difference| where components may go), per Jy of the
    /// increment `delta` (sum of |flux|). The difference is what the minor cycle's PSF model
    /// missed: the PSF's change across the image and over the drifting beam, gridding
    /// errors, outlier refits. Returns this cycle's value.
    pub fn measure_error(
        &mut self,
        before: &[f64],
        after: &[f64],
        delta: &[f64],
        n: usize,
        p: &ImagingConfig,
    ) -> Option<f64> {
        let flux: f64 = delta.iter().map(|x| x.abs()).sum();
        if flux == 0.0 || before.len() != n * n || after.len() != n * n {
            return None;
        }
        let b = border(p, n);
        let off = (b..n - b)
            .into_par_iter()
            .map(|y| {
                let row = y * n + b..y * n + n - b;
                before[row.clone()]
                    .iter()
                    .zip(&after[row])
                    .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
            })
            .reduce(|| 0.0, f64::max);
        let e = off / flux;
        self.error_per_jy = Some(e);
        Some(e)
    }
}

/// Pixels at each edge where no component goes (`imaging.clean_border`, at least
/// EDGE_PX): a source just outside the image shows only part of its main lobe on the last
/// pixels, which no component there fits.
fn border(p: &ImagingConfig, n: usize) -> usize {
    ((p.clean_border * n as f64).round() as usize)
        .max(EDGE_PX)
        .min(n / 2 - 1)
}

/// Runs minor cycles on `residuals` (T spectral terms of n x n, Jy/beam; T = 1 for plain
/// MFS, 2 for multi-term MFS — see `clark`) with `psfs` (2T - 1 PSFs of 2n x 2n, the first
/// peaking at 1 at (n, n): a component anywhere in the image sees the PSF over the whole
/// image, so components farther apart than half the image still see each other), adding components to `models` (Jy/pixel per term) and `deltas` (this
/// cycle's increments). Stops at the major-cycle limit (1 - mgain) x starting peak (or
/// deeper once a major cycle has shown how well the PSF predicts it: `Round::stop`), the
/// thresholds, or niter. Returns the residual peak reached. The thresholds are judged
/// afresh at the start of every minor cycle (the robust sigma falls as sources are
/// removed): CLEAN is finished when a minor cycle starts at or below them, when one that
/// started within 2x of them reached them (after its major cycle), or when niter is spent.
/// Peaks, thresholds and masks are those of term 0.
#[allow(clippy::too_many_arguments)]
pub fn minor_cycle(
    residuals: &mut [Vec<f64>],
    psfs: &[Vec<f64>],
    n: usize,
    p: &ImagingConfig,
    state: &mut CleanState,
    models: &mut [Vec<f64>],
    deltas: &mut [Vec<f64>],
    compute: &dyn crate::compute::Compute,
) -> f64 {
    let sigma = median_and_mad_sigma(&residuals[0])
        .map(|x| x.1)
        .unwrap_or(0.0);
    let threshold = p.threshold_jy.max(p.auto_threshold * sigma);
    // Components only inside the clean border.
    let border = border(p, n);
    let inside = |i: usize| {
        let (x, y) = (i % n, i / n);
        x >= border && y >= border && x < n - border && y < n - border
    };
    let peak = |ok: &(dyn Fn(usize) -> bool + Sync)| {
        residuals[0]
            .par_iter()
            .enumerate()
            .filter(|(i, _)| ok(*i))
            .map(|(_, v)| v.abs())
            .reduce(|| 0.0, f64::max)
    };
    // Auto-mask (WSClean's -auto-mask): unmasked down to auto_mask sigma; from the minor
    // cycle that starts there on, only the pixels then holding components are cleaned, down
    // to the thresholds (noise peaks elsewhere take no flux from the sources).
    let mask_level = p.auto_mask * sigma;
    let masking = p.auto_mask > 0.0 && mask_level > threshold;
    if masking && state.mask.is_none() && peak(&inside) <= mask_level {
        state.mask = Some(models[0].iter().map(|&m| m != 0.0).collect());
    }
    let unmasked_phase = masking && state.mask.is_none();
    let stop_abs = if unmasked_phase {
        mask_level
    } else {
        threshold
    };
    let mask = state.mask.take();
    let eligible = |i: usize| inside(i) && mask.as_ref().is_none_or(|m| m[i]);
    let start = peak(&eligible);
    let mut last = start;
    if start > stop_abs && start > 0.0 && state.iterations < p.niter {
        let round = Round {
            gain: p.gain,
            niter: p.niter,
            half_patch: p.psf_patch,
            floor: stop_abs,
            mgain_stop: (1.0 - p.mgain) * start,
            deep: state
                .error_per_jy
                .filter(|_| p.minor_error > 0.0)
                .map(|e| e / p.minor_error),
            start,
            eligible: &eligible,
        };
        last = match p.minor_cycle {
            MinorAlgorithm::Hogbom if residuals.len() == 1 => hogbom(
                &mut residuals[0],
                &psfs[0],
                n,
                &round,
                &mut state.iterations,
                &mut models[0],
                &mut deltas[0],
            ),
            // Multi-term MFS runs on Clark's machinery whatever the choice (validated).
            _ => {
                let cps = state.clark.get_or_insert_with(|| {
                    psfs.iter()
                        .map(|q| ClarkPsf::new(q, n, p.psf_patch.min(n), compute))
                        .collect()
                });
                clark(
                    residuals,
                    psfs,
                    n,
                    cps,
                    &round,
                    &mut state.iterations,
                    models,
                    deltas,
                    compute,
                )
            }
        };
    }
    state.mask = mask;
    // Nothing to do below the thresholds. A cycle that started near them (within 2x) and
    // reached them is the last: the major cycle that follows makes model and residual
    // consistent, and near the noise another minor cycle would only take a few noise
    // peaks (each costing a whole major cycle). Early cycles start far above the
    // thresholds (a robust sigma still raised by sidelobes) and are judged afresh.
    let reached = last <= stop_abs && start <= 2.0 * stop_abs;
    // Reaching the mask level only ends the unmasked phase.
    state.finished = state.iterations >= p.niter
        || start == 0.0
        || (!unmasked_phase && (start <= stop_abs || reached));
    last
}

/// Hogbom iterations: peak search over the whole residual, PSF patch subtracted.
fn hogbom(
    residual: &mut [f64],
    psf: &[f64],
    n: usize,
    r: &Round,
    iterations: &mut usize,
    model: &mut [f64],
    delta: &mut [f64],
) -> f64 {
    let peak_of = |res: &[f64]| -> (usize, f64) {
        res.par_iter()
            .enumerate()
            .filter(|(i, _)| (r.eligible)(*i))
            .map(|(i, &v)| (i, v))
            .reduce(
                || (0, 0.0),
                |a, b| if b.1.abs() > a.1.abs() { b } else { a },
            )
    };
    // The PSF is 2n x 2n with its peak at (n, n).
    let (c, m) = (n as i64, 2 * n);
    let h = r.half_patch.min(n) as i64;
    let mut last = r.start;
    let mut subtracted = 0.0;
    while *iterations < r.niter {
        let (i, v) = peak_of(residual);
        last = v.abs();
        if last <= r.stop(subtracted) || last == 0.0 {
            break;
        }
        if last > 1.05 * r.start {
            // Divergence guard: let a major cycle correct the residual.
            log::warn!("clean: residual peak grew from {:.4} to {last:.4} in a minor cycle; starting a major cycle", r.start);
            break;
        }
        let f = r.gain * v;
        subtracted += f.abs();
        model[i] += f;
        delta[i] += f;
        let (px, py) = ((i % n) as i64, (i / n) as i64);
        let y0 = (py - h).max(0);
        let y1 = (py + h).min(n as i64 - 1);
        residual[(y0 as usize) * n..(y1 as usize + 1) * n]
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(k, row)| {
                let y = y0 + k as i64;
                let sy = (y - py + c) as usize;
                let x0 = (px - h).max(0);
                let x1 = (px + h).min(n as i64 - 1);
                for x in x0..=x1 {
                    let sx = (x - px + c) as usize;
                    row[x as usize] -= f * psf[sy * m + sx];
                }
            });
        *iterations += 1;
    }
    last
}

/// The central n x n of a 2n x 2n image (the PSF at the image's size: peak at (n/2, n/2)).
pub fn central(img: &[f64], n: usize) -> Vec<f64> {
    let m = 2 * n;
    assert_eq!(img.len(), m * m, "a 2n x 2n image");
    (0..n)
        .flat_map(|y| {
            img[(y + n / 2) * m + n / 2..(y + n / 2) * m + n / 2 + n]
                .iter()
                .copied()
        })
        .collect()
}

/// Restoring beam (FWHM major, minor in pixels; position angle in degrees east of north).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Beam {
    pub major_px: f64,
    pub minor_px: f64,
    pub pa_deg: f64,
}

/// The restoring beam fitted to a PSF (see [`super::beamfit`]).
pub use super::beamfit::fit_beam;

/// Restored image: model convolved with the Gaussian beam (peak 1 per Jy component) plus
/// the residual.
pub fn restore(model: &[f64], residual: &[f64], n: usize, beam: &Beam) -> Vec<f64> {
    let to_sigma = 1.0 / (8.0 * std::f64::consts::LN_2).sqrt();
    let (sa, sb) = (beam.major_px * to_sigma, beam.minor_px * to_sigma);
    let th = beam.pa_deg.to_radians();
    let r = (3.5 * sa).ceil() as i64;
    // Gaussian kernel on the pixel grid in (east, north) offsets.
    let mut kern = Vec::new();
    for dy in -r..=r {
        for dx in -r..=r {
            let (e, nn) = (-(dx as f64), dy as f64);
            let along = e * th.sin() + nn * th.cos();
            let across = e * th.cos() - nn * th.sin();
            let v = (-0.5 * (along * along / (sa * sa) + across * across / (sb * sb))).exp();
            if v > 1e-6 {
                kern.push((dx, dy, v));
            }
        }
    }
    let comps: Vec<(usize, f64)> = model
        .iter()
        .enumerate()
        .filter(|(_, &v)| v != 0.0)
        .map(|(i, &v)| (i, v))
        .collect();
    let mut out = residual.to_vec();
    for (i, f) in comps {
        let (x, y) = ((i % n) as i64, (i / n) as i64);
        for &(dx, dy, v) in &kern {
            let (xx, yy) = (x + dx, y + dy);
            if xx >= 0 && yy >= 0 && xx < n as i64 && yy < n as i64 {
                out[yy as usize * n + xx as usize] += f * v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(n: usize, fx: f64, fy: f64) -> Vec<f64> {
        let c = (n / 2) as f64;
        let k = 4.0 * std::f64::consts::LN_2;
        (0..n * n)
            .map(|i| {
                let (x, y) = ((i % n) as f64 - c, (i / n) as f64 - c);
                (-k * (x * x / (fx * fx) + y * y / (fy * fy))).exp()
            })
            .collect()
    }

    #[test]
    fn beam_fit_recovers_a_gaussian() {
        let b = fit_beam(&gaussian(64, 8.0, 5.0), 64);
        assert!(
            (b.major_px - 8.0).abs() < 0.4 && (b.minor_px - 5.0).abs() < 0.4,
            "{b:?}"
        );
        assert!((b.pa_deg - 90.0).abs() < 1.0, "major axis east-west: {b:?}");
    }

    /// A 2n x 2n PSF: a Gaussian main lobe, a 10 % sidelobe ring (so Clark's active list
    /// is a strict subset of the image) and a 20 % sidelobe ring at `far` pixels.
    fn ringed_psf(n: usize, far: f64) -> Vec<f64> {
        let m = 2 * n;
        let c = n as f64;
        gaussian(m, 3.0, 3.0)
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let r = (((i % m) as f64 - c).powi(2) + ((i / m) as f64 - c).powi(2)).sqrt();
                g + 0.1 * (-(r - 12.0).powi(2) / 2.0).exp() + 0.2 * (-(r - far).powi(2) / 2.0).exp()
            })
            .collect()
    }

    /// The dirty image of point sources (x, y, flux) through a 2n x 2n PSF.
    fn dirty(psf: &[f64], n: usize, sources: &[(usize, usize, f64)]) -> Vec<f64> {
        let m = 2 * n;
        let mut res = vec![0.0; n * n];
        for &(x, y, f) in sources {
            for (i, r) in res.iter_mut().enumerate() {
                let (sx, sy) = ((i % n) + n - x, (i / n) + n - y);
                *r += f * psf[sy * m + sx];
            }
        }
        res
    }

    /// Up to `cycles` minor cycles (until CLEAN is finished) of one term on `res` through
    /// `psf`: the residual, the model and the state.
    fn clean_one_term(
        res: Vec<f64>,
        psf: &[f64],
        n: usize,
        p: &ImagingConfig,
        cycles: usize,
    ) -> (Vec<f64>, Vec<f64>, CleanState) {
        let mut st = CleanState::default();
        let (mut models, mut deltas) = (vec![vec![0.0; n * n]], vec![vec![0.0; n * n]]);
        let mut residuals = vec![res];
        let psfs = [psf.to_vec()];
        for _ in 0..cycles {
            minor_cycle(
                &mut residuals,
                &psfs,
                n,
                p,
                &mut st,
                &mut models,
                &mut deltas,
                &crate::compute::Cpu,
            );
            if st.finished {
                break;
            }
        }
        let model = models.pop().expect("one term");
        (residuals.pop().expect("one term"), model, st)
    }

    /// Two point sources through `ringed_psf` (the far ring beyond the image).
    fn two_sources(n: usize) -> (Vec<f64>, Vec<f64>) {
        let psf = ringed_psf(n, 3.0 * n as f64);
        let res = dirty(&psf, n, &[(20, 30, 2.0), (40, 22, 0.7)]);
        (psf, res)
    }

    fn recovers_point_sources(algorithm: MinorAlgorithm, psf_patch: usize) {
        let n = 64;
        let (psf, mut res) = two_sources(n);
        let p = ImagingConfig {
            minor_cycle: algorithm,
            niter: 2000,
            gain: 0.1,
            mgain: 1.0,
            threshold_jy: 1e-4,
            auto_threshold: 0.0,
            auto_mask: 0.0,
            psf_patch,
            clean_border: 0.125,
            ..Default::default()
        };
        let (res, model, st) = clean_one_term(std::mem::take(&mut res), &psf, n, &p, 1);
        let (res, model) = (&res, &model);
        let comps: Vec<(usize, usize, f64)> = model
            .iter()
            .enumerate()
            .filter(|(_, v)| v.abs() > 1e-4)
            .map(|(i, &v)| (i % n, i / n, v))
            .collect();
        assert!(
            (model[30 * n + 20] - 2.0).abs() < 1e-3 && (model[22 * n + 40] - 0.7).abs() < 1e-3,
            "{comps:?}"
        );
        // Every pixel of the inner window is below the threshold (the border is never cleaned).
        for (i, v) in res.iter().enumerate() {
            let (x, y) = (i % n, i / n);
            if (8..56).contains(&x) && (8..56).contains(&y) {
                assert!(v.abs() < 2e-4, "residual {v} at ({x}, {y})");
            }
        }
        assert!(st.iterations < 2000);
    }

    /// A 2n x 2n PSF from `k` pseudo-random uv samples (|u|, |v| < 0.2 cycles per pixel):
    /// the transform of non-negative weights, with sidelobes of ~1/sqrt(k) everywhere.
    fn sparse_uv_psf(n: usize, k: usize) -> Vec<f64> {
        let m = 2 * n;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let uv: Vec<(f64, f64)> = (0..k)
            .map(|_| (0.4 * (next() - 0.5), 0.4 * (next() - 0.5)))
            .collect();
        (0..m * m)
            .map(|i| {
                let (dx, dy) = ((i % m) as f64 - n as f64, (i / m) as f64 - n as f64);
                uv.iter()
                    .map(|&(u, v)| (std::f64::consts::TAU * (u * dx + v * dy)).cos())
                    .sum::<f64>()
                    / k as f64
            })
            .collect()
    }

    /// Components anywhere: sources near opposite edges (52 pixels apart in a 64-pixel
    /// image) and near a third edge, through a PSF whose sidelobes (~0.1) reach across the
    /// whole image, with no clean border beyond EDGE_PX. With an n x n PSF the sources
    /// farther apart than n/2 would not see each other's sidelobes (fluxes off by ~10 %).
    fn recovers_sources_at_the_edges(algorithm: MinorAlgorithm) {
        let n = 64;
        let psf = sparse_uv_psf(n, 96);
        let src = [(6usize, 32usize, 1.0), (58, 31, 0.8), (33, 57, 0.5)];
        let mut residuals = vec![dirty(&psf, n, &src)];
        let p = ImagingConfig {
            minor_cycle: algorithm,
            niter: 5000,
            gain: 0.1,
            mgain: 1.0,
            threshold_jy: 1e-4,
            auto_threshold: 0.0,
            auto_mask: 0.0,
            psf_patch: n,
            clean_border: 0.0,
            ..Default::default()
        };
        let mut st = CleanState::default();
        let (mut models, mut deltas) = (vec![vec![0.0; n * n]], vec![vec![0.0; n * n]]);
        minor_cycle(
            &mut residuals,
            std::slice::from_ref(&psf),
            n,
            &p,
            &mut st,
            &mut models,
            &mut deltas,
            &crate::compute::Cpu,
        );
        let stray = models[0]
            .iter()
            .enumerate()
            .filter(|(i, _)| !src.iter().any(|&(x, y, _)| *i == y * n + x))
            .fold(0.0f64, |a, (_, v)| a + v.abs());
        println!("{} iterations; flux elsewhere {stray:.2e}", st.iterations);
        for &(x, y, f) in &src {
            assert!(
                (models[0][y * n + x] - f).abs() < 1e-3 * f,
                "({x}, {y}): {} vs {f}",
                models[0][y * n + x]
            );
        }
        // The whole image, edges included, is cleaned to the threshold.
        let worst = residuals[0].iter().fold(0.0f64, |a, v| a.max(v.abs()));
        assert!(worst < 2e-4, "residual peak {worst}");
    }

    #[test]
    fn hogbom_recovers_sources_at_the_edges() {
        recovers_sources_at_the_edges(MinorAlgorithm::Hogbom);
    }

    #[test]
    fn clark_recovers_sources_at_the_edges() {
        recovers_sources_at_the_edges(MinorAlgorithm::Clark);
    }

    #[test]
    fn hogbom_recovers_point_sources() {
        recovers_point_sources(MinorAlgorithm::Hogbom, 32);
    }

    /// A small patch (the ring lies outside it) forces several Clark rounds, each ending in
    /// a full-PSF subtraction.
    #[test]
    fn clark_recovers_point_sources() {
        recovers_point_sources(MinorAlgorithm::Clark, 5);
        recovers_point_sources(MinorAlgorithm::Clark, 32);
    }

    /// Multi-term minor cycles recover a point source's flux and spectral slope from the
    /// x-weighted residuals and PSFs of a band: PSF_k(p) = sum_nu x^k B_nu(p) / N with the
    /// monochromatic beam B_nu narrowing with frequency, as gridding makes them.
    #[test]
    fn two_terms_recover_flux_and_slope() {
        let n = 64;
        let xs: Vec<f64> = (0..16).map(|k| -0.08 + 0.16 * k as f64 / 15.0).collect();
        let beam = |x: f64| gaussian(2 * n, 4.0 / (1.0 + x), 3.0 / (1.0 + x));
        let mut psfs = vec![vec![0.0; 4 * n * n]; 3];
        for &x in &xs {
            let b = beam(x);
            for (k, p) in psfs.iter_mut().enumerate() {
                p.iter_mut()
                    .zip(&b)
                    .for_each(|(a, v)| *a += x.powi(k as i32) * v / xs.len() as f64);
            }
        }
        // Sources with S(nu) = a0 + a1 x (spectral index -0.7 and +0.5 at 1 Jy and 0.4 Jy).
        let src = [(22usize, 30usize, 1.0, -0.7), (41, 25, 0.4, 0.5)];
        let mut res = vec![vec![0.0; n * n]; 2];
        for &(sx, sy, a0, alpha) in &src {
            let a = [a0, a0 * alpha];
            for (t, r) in res.iter_mut().enumerate() {
                for (i, v) in r.iter_mut().enumerate() {
                    let q = ((i / n) + n - sy) * 2 * n + (i % n) + n - sx;
                    *v += a[0] * psfs[t][q] + a[1] * psfs[t + 1][q];
                }
            }
        }
        let p = ImagingConfig {
            minor_cycle: MinorAlgorithm::Clark,
            niter: 3000,
            gain: 0.1,
            mgain: 1.0,
            threshold_jy: 1e-5,
            auto_threshold: 0.0,
            auto_mask: 0.0,
            psf_patch: 32,
            clean_border: 0.125,
            ..Default::default()
        };
        let mut st = CleanState::default();
        let (mut models, mut deltas) = (vec![vec![0.0; n * n]; 2], vec![vec![0.0; n * n]; 2]);
        minor_cycle(
            &mut res,
            &psfs,
            n,
            &p,
            &mut st,
            &mut models,
            &mut deltas,
            &crate::compute::Cpu,
        );
        for &(sx, sy, a0, alpha) in &src {
            let i = sy * n + sx;
            assert!(
                (models[0][i] - a0).abs() < 1e-3 * a0,
                "flux {} vs {a0}",
                models[0][i]
            );
            assert!(
                (models[1][i] / models[0][i] - alpha).abs() < 0.01,
                "slope {} vs {alpha}",
                models[1][i] / models[0][i]
            );
        }
    }

    /// The FFT route and the direct route of Clark's full-PSF subtraction agree.
    #[test]
    fn clark_fft_subtraction_matches_direct() {
        let n = 32;
        let (psf, res) = two_sources(n);
        let cp = ClarkPsf::new(&psf, n, 4, &crate::compute::Cpu);
        let comps: Vec<(usize, f64)> = (0..300)
            .map(|k| ((k * 37 + 5) % (n * n), 0.01 * (k as f64).sin()))
            .collect();
        let (mut a, mut b) = (res.clone(), res.clone());
        super::super::clark::subtract_convolved_with(&mut a, &comps, &psf, n, &cp, false);
        super::super::clark::subtract_convolved_with(&mut b, &comps, &psf, n, &cp, true);
        let err = a
            .iter()
            .zip(&b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        // The PSF's transform is held in f32 (ClarkPsf): 1.9e-10 here.
        assert!(err < 6e-10, "{err}");
        assert!(a.iter().zip(&res).any(|(x, y)| (x - y).abs() > 1e-3));
    }

    /// Components of CLEAN run to its end on two sources in white noise (sigma 0.01) through
    /// a sparse PSF, cleaned to 1 sigma with and without an auto-mask at 5 sigma: (x, y,
    /// flux) of every component, and the residual.
    fn clean_in_noise(auto_mask: f64) -> Vec<(usize, usize, f64)> {
        let n = 64;
        let psf = sparse_uv_psf(n, 96);
        let mut res = dirty(&psf, n, &[(20, 30, 1.0), (44, 40, 0.5)]);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for r in res.iter_mut() {
            // Sum of 12 uniforms - 6: unit-variance, near Gaussian.
            let mut g = -6.0;
            for _ in 0..12 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                g += (state >> 11) as f64 / (1u64 << 53) as f64;
            }
            *r += 0.01 * g;
        }
        let p = ImagingConfig {
            minor_cycle: MinorAlgorithm::Hogbom,
            niter: 20_000,
            gain: 0.1,
            mgain: 0.8,
            threshold_jy: 0.0,
            auto_threshold: 1.0,
            auto_mask,
            psf_patch: n,
            clean_border: 0.0,
            ..Default::default()
        };
        // Minor cycles in turn (the residual is kept exact by the PSF: no major cycle needed).
        let (_, model, st) = clean_one_term(res, &psf, n, &p, 50);
        assert!(st.finished);
        model
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, &v)| (i % n, i / n, v))
            .collect()
    }

    #[test]
    fn auto_mask_keeps_components_on_the_sources() {
        let near = |c: &(usize, usize, f64)| {
            [(20usize, 30usize), (44, 40)]
                .iter()
                .any(|&(x, y)| c.0.abs_diff(x) <= 1 && c.1.abs_diff(y) <= 1)
        };
        let flux_near = |comps: &[(usize, usize, f64)], x: usize, y: usize| -> f64 {
            comps
                .iter()
                .filter(|c| c.0.abs_diff(x) <= 1 && c.1.abs_diff(y) <= 1)
                .map(|c| c.2)
                .sum()
        };
        let plain = clean_in_noise(0.0);
        let masked = clean_in_noise(5.0);
        let stray = |c: &[(usize, usize, f64)]| c.iter().filter(|c| !near(c)).count();
        println!(
            "stray components: {} plain, {} masked; fluxes masked {:.4} {:.4}, plain {:.4} {:.4}",
            stray(&plain),
            stray(&masked),
            flux_near(&masked, 20, 30),
            flux_near(&masked, 44, 40),
            flux_near(&plain, 20, 30),
            flux_near(&plain, 44, 40)
        );
        // Cleaned to 1 sigma, CLEAN takes noise peaks everywhere; with the mask only the
        // sources' pixels hold components.
        assert!(stray(&plain) > 80, "{} stray components", stray(&plain));
        assert_eq!(stray(&masked), 0, "{masked:?}");
        for (x, y, f) in [(20, 30, 1.0), (44, 40, 0.5)] {
            let got = flux_near(&masked, x, y);
            assert!((got - f).abs() < 0.02, "({x}, {y}): {got} vs {f}");
        }
    }

    /// Deeper minor cycles (`imaging.minor_error`): with no measured error a minor cycle
    /// stops at the mgain limit; once a major cycle has shown the PSF exact, the next goes
    /// to the threshold at once; with a measured error as large as the mgain limit allows
    /// for, it stops at the mgain limit again. Also `measure_error` itself.
    #[test]
    fn minor_cycles_go_deeper_where_the_major_cycle_agreed() {
        let n = 64;
        let (psf, res) = two_sources(n);
        let p = ImagingConfig {
            niter: 5000,
            mgain: 0.8,
            threshold_jy: 1e-3,
            auto_threshold: 0.0,
            clean_border: 0.125,
            minor_error: 0.1,
            ..Default::default()
        };
        let psfs = [psf.clone()];
        // One minor cycle from `res` with settings `p` after `error` (None: no major cycle
        // measured yet).
        let cycle = |p: &ImagingConfig, res: &[f64], error: Option<f64>| {
            let mut st = CleanState {
                error_per_jy: error,
                ..Default::default()
            };
            let mut residuals = vec![res.to_vec()];
            let (mut models, mut deltas) = (vec![vec![0.0; n * n]], vec![vec![0.0; n * n]]);
            let last = minor_cycle(
                &mut residuals,
                &psfs,
                n,
                p,
                &mut st,
                &mut models,
                &mut deltas,
                &crate::compute::Cpu,
            );
            (last, residuals.pop().unwrap(), deltas.pop().unwrap())
        };
        let start = res.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let (first, after_first, delta) = cycle(&p, &res, None);
        assert!(
            first <= 0.2 * start && first > 0.15 * start,
            "{first} of {start}"
        );
        // measure_error: the largest difference inside the border over sum |delta|.
        let mut st = CleanState::default();
        let mut major = after_first.clone();
        major[40 * n + 30] += 0.01;
        major[2 * n + 2] += 1.0; // outside the border: not counted
        let flux: f64 = delta.iter().map(|x| x.abs()).sum();
        let e = st
            .measure_error(&after_first, &major, &delta, n, &p)
            .unwrap();
        assert!(
            (e - 0.01 / flux).abs() < 1e-12 * e,
            "{e} vs {}",
            0.01 / flux
        );
        assert_eq!(st.error_per_jy, Some(e));
        // An exact PSF: the next minor cycle reaches the threshold.
        let (exact, _, _) = cycle(&p, &after_first, Some(0.0));
        assert!(exact <= p.threshold_jy, "{exact}");
        // An error of 5 % per Jy: allowed 10 % of the peak, the cycle stops at the mgain
        // limit (~0.2 x its start, a 0.2 Jy source's sum of components exceeding it).
        let (rough, _, _) = cycle(&p, &after_first, Some(0.05));
        // The same without deepening (minor_error 0): the mgain limit alone.
        let off = ImagingConfig {
            minor_error: 0.0,
            ..p.clone()
        };
        let (plain, _, _) = cycle(&off, &after_first, Some(0.0));
        println!("start {start:.4}; first cycle {first:.4}; then exact {exact:.2e}, 5 % {rough:.4}, off {plain:.4}");
        assert!(
            rough > 10.0 * p.threshold_jy && rough <= 0.2 * first,
            "{rough}"
        );
        assert_eq!(rough, plain, "deepening with a large error changes nothing");
    }
}
