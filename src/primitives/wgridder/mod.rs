//! A w-gridder: visibilities -> dirty image (and PSF from the same pass) and image ->
//! visibilities, with the w-term, at a requested accuracy. One idea done well, after the
//! method of ducc0's wgridder (Arras et al. 2021; Ye et al. 2022): it knows nothing of the
//! pipeline.
//!
//! Inputs: rows of (u, v, w) in metres, the channel frequencies (Hz, any order), per row,
//! channel and polarization a visibility (f32 complex) and a weight (0 = flagged); the
//! polarizations of a sample are combined as sum(wt V) (weight sum(wt)). Optional: a row
//! mask, a per-row delay d (m; each visibility is multiplied by exp(-2 pi i d nu / c) before
//! gridding, i.e. rephasing), uv cuts, per-channel factors (multi-term MFS).
//!
//! Conventions: V = sum I exp(+2 pi i (u l + v m + w (n - 1))); the dirty image is
//! I_D(l, m) = sum_k wt_k Re(V_k exp(-2 pi i (u_k l + v_k m + w_k (n - 1)))), not divided by
//! the weight sum (returned separately); the PSF the same with V = 1. Pixel (x, y) of an
//! N x N image has l = (N/2 - x) pixsize, m = (y - N/2) pixsize; n - 1 = -r^2 / (1 +
//! sqrt(1 - r^2)) with r^2 = l^2 + m^2 (-1 where r >= 1).
//!
//! Method: 3-D convolutional gridding with the ES kernel ("w-gridding"): rows are flipped
//! to w >= 0 ((uvw, V) -> (-uvw, V*)), each sample is spread with the kernel over W
//! cells in u and v and over W w-planes; each plane is Fourier transformed, multiplied by
//! its w-screen and summed; the kernel's transforms in u, v and w are divided out once at
//! the end. n - 1 is centred (n - 1 - s with s its mid-range, the phase exp(-2 pi i w s)
//! moved onto the samples), which halves the planes. The grid oversampling sigma (1.2-2)
//! and kernel width W are chosen per call from epsilon to minimise a cost model (planes x
//! FFTs vs W^3 spreading taps); the kernel is the two-parameter ES shape tuned for that
//! (W, sigma) (`EsKernel::tuned`: at epsilon 1e-4 W = 6 at sigma 1.65 where the plain ES
//! kernel needed W = 6 at 1.9 or W = 7 at 1.55), its error modelled as its aliasing
//! estimate plus the planes' rounding amplified by the grid correction (`model_error`).
//! Planes are single precision where epsilon > 1e-5, double otherwise (all corrections and
//! the image in f64). Gridding is parallel over strips of grid rows (each thread writes
//! only its own), degridding over rows; results do not depend on the thread count.
//! Gridding holds a ring of W planes where `Options::plane_budget_bytes` allows: the rows'
//! runs of channels whose first plane is q are spread into planes q..q + W together, then
//! plane q is complete and transformed and its memory reused for plane q + W, so each
//! sample's geometry, value and taps are computed once. Within a strip a run's samples
//! are the channels whose footprints reach it (found by bisection: u and v are linear in
//! frequency), their u, v taps evaluated four samples at a time, their w taps for the whole
//! run at once. The hot loops are built twice, for baseline x86-64 and for AVX2 + FMA,
//! chosen at run time.
//!
//! Accuracy contract (tests/gridder_dft.rs, against the exact direct transform with
//! w-terms): for epsilon in [1e-6, 1e-2], max_pixels |I - I_exact| <= epsilon x
//! sum_k |wt_k V_k| (ducc0's statement) and, stronger, the relative L2 error of the image
//! <= epsilon; degridding likewise: max |V - V_exact| <= epsilon x sum |I| and relative L2
//! error <= epsilon.
//!
//! Without the w-term (`Options::wgridding` false, ducc0's do_wgridding): every sample
//! at w = 0, one plane, W^2 taps; the same contract against the direct transform without
//! w (tests/gridder_dft.rs).
//!
//! Samples whose |u| or |v| x pixsize reaches `max_uv_pixfrac` (default 0.5, the image's
//! Nyquist limit) are skipped and not counted in the weight sum. No phase-centre shift
//! (l0, m0) is supported: callers rephase with `row_delay_m`.

use crate::primitives::fft::{
    centred_fft2_forward_crop_each, centred_fft2_inverse_from_centre_with,
};
use crate::primitives::kernel::{tuned_shape, EsKernel, MAX_SUPPORT};
use crate::primitives::C_M_S;
use num_complex::{Complex, Complex32, Complex64};
use rayon::prelude::*;
use std::f64::consts::TAU;

mod data;
mod degrid;
mod grid;
mod taps;
mod workspace;

use data::{first_false, Data};

use taps::{Phasor, Real, RowGeom, Taps};
pub use workspace::Workspace;

/// Run-time CPU dispatch: the hot loops (spreading, interpolation, the kernel's taps) are
/// compiled twice, for the baseline x86-64 and for AVX2 with fused multiply-adds, and the
/// second is used where the CPU has both (unless `Options::portable`). The two agree to
/// rounding (tests/gridder_dft.rs).
#[cfg(target_arch = "x86_64")]
mod simd {
    pub(super) fn avx2_fma() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
}

/// A bad call: mismatched array sizes or parameters out of range.
#[derive(Debug, thiserror::Error)]
#[error("wgridder: {0}")]
pub struct Error(pub String);

/// What a call grids or predicts, beyond the data arrays.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Image size (pixels per side, even).
    pub npix: usize,
    /// Pixel size (rad).
    pub pixsize_rad: f64,
    /// Requested accuracy (see the module's contract), 1e-6 ..= 1e-2 (clamped to 1e-14 ..).
    pub epsilon: f64,
    /// Polarizations per channel in `vis`/`weight`.
    pub npol: usize,
    /// Rows to use (None: all).
    pub row_mask: Option<&'a [bool]>,
    /// Per row: delay d (m) rephasing each visibility by exp(-2 pi i d nu / c) (None: 0).
    pub row_delay_m: Option<&'a [f64]>,
    /// uv cuts (wavelengths); 0 = none.
    pub uv_min_lambda: f64,
    pub uv_max_lambda: f64,
    /// Samples with |u| or |v| x pixsize >= this are skipped (<= 0.5).
    pub max_uv_pixfrac: f64,
    /// Rayon threads (0: the current pool).
    pub threads: usize,
    /// With the w-term (the default). false: w is taken as 0 (a 2-D transform, one plane,
    /// W^2 taps per sample; ducc0's do_wgridding = false), exact for a coplanar array
    /// imaged at its phase centre and what a PSF's far sidelobes may be computed with.
    pub wgridding: bool,
    /// The baseline x86-64 build of the hot loops even where the CPU has AVX2 and FMA (for
    /// tests and comparisons; the default false uses them where present).
    pub portable: bool,
    /// Memory (bytes) gridding may use for w-planes beyond one per image. Where it holds
    /// the kernel's support W of planes per image, the planes are a ring of W (each
    /// sample's geometry, value and taps computed once, its W planes spread together);
    /// otherwise up to 1 + budget / plane planes are spread together and a sample is
    /// prepared once per group of planes it reaches. 0: one plane at a time. Results are the
    /// same either way. The default, 256 MiB, makes the ring of a full-size group's
    /// 2048^2 image at 6" (W = 6 planes of 47 MiB at epsilon 1e-4).
    pub plane_budget_bytes: usize,
    /// Buffers kept between passes of one shape (CLEAN's re-griddings): the gridding pass
    /// takes its planes, FFT grid and images from it and gives the planes and FFT grid back
    /// (the caller may give the images back). None: fresh memory every pass.
    pub workspace: Option<&'a Workspace>,
}

impl<'a> Options<'a> {
    pub fn new(npix: usize, pixsize_rad: f64, epsilon: f64) -> Self {
        Options {
            npix,
            pixsize_rad,
            epsilon,
            npol: 1,
            row_mask: None,
            row_delay_m: None,
            uv_min_lambda: 0.0,
            uv_max_lambda: 0.0,
            max_uv_pixfrac: 0.5,
            threads: 0,
            wgridding: true,
            portable: false,
            plane_budget_bytes: 256 << 20,
            workspace: None,
        }
    }
}

/// Which images `vis2dirty` makes, each with optional per-channel factors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want<'a> {
    pub dirty: bool,
    pub psf: bool,
    pub dirty_chan_factor: Option<&'a [f64]>,
    pub psf_chan_factor: Option<&'a [f64]>,
    /// More dirty images from the same pass, each with its per-channel factors (the
    /// spectral terms' residuals of multi-term CLEAN): the samples' geometry, phasors and
    /// kernel taps are computed once for all of them.
    pub more_dirty: &'a [&'a [f64]],
}

/// `vis2dirty`'s result: images row-major (y, x), f64, not normalised.
#[derive(Debug, Clone, Default)]
pub struct Images {
    pub dirty: Option<Vec<f64>>,
    pub psf: Option<Vec<f64>>,
    /// The `more_dirty` images, in order.
    pub more: Vec<Vec<f64>>,
    /// Sum of the weights of the samples gridded.
    pub sum_weights: f64,
}

/// The grid geometry and kernel one call chose (exposed for benches and tests).
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    pub sigma: f64,
    pub n_grid: usize,
    pub support: usize,
    pub nplanes: usize,
    pub single: bool,
}

/// Dirty image and/or PSF of the visibilities (see the module docs).
pub fn vis2dirty(
    uvw_m: &[[f64; 3]],
    freqs: &[f64],
    vis: &[Complex32],
    weight: &[f32],
    opt: &Options,
    want: Want,
) -> Result<(Images, Option<Choice>), Error> {
    let d = Data::new(uvw_m, freqs, Some(vis), Some(weight), opt)?;
    for f in [want.dirty_chan_factor, want.psf_chan_factor]
        .into_iter()
        .flatten()
        .chain(want.more_dirty.iter().copied())
    {
        if f.len() != freqs.len() {
            return Err(Error(format!(
                "{} channel factors for {} channels",
                f.len(),
                freqs.len()
            )));
        }
    }
    in_pool(opt.threads, || {
        let sum_weights = d.weight_sum();
        let Some(plan) = Plan::new(&d, opt) else {
            let zero = || Some(vec![0.0; opt.npix * opt.npix]);
            return Ok((
                Images {
                    dirty: if want.dirty { zero() } else { None },
                    psf: if want.psf { zero() } else { None },
                    more: want
                        .more_dirty
                        .iter()
                        .map(|_| vec![0.0; opt.npix * opt.npix])
                        .collect(),
                    sum_weights,
                },
                None,
            ));
        };
        let (dirty, psf, more) = if plan.single {
            grid::grid::<f32>(&plan, &d, &want, opt.workspace)
        } else {
            grid::grid::<f64>(&plan, &d, &want, opt.workspace)
        };
        Ok((
            Images {
                dirty,
                psf,
                more,
                sum_weights,
            },
            Some(plan.choice()),
        ))
    })
}

/// Predicts visibilities of `image` (N x N, row-major) for every row and channel into
/// `out[row * nchan + chan]` (overwritten; rows not in use and skipped samples get zero).
/// The adjoint of `vis2dirty`'s dirty image; the prediction is in the data's own phasing
/// (multiplied by exp(+2 pi i d nu / c) where `row_delay_m` is given).
pub fn dirty2vis(
    uvw_m: &[[f64; 3]],
    freqs: &[f64],
    image: &[f64],
    opt: &Options,
    out: &mut [Complex32],
) -> Result<Option<Choice>, Error> {
    dirty2vis_sum(uvw_m, freqs, &[image], &[Weights::default()], opt, out)
}

/// How one image's prediction enters `dirty2vis_sum`: times `row[r]` and `chan[c]` at row
/// r, channel c (None: 1), e.g. a drifting beam's interpolation coefficient per integration
/// and a spectral term's (nu - nu0)^t / nu0^t per channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Weights<'a> {
    pub row: Option<&'a [f32]>,
    pub chan: Option<&'a [f32]>,
}

/// The weighted sum of several images' predictions of the same visibilities,
/// `out[r, c] = sum_k row_k[r] chan_k[c] dirty2vis(images[k])[r, c]`, in one pass: the plan,
/// the geometry and the kernel's taps are shared by the images and no image's prediction
/// is held on its own, so K images cost far less time than K calls and no more memory than
/// one (the major cycles' spectral terms and drifting-beam models).
pub fn dirty2vis_sum(
    uvw_m: &[[f64; 3]],
    freqs: &[f64],
    images: &[&[f64]],
    weights: &[Weights],
    opt: &Options,
    out: &mut [Complex32],
) -> Result<Option<Choice>, Error> {
    let d = Data::new(uvw_m, freqs, None, None, opt)?;
    if images.len() != weights.len() {
        return Err(Error(format!(
            "{} images with {} weights",
            images.len(),
            weights.len()
        )));
    }
    for (image, w) in images.iter().zip(weights) {
        if image.len() != opt.npix * opt.npix {
            return Err(Error(format!(
                "image has {} pixels, expected {}^2",
                image.len(),
                opt.npix
            )));
        }
        if w.row.is_some_and(|r| r.len() != uvw_m.len())
            || w.chan.is_some_and(|c| c.len() != freqs.len())
        {
            return Err(Error(format!(
                "weights for {:?} rows x {:?} channels, expected {} x {}",
                w.row.map(|r| r.len()),
                w.chan.map(|c| c.len()),
                uvw_m.len(),
                freqs.len()
            )));
        }
    }
    if out.len() != uvw_m.len() * freqs.len() {
        return Err(Error(format!(
            "output has {} samples, expected {} rows x {} channels",
            out.len(),
            uvw_m.len(),
            freqs.len()
        )));
    }
    in_pool(opt.threads, || {
        out.par_iter_mut()
            .for_each(|v| *v = Complex32::new(0.0, 0.0));
        // Blank images predict zero: only the others are read.
        let (live, live_w): (Vec<&[f64]>, Vec<Weights>) = images
            .iter()
            .zip(weights)
            .filter(|(image, _)| image.iter().any(|&x| x != 0.0))
            .map(|(image, w)| (*image, *w))
            .unzip();
        if live.is_empty() {
            return Ok(None);
        }
        let Some(plan) = Plan::new(&d, opt) else {
            return Ok(None);
        };
        if plan.single {
            degrid::degrid::<f32>(&plan, &d, &live, &live_w, opt.workspace, out);
        } else {
            degrid::degrid::<f64>(&plan, &d, &live, &live_w, opt.workspace, out);
        }
        Ok(Some(plan.choice()))
    })
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    if threads == 0 {
        return f();
    }
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// n - 1 at pixel (x, y) of an n-pixel image.
#[inline]
fn nm1(n: usize, cell: f64, x: usize, y: usize) -> f64 {
    let c = (n / 2) as f64;
    let l = (c - x as f64) * cell;
    let m = (y as f64 - c) * cell;
    let r2 = l * l + m * m;
    if r2 >= 1.0 {
        -1.0
    } else {
        -r2 / (1.0 + (1.0 - r2).sqrt())
    }
}

/// The smallest FFT-friendly size (2^a 3^b 5^c 7^d, a multiple of 4) >= n.
fn good_size(n: usize) -> usize {
    let mut m = n.max(16).next_multiple_of(4);
    loop {
        let mut k = m;
        for p in [2, 3, 5, 7] {
            while k.is_multiple_of(p) {
                k /= p;
            }
        }
        if k == 1 {
            return m;
        }
        m += 4;
    }
}

/// The modelled error times this is at most epsilon: the errors measured against the direct
/// transform (tests/gridder_dft.rs) run up to ~1.8x the model (the degridder's largest
/// error on the coplanar problem the highest: 5.1e-5 at epsilon 1e-4).
const SAFETY: f64 = 3.0;

/// A kernel's modelled relative error at oversampling sigma: its aliasing estimate
/// (`EsKernel::aliasing_estimate`, tuned shapes) plus the planes' rounding (half an ulp of
/// f32 or f64) amplified by the grid correction at the image's corner in u, v and w
/// (c_max^3): with single-precision planes that rules out the smallest oversamplings, whose
/// corrections reach ~40 per axis at W = 8, sigma = 1.25.
fn model_error(support: usize, sigma: f64, single: bool) -> f64 {
    let ulp = if single {
        0.5 * f32::EPSILON as f64
    } else {
        0.5 * f64::EPSILON
    };
    tuned_shape(support, sigma).2 + ulp * EsKernel::tuned_correction_max(support, sigma).powi(3)
}

/// A call's grid, kernel and planes.
struct Plan {
    n: usize,
    ng: usize,
    /// Padded spreading grid side (ng + 2 margin): footprints past an edge wrap on folding.
    ngp: usize,
    margin: usize,
    cell: f64,
    /// Grid cells per wavelength.
    scale: f64,
    centre: f64,
    sigma: f64,
    kernel: EsKernel,
    support: usize,
    /// n - 1 is centred on ns; planes w0 + p dw, p < nplanes.
    ns: f64,
    dw: f64,
    w0: f64,
    nplanes: usize,
    single: bool,
    /// Without the w-term (`Options::wgridding` false): one plane, no w kernel or screens.
    flat: bool,
    /// Per row: its runs of sorted channels by first w-plane.
    runs: Vec<Vec<Run>>,
    /// `Options::portable`.
    portable: bool,
    /// `Options::plane_budget_bytes`.
    plane_budget: usize,
    /// Largest |u| or |v| of the call's samples, in grid cells (within the accepted limit).
    reach: f64,
}

/// Sorted channels k0..k1 of a row whose first w-plane is q.
#[derive(Debug, Clone, Copy)]
struct Run {
    q: u32,
    k0: u32,
    k1: u32,
}

impl Plan {
    /// None when no row is in use.
    fn new(d: &Data, opt: &Options) -> Option<Self> {
        let (n, cell) = (opt.npix, opt.pixsize_rad);
        let eps = opt.epsilon.clamp(1e-14, 0.1);
        let rows: Vec<usize> = (0..d.uvw.len()).filter(|&r| d.used(r)).collect();
        if rows.is_empty() {
            return None;
        }
        let flat = !opt.wgridding;
        let (fmin, fmax) = (d.fs[0], d.fs[d.fs.len() - 1]);
        let (mut wmin, mut wmax) = (f64::INFINITY, 0.0f64);
        let mut uvmax = 0.0f64;
        for &r in &rows {
            let [um, vm, _] = d.uvw[r];
            uvmax = uvmax.max(um.abs().max(vm.abs()));
            let w = if flat { 0.0 } else { d.uvw[r][2].abs() };
            wmin = wmin.min(w * fmin / C_M_S);
            wmax = wmax.max(w * fmax / C_M_S);
        }
        // n - 1 over the image: 0 at the centre, its minimum at the corner (0, 0).
        let nm1_min = nm1(n, cell, 0, 0);
        let ns = if flat { 0.0 } else { 0.5 * nm1_min };
        let xmax = (0.5 * nm1_min.abs()).max(1e-12);
        let nitems = (rows.len() * d.fs.len()) as f64;
        let single = eps > 1e-5;
        // Cost model (ns per unit, measured on the development machine): spreading or
        // interpolating one tap (W^3 per sample), one complex FFT point (x log2 size),
        // one screen pixel.
        let (c_tap, c_fft, c_pix) = if single {
            (0.35, 0.9, 6.0)
        } else {
            (0.5, 1.6, 6.0)
        };
        let mut best: Option<(f64, f64, usize, usize, usize)> = None;
        for i in 0..=16 {
            let sigma = 1.2 + 0.05 * i as f64;
            let Some(support) =
                (3..=MAX_SUPPORT).find(|&w| SAFETY * model_error(w, sigma, single) <= eps)
            else {
                continue;
            };
            let ng = good_size((sigma * n as f64).ceil() as usize);
            let dw = 1.0 / (2.0 * sigma * xmax);
            let (nplanes, w3) = if flat {
                (1, (support * support) as f64)
            } else {
                (
                    ((wmax - wmin) / dw).ceil() as usize + support,
                    (support * support * support) as f64,
                )
            };
            let npts = (ng * ng) as f64;
            let cost = nitems * w3 * c_tap
                + nplanes as f64 * (npts * npts.log2() * c_fft + (n * n) as f64 * c_pix);
            if best.is_none_or(|b| cost < b.0) {
                best = Some((cost, sigma, support, ng, nplanes));
            }
        }
        let (_, sigma, support, ng, _) = best.expect("some kernel fits");
        let (kernel, _) = EsKernel::tuned(support, sigma);
        let (dw, w0) = if flat {
            (0.0, 0.0)
        } else {
            let dw = 1.0 / (2.0 * sigma * xmax);
            (dw, wmin - dw * support as f64 / 2.0)
        };
        let margin = support / 2 + 2;
        let mut plan = Plan {
            n,
            ng,
            ngp: ng + 2 * margin,
            margin,
            cell,
            scale: ng as f64 * cell,
            centre: (ng / 2) as f64,
            sigma,
            kernel,
            support,
            ns,
            dw,
            w0,
            nplanes: 0,
            single,
            flat,
            runs: Vec::new(),
            portable: opt.portable,
            plane_budget: opt.plane_budget_bytes,
            reach: (uvmax * fmax / C_M_S).min(d.umax) * ng as f64 * cell,
        };
        // Each row's sorted channels split by their first w-plane (non-decreasing in
        // frequency: w >= 0 after the flip).
        plan.runs = (0..d.uvw.len())
            .into_par_iter()
            .map(|r| {
                let mut out = Vec::new();
                if !d.used(r) {
                    return out;
                }
                if plan.flat {
                    return vec![Run {
                        q: 0,
                        k0: 0,
                        k1: d.fs.len() as u32,
                    }];
                }
                let wa = d.uvw[r][2].abs();
                let mut cur: Option<Run> = None;
                for (k, &f) in d.fs.iter().enumerate() {
                    let q = plan.first_plane(wa * f / C_M_S);
                    match cur.as_mut() {
                        Some(run) if run.q == q => run.k1 = k as u32 + 1,
                        _ => {
                            out.extend(cur.take());
                            cur = Some(Run {
                                q,
                                k0: k as u32,
                                k1: k as u32 + 1,
                            });
                        }
                    }
                }
                out.extend(cur);
                out
            })
            .collect();
        let qmax = plan
            .runs
            .iter()
            .flatten()
            .map(|r| r.q as usize)
            .max()
            .unwrap_or(0);
        plan.nplanes = if plan.flat { 1 } else { qmax + support };
        Some(plan)
    }

    /// The padded grid's rows (and columns, the same) that some sample's footprint can
    /// reach: the call's samples lie within `reach` cells of the centre.
    fn footprint_box(&self) -> std::ops::Range<usize> {
        let c = self.centre + self.margin as f64;
        let half = self.support as f64 * 0.5;
        let lo = (c - self.reach - half).floor() - 2.0;
        let hi = (c + self.reach + half).ceil() + 3.0;
        (lo.max(0.0) as usize)..(hi.min(self.ngp as f64) as usize)
    }

    fn choice(&self) -> Choice {
        Choice {
            sigma: self.sigma,
            n_grid: self.ng,
            support: self.support,
            nplanes: self.nplanes,
            single: self.single,
        }
    }

    /// The w kernel's tap j (plane q + j) for a sample at w (wavelengths, >= 0) whose
    /// first plane is q; 1 without the w-term.
    #[inline(always)]
    fn w_tap<T: Real>(&self, taps: &Taps<T>, w: f64, q: u32, j: usize) -> f64 {
        if self.flat {
            1.0
        } else {
            taps.one(self.wcoord(w), q, j)
        }
    }

    /// The w kernel's continuous plane coordinate of w (wavelengths, >= 0).
    #[inline(always)]
    fn wcoord(&self, w: f64) -> f64 {
        (w - self.w0) / self.dw
    }

    fn first_plane(&self, w: f64) -> u32 {
        let half = self.support as f64 / 2.0;
        (self.wcoord(w) - half).ceil().max(0.0) as u32
    }

    /// 1 / psi_hat for each pixel index along one axis.
    fn axis_correction(&self) -> Vec<f64> {
        let c = (self.n / 2) as f64;
        (0..self.n)
            .map(|j| 1.0 / self.kernel.fourier((j as f64 - c) / self.ng as f64))
            .collect()
    }

    /// 1 / psi_hat(dw (n - 1 - ns)) as a function of n - 1: a table over |argument| <=
    /// 1 / (2 sigma) read by 4-point Lagrange interpolation (error << 1e-10).
    fn w_correction(&self) -> impl Fn(f64) -> f64 + Sync + '_ {
        const NT: usize = 1024;
        let amax = 0.5 / self.sigma * 1.0001;
        let h = amax / NT as f64;
        let flat = self.flat;
        let tab: Vec<f64> = (0..NT + 4)
            .map(|i| 1.0 / self.kernel.fourier((i as f64 - 1.0) * h))
            .collect();
        move |x: f64| {
            if flat {
                return 1.0;
            }
            let a = (self.dw * (x - self.ns)).abs().min(amax) / h + 1.0;
            let i = (a.floor() as usize).clamp(1, NT + 1);
            let t = a - i as f64;
            let (y0, y1, y2, y3) = (tab[i - 1], tab[i], tab[i + 1], tab[i + 2]);
            // Lagrange on nodes -1, 0, 1, 2.
            -t * (t - 1.0) * (t - 2.0) / 6.0 * y0 + (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0 * y1
                - (t + 1.0) * t * (t - 2.0) / 2.0 * y2
                + (t + 1.0) * t * (t - 1.0) / 6.0 * y3
        }
    }
}
