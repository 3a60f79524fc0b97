//! Distributed CLEAN for one image: the owner rank runs the minor cycles; in each major
//! cycle every contributing rank degrids the model increment for its own visibilities,
//! subtracts it in place and re-grids the residuals; the residual images are reduced to
//! the owner. Every rank calls this for every image that needs a reduction (the plan says
//! which), so collectives always match.

use super::aterm::DriftBeam;
use super::clean::{minor_cycle, CleanState};
use super::gridder::{GridPair, GridSpec};
pub use super::held::{degrid_channel_average, degrid_channel_average_sum, HeldGroup, Prediction};
use super::settings::ImagingConfig;
use crate::comm::Comm;
use crate::compute::Compute;
use crate::primitives::wgridder::Workspace;
use serde::{Deserialize, Serialize};

/// How the major cycles predict the model's visibilities (`imaging.predict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictMode {
    /// Direct where `direct_is_cheaper`, else grid.
    #[default]
    Auto,
    /// Degrid the model images.
    Grid,
    /// A direct Fourier sum over the model's pixels with flux.
    Direct,
}

/// Whether predicting `n_points` model pixels directly costs less than degridding
/// `n_images` model images (per channel-averaging node: `nodes`) for the same samples.
/// Measured on 2 cores (benches/README.md, 2026-12-04): one degridded 1024^2 image at
/// epsilon 1e-4 costs 0.72 s, as much as ~300 directly predicted pixels at 2.4 ms each
/// (`gridding/degrid_dsa110_subband_eps1e-4` against `direct_40_points_dsa110_subband`;
/// 2.79 s against ~545 pixels before the ring degridder and the direct sum's sine in
/// turns). The direct path is taken up to 250, a little under break-even: its beam and
/// channel average are exact. A device runs both (dft.cu, the w-stack) and takes the same
/// choice, so that its images are the CPU's (issue 21 compares them); its own break-even
/// is what `gpu_direct_40_points_dsa110_subband` against `gpu_degrid_dsa110_subband_eps*`
/// will say (by operation counts, ~26 f64 operations a component and sample against
/// ~2000 a sample and image for the degridder's taps: about 80 components an image).
pub fn direct_is_cheaper(n_points: usize, n_images: usize, nodes: usize) -> bool {
    const GRID_PER_DIRECT: usize = 250;
    n_points <= GRID_PER_DIRECT * n_images * nodes
}

/// Every contributor grids its held groups' visibilities into each spectral term's
/// residual on `spec`'s grid, reduced to the owner, whose `residuals` are replaced (a
/// collective when distributed).
fn regrid(
    comm: &dyn Comm,
    s: &CleanSetup,
    spec: &GridSpec,
    held: &mut [HeldGroup],
    residuals: &mut [Vec<f64>],
    ws: &Workspace,
) {
    let mut grids: Vec<GridPair> = (0..s.nterms)
        .map(|t| GridPair::spectral(*spec, s.ref_hz, Some(t as u8), None))
        .collect();
    for h in held.iter_mut() {
        h.grid_residuals(&mut grids, s.prediction(), s.compute, ws);
    }
    let is_owner = comm.rank() == s.owner;
    for (t, g) in grids.into_iter().enumerate() {
        let g = if s.distributed {
            g.reduce_to(comm, s.owner)
        } else {
            Some(g)
        };
        if is_owner {
            if let (Some((r, _)), Some(slot)) =
                (g.and_then(GridPair::finish_f64), residuals.get_mut(t))
            {
                *slot = r;
            }
        }
    }
}

pub struct CleanOutcome {
    /// The model over the band (multi-frequency synthesis): each spectral term's model
    /// times the imaging-weighted mean of x^t over the band's visibilities (the term-t PSF's
    /// peak over the term-0 PSF's), so that `model` convolved with the PSF is what the model
    /// puts into `residual`'s image; with one term, the model itself. The restored image is
    /// this model with the restoring beam plus `residual`: the band-averaged flux, as
    /// WSClean's MFS image. Term 0 alone (the flux at `ref_hz`) extrapolates the fitted
    /// polynomial to one frequency: for a faint source its noise is that of a three-term
    /// fit (~1.5x the band average's with three terms over the DSA-110 band).
    pub model: Vec<f64>,
    /// Term 0's residual: the imaging-weighted residual over the band.
    pub residual: Vec<f64>,
    /// Every spectral term's model (term 0 first).
    pub models: Vec<Vec<f64>>,
    /// The imaging-weighted mean frequency (Hz) the MFS images refer to (None with one
    /// term: the term-1 PSF is not made).
    pub mfs_hz: Option<f64>,
    pub iterations: usize,
    pub major_cycles: usize,
    /// The term-0 residual's peak (Jy/beam) at the start of every minor cycle, and last
    /// the peak the CLEAN ended with.
    pub cycle_peaks: Vec<f64>,
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_f64(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// The images CLEAN starts from, on the owner: per spectral term the dirty image (n x n),
/// and the 2T - 1 PSFs at twice the image's size (2n x 2n, peak at (n, n); T = 1: the dirty
/// image and the PSF).
pub struct CleanStart {
    pub residuals: Vec<Vec<f64>>,
    pub psfs: Vec<Vec<f64>>,
}

/// How the image is deconvolved (the same on every rank).
pub struct CleanSetup<'a> {
    pub owner: usize,
    /// Whether several ranks hold the image's visibilities (the residuals are reduced).
    pub distributed: bool,
    pub spec: &'a GridSpec,
    /// The minor-cycle settings (`imaging.niter`, `gain`, thresholds, `minor_cycle`, ...).
    pub params: &'a ImagingConfig,
    pub max_major: usize,
    /// Spectral terms (1 to 3) and their reference frequency.
    pub nterms: usize,
    pub ref_hz: f64,
    pub beam: Option<&'a DriftBeam<'a>>,
    /// This rank's backend for the major cycles' degridding and gridding.
    pub compute: &'a dyn Compute,
}

impl CleanSetup<'_> {
    /// How the model increments are predicted for the held groups.
    fn prediction(&self) -> Prediction<'_> {
        Prediction {
            spec: self.spec,
            ref_hz: self.ref_hz,
            beam: self.beam,
            mode: self.params.predict,
        }
    }
}

/// Runs CLEAN. `start` is the owner's starting images (None elsewhere). Returns the outcome
/// on the owner.
pub fn clean_image(
    comm: &dyn Comm,
    s: &CleanSetup,
    held: &mut [HeldGroup],
    start: Option<CleanStart>,
) -> Option<CleanOutcome> {
    let (spec, params, owner, nt) = (s.spec, s.params, s.owner, s.nterms);
    let n = spec.n_image;
    let is_owner = comm.rank() == owner;
    let (mut residuals, psfs) = match start {
        Some(st) => (st.residuals, st.psfs),
        None => (Vec::new(), Vec::new()),
    };
    let ready = is_owner && residuals.len() == nt && psfs.len() == 2 * nt - 1;
    let mut models = if is_owner {
        vec![vec![0.0; n * n]; nt]
    } else {
        Vec::new()
    };
    let mut state = CleanState::default();
    let mut majors = 0;
    let mut last_start = f64::INFINITY;
    let mut grown = 0;
    let mut cycle_peaks = Vec::new();
    // The re-griddings' buffers, kept from one major cycle to the next.
    let ws = Workspace::new();
    // Re-griddings that only guide a further minor cycle are at `imaging.cycle_epsilon`;
    // the last at `epsilon`, as the dirty image (`final_residual`: whether the residual is).
    let cycle_spec = spec.coarsened(params.cycle_epsilon);
    let mut final_residual = true;
    loop {
        // Owner: minor cycles, then the decision and the model increment.
        let mut deltas = vec![vec![0.0; n * n]; nt];
        let mut go = false;
        if ready && !state.finished && majors < s.max_major && params.niter > 0 {
            let before = residuals[0].iter().fold(0.0f64, |a, &b| a.max(b.abs()));
            // Divergence across major cycles: the start peak above 1.5x the lowest so far
            // (near the noise floor peaks wander) in two consecutive cycles. One such cycle
            // is often a repair (an over-subtracted minor cycle); two mean the PSF no longer
            // describes what the components do. Model and residual stay consistent.
            grown = if before > 1.5 * last_start {
                grown + 1
            } else {
                0
            };
            if grown >= 2 {
                log::warn!("clean: residual peak grew over two major cycles ({last_start:.4} -> {before:.4} Jy/beam); stopping");
                state.finished = true;
            }
            last_start = last_start.min(before);
        }
        if ready && !state.finished && majors < s.max_major && params.niter > 0 {
            let before = residuals[0].iter().fold(0.0f64, |a, &b| a.max(b.abs()));
            cycle_peaks.push(before);
            let t = std::time::Instant::now();
            let reached = minor_cycle(
                &mut residuals,
                &psfs,
                n,
                params,
                &mut state,
                &mut models,
                &mut deltas,
                s.compute,
            );
            go = deltas[0].iter().any(|&x| x != 0.0);
            log::info!("clean major cycle {}: peak {before:.4} -> {reached:.4} Jy/beam after {} iterations", majors + 1, state.iterations);
            log::debug!(
                "clean minor cycles {}: {:.2} s",
                majors + 1,
                t.elapsed().as_secs_f64()
            );
        }
        // The re-gridding that follows is the last when CLEAN has finished or the major
        // cycles are spent (a cycle that ends otherwise re-grids once more at the end).
        let mut last = state.finished || majors + 1 >= s.max_major;
        if s.distributed {
            (go, last) = share_increment(comm, owner, go, last, &mut deltas, n);
        }
        if !go {
            if !final_residual {
                // The last re-gridding was a guide: the final residual at `epsilon`.
                let t = std::time::Instant::now();
                regrid(comm, s, spec, held, &mut residuals, &ws);
                log::debug!(
                    "clean: final residual re-gridded at epsilon {:e} in {:.2} s",
                    spec.epsilon,
                    t.elapsed().as_secs_f64()
                );
            }
            break;
        }
        majors += 1;
        let t = std::time::Instant::now();
        // Every contributor: subtract the increment, re-grid the residuals of every term.
        let refit_s = subtract_increment(s, held, &deltas, &ws);
        let t_grid = std::time::Instant::now();
        // The minor cycle's residual, to measure what the major cycle corrects.
        let before = (ready && params.minor_error > 0.0).then(|| residuals[0].clone());
        final_residual = last || cycle_spec.epsilon == spec.epsilon;
        regrid(
            comm,
            s,
            if final_residual { spec } else { &cycle_spec },
            held,
            &mut residuals,
            &ws,
        );
        if let (Some(b), Some(after)) = (before, residuals.first()) {
            if let Some(e) = state.measure_error(&b, after, &deltas[0], n, params) {
                log::debug!("clean major cycle {majors}: the minor cycle's residual was off by up to {e:.2e} Jy/beam per Jy subtracted");
            }
        }
        log::debug!(
            "clean major cycle {majors}: model subtracted and residuals re-gridded in {:.2} s (outliers refitted in {refit_s:.2} s, re-gridding {:.2} s)",
            t.elapsed().as_secs_f64(),
            t_grid.elapsed().as_secs_f64()
        );
    }
    if let Some(r) = residuals.first() {
        cycle_peaks.push(r.iter().fold(0.0f64, |a, &b| a.max(b.abs())));
    }
    log_outliers(held);
    is_owner.then(|| {
        let mean_x = band_means(&psfs, n);
        CleanOutcome {
            model: mfs_model(&models, &mean_x),
            residual: residuals.first().cloned().unwrap_or_default(),
            mfs_hz: mean_x.get(1).map(|x1| s.ref_hz * (1.0 + x1)),
            models,
            iterations: state.iterations,
            major_cycles: majors,
            cycle_peaks,
        }
    })
}

/// The owner's decision (`go`: a model increment to subtract; `last`: the re-gridding that
/// follows is the final one) and increment, broadcast to every rank (a collective).
fn share_increment(
    comm: &dyn Comm,
    owner: usize,
    go: bool,
    last: bool,
    deltas: &mut Vec<Vec<f64>>,
    n: usize,
) -> (bool, bool) {
    let is_owner = comm.rank() == owner;
    let mut msg = if is_owner {
        let mut m = vec![u8::from(go), u8::from(last)];
        if go {
            deltas.iter().for_each(|d| m.extend(f64_bytes(d)));
        }
        m
    } else {
        Vec::new()
    };
    comm.broadcast_bytes(owner, &mut msg);
    let go = msg.first() == Some(&1);
    if go && !is_owner {
        let all = bytes_f64(&msg[2..]);
        *deltas = all.chunks_exact(n * n).map(|c| c.to_vec()).collect();
    }
    (go, msg.get(1) == Some(&1))
}

/// Subtracts the model increment from every held group and refits its outliers; returns
/// the seconds the refits took. A degridded prediction takes its buffers from `ws` (the
/// re-griddings' workspace) and gives them back.
fn subtract_increment(
    s: &CleanSetup,
    held: &mut [HeldGroup],
    deltas: &[Vec<f64>],
    ws: &Workspace,
) -> f64 {
    let mut refit_s = 0.0;
    for h in held.iter_mut() {
        h.subtract(s.prediction(), deltas, s.compute, ws);
        let t = std::time::Instant::now();
        h.refit_outliers_held(s.prediction(), s.compute);
        refit_s += t.elapsed().as_secs_f64();
    }
    refit_s
}

fn log_outliers(held: &[HeldGroup]) {
    for h in held {
        if let Some(m) = &h.outliers {
            for (k, o) in m.outliers.iter().enumerate() {
                log::info!(
                    "outlier {}: fitted {:.3} Jy at {:.3} GHz (catalogue {:.3} Jy at 1.4 GHz)",
                    o.name,
                    m.flux_scale(k),
                    m.ref_hz() / 1e9,
                    o.source.flux_jy
                );
            }
        }
    }
}

/// The imaging-weighted band means of x^t (t = 0 .. 2T - 2) from the 2T - 1 PSFs (2n x 2n,
/// peak at (n, n)): each PSF's peak over the term-0 PSF's.
fn band_means(psfs: &[Vec<f64>], n: usize) -> Vec<f64> {
    let centre = n * 2 * n + n;
    let p0 = psfs
        .first()
        .and_then(|p| p.get(centre))
        .copied()
        .unwrap_or(0.0);
    psfs.iter()
        .map(|p| match p.get(centre) {
            Some(&v) if p0 != 0.0 => v / p0,
            _ => 0.0,
        })
        .collect()
}

/// The band-averaged model: sum over terms of term t's model times the band mean of x^t.
fn mfs_model(models: &[Vec<f64>], mean_x: &[f64]) -> Vec<f64> {
    let Some(first) = models.first() else {
        return Vec::new();
    };
    let mut out = first.clone();
    for (m, &w) in models.iter().zip(mean_x).skip(1) {
        for (o, &v) in out.iter_mut().zip(m) {
            *o += w * v;
        }
    }
    out
}
