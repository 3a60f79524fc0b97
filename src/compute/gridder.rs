//! Convolutional gridding with the ES kernel onto a 2x padded grid, w-stacked with the same
//! kernel along w ("improved w-stacking", as in ducc0's wgridder), then FFT, w-screens and
//! grid correction: a dirty image and its PSF in one pass.
//!
//! Parallelism without contention: each w-plane's grid is cut into horizontal strips (rows
//! of v); each rayon task owns one strip and grids every visibility whose kernel touches it,
//! writing only its own rows. Results do not depend on the thread count.
//!
//! Conventions: visibilities follow V = sum I exp(+2 pi i (u l + v m + w (n - 1)))
//! (pyuvdata), the image is I(l, m) = Re sum wt V exp(-2 pi i (u l + v m + w (n - 1))) / sum wt.
//! Pixel (x, y) of the output has l = (N/2 - x) cell (RA increasing to the left, as FITS
//! images with CDELT1 < 0) and m = (y - N/2) cell.

use crate::primitives::kernel::EsKernel;
use crate::primitives::C_M_S;
use num_complex::Complex32;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridSpec {
    /// Output image size (pixels, even).
    pub n_image: usize,
    /// Padded grid size (2 x n_image).
    pub n_grid: usize,
    /// Pixel size (rad).
    pub cell_rad: f64,
    /// Requested accuracy (the CPU gridder's contract, primitives::wgridder).
    pub epsilon: f64,
    /// The w-stacking kernel (the GPU path's; 2x grid).
    pub kernel: EsKernel,
    pub uv_min_lambda: f64,
    /// 0 = no upper limit.
    pub uv_max_lambda: f64,
    /// The grid size whose edge limits which visibilities are gridded (|u| and |v| below
    /// `uv_edge_pixfrac` / cell): `n_grid`, except for `doubled`, which keeps the original
    /// grid's, so that a PSF at twice the size holds exactly the visibilities of the image.
    pub edge_n_grid: usize,
    /// With the w-term (true but for `flat`): false grids every sample at w = 0.
    pub w_terms: bool,
}

impl GridSpec {
    pub fn new(n_image: usize, cell_rad: f64, epsilon: f64) -> Self {
        GridSpec {
            n_image,
            n_grid: 2 * n_image,
            cell_rad,
            epsilon,
            kernel: EsKernel::for_epsilon(epsilon),
            uv_min_lambda: 0.0,
            uv_max_lambda: 0.0,
            edge_n_grid: 2 * n_image,
            w_terms: true,
        }
    }

    /// The largest |u| and |v| gridded, in cycles per pixel (times the cell, below 0.5):
    /// the kernel's footprint inside the edge grid (`edge_n_grid`).
    pub fn uv_edge_pixfrac(&self) -> f64 {
        let g = self.edge_n_grid as f64;
        (g / 2.0 - self.kernel.support as f64 / 2.0 - 1.0) / g
    }

    /// The same cell, uv cuts and accuracy for an image of twice the size (on a grid of
    /// twice the size, so the uv cell halves), accepting the same visibilities (the
    /// original grid's edge, `edge_n_grid`): the PSF CLEAN's minor cycles use. With the
    /// larger grid's own edge the PSF would hold a band of visibilities (~2.5 uv cells wide
    /// at the Nyquist limit) that the residual images lack.
    pub fn doubled(&self) -> Self {
        GridSpec {
            n_image: 2 * self.n_image,
            n_grid: 2 * self.n_grid,
            ..*self
        }
    }

    /// The same grid without the w-term: every sample gridded at w = 0 (a 2-D transform,
    /// one plane on the CPU). What CLEAN's twice-size PSF is made with unless
    /// `imaging.psf_w_terms` is set: its far sidelobes are then those of the coplanar
    /// array (the minor cycles' model of them; the major cycles use the exact w-term).
    pub fn flat(&self) -> Self {
        GridSpec {
            w_terms: false,
            ..*self
        }
    }

    /// The same grid at accuracy `epsilon` if coarser than this one's (the kernel with it);
    /// CLEAN's intermediate re-griddings (`imaging.cycle_epsilon`).
    pub fn coarsened(&self, epsilon: f64) -> Self {
        let epsilon = epsilon.max(self.epsilon);
        GridSpec {
            epsilon,
            kernel: EsKernel::for_epsilon(epsilon),
            ..*self
        }
    }

    /// n - 1 at output pixel (x, y).
    #[inline]
    pub fn nm1(&self, x: usize, y: usize) -> f64 {
        let c = (self.n_image / 2) as f64;
        let l = (c - x as f64) * self.cell_rad;
        let m = (y as f64 - c) * self.cell_rad;
        let r2 = l * l + m * m;
        if r2 >= 1.0 {
            -1.0
        } else {
            -r2 / (1.0 + (1.0 - r2).sqrt())
        }
    }

    /// Largest |n - 1| over the image (at its corners).
    pub fn max_nm1(&self) -> f64 {
        -self.nm1(0, 0)
    }
}

/// A block of visibility rows (baseline-times) sharing one channel axis.
/// Row r's data are `vis[r*nchan*npol..]`, channel-major then polarization.
pub struct VisBlock<'a> {
    pub freqs: &'a [f64],
    pub npol: usize,
    /// Per row: (u, v, w) in metres in the image's basis.
    pub uvw_m: &'a [[f64; 3]],
    /// Per row: w_new - w_old (m); each visibility is multiplied by exp(-2 pi i dw nu / c)
    /// before gridding (rephasing). Zero for data already phased to the image centre.
    pub dw_m: &'a [f64],
    pub vis: &'a [Complex32],
    /// Per visibility weight (0 = flagged).
    pub weight: &'a [f32],
    /// Rows to use (false rows are skipped: autocorrelations, excluded baselines).
    pub use_row: &'a [bool],
    /// Buffers the CPU gridder reuses between passes of this shape (CLEAN's re-griddings;
    /// None: fresh memory each pass). Block images come from it and go back after being
    /// added.
    pub workspace: Option<&'a crate::primitives::wgridder::Workspace>,
    /// The same samples held in the backend's memory (`Compute::hold`), which a backend
    /// that holds them reads instead of `vis`, `weight`, `uvw_m` and `dw_m` (with w = 0
    /// on a grid without the w-term, as `uvw_m` then has it; the held visibilities may
    /// have had predictions subtracted that `vis` has not: only the backend that made
    /// them may be handed such a block).
    pub resident: Option<&'a dyn crate::compute::Resident>,
}

/// One block gridded for a GridPair, before it is added: its weight sum, w-plane
/// spacing (for the taper correction) and block images.
struct Gridded {
    sum_w: f64,
    dw: f64,
    dirty: Vec<f64>,
    psf: Vec<f64>,
}

/// Dirty and PSF images being accumulated (f64; not yet normalised or uv-corrected).
/// Sums of these over blocks, groups or ranks are exact, so ranks reduce them.
pub struct GridPair {
    pub spec: GridSpec,
    pub dirty: Vec<f64>,
    pub psf: Vec<f64>,
    pub sum_w: f64,
    /// Whether the PSF is gridded too (not needed for CLEAN's residual images).
    pub with_psf: bool,
    /// Whether the dirty image is gridded (not needed for the highest spectral PSF).
    pub with_dirty: bool,
    /// Spectral weighting (multi-term MFS): each visibility's contribution to the dirty
    /// image is multiplied by x^dirty_power and to the PSF by x^psf_power, with
    /// x = (nu - ref_hz) / ref_hz. The weight sum is not (images stay in units of the
    /// unweighted PSF). Powers 0 = plain imaging.
    pub ref_hz: f64,
    pub dirty_power: u8,
    pub psf_power: u8,
}

impl GridPair {
    pub fn new(spec: GridSpec) -> Self {
        let n = spec.n_image * spec.n_image;
        GridPair {
            spec,
            dirty: vec![0.0; n],
            psf: vec![0.0; n],
            sum_w: 0.0,
            with_psf: true,
            with_dirty: true,
            ref_hz: 1.0,
            dirty_power: 0,
            psf_power: 0,
        }
    }

    /// Accumulates the dirty image only (residuals of major cycles).
    pub fn without_psf(spec: GridSpec) -> Self {
        GridPair {
            with_psf: false,
            ..Self::new(spec)
        }
    }

    /// Spectral term images (multi-term MFS): the dirty image weighted by x^p (None: not
    /// gridded) and the PSF by x^q (None: not gridded), x = (nu - ref_hz) / ref_hz.
    pub fn spectral(
        spec: GridSpec,
        ref_hz: f64,
        dirty_power: Option<u8>,
        psf_power: Option<u8>,
    ) -> Self {
        GridPair {
            with_dirty: dirty_power.is_some(),
            with_psf: psf_power.is_some(),
            ref_hz,
            dirty_power: dirty_power.unwrap_or(0),
            psf_power: psf_power.unwrap_or(0),
            ..Self::new(spec)
        }
    }

    /// Grids a block of visibilities, w-stacked, into the images (on the CPU).
    pub fn add(&mut self, b: &VisBlock) {
        self.add_with(b, &crate::compute::Cpu);
    }

    /// As `add`, the planes gridded and transformed by `compute` (a GPU where the rank has
    /// one). A backend failure (a GPU out of memory, a driver error) is logged and the
    /// block is gridded on the CPU instead: the images are the same either way.
    pub fn add_with(&mut self, b: &VisBlock, compute: &dyn crate::compute::Compute) {
        if let Ok(Some(g)) = self.grid_block(b, compute, false) {
            self.accumulate(g, b.workspace);
        }
    }

    /// As `add_with`, but a backend failure is returned with the images untouched (a block
    /// whose visibilities are current only in the backend's memory, `VisBlock::resident`,
    /// cannot go to the CPU).
    pub fn try_add(
        &mut self,
        b: &VisBlock,
        compute: &dyn crate::compute::Compute,
    ) -> Result<(), crate::compute::GpuError> {
        if let Some(g) = self.grid_block(b, compute, true)? {
            self.accumulate(g, b.workspace);
        }
        Ok(())
    }

    /// The block's images on this pair's grid (None: no row in use); `strict`: a backend
    /// failure is returned, else the CPU grids the block instead.
    fn grid_block(
        &self,
        b: &VisBlock,
        compute: &dyn crate::compute::Compute,
        strict: bool,
    ) -> Result<Option<Gridded>, crate::compute::GpuError> {
        let spec = self.spec;
        // Without the w-term: the block with w = 0 (both backends then grid the 2-D
        // transform; the CPU's in one plane).
        let flat_uvw: Vec<[f64; 3]>;
        let flat_block: VisBlock;
        let b = if spec.w_terms {
            b
        } else {
            flat_uvw = b.uvw_m.iter().map(|x| [x[0], x[1], 0.0]).collect();
            // The held samples (`resident`) keep their w: a backend that reads them
            // takes w = 0 where the spec has no w-term.
            flat_block = VisBlock {
                uvw_m: &flat_uvw,
                ..*b
            };
            &flat_block
        };
        let Some(planes) = Planes::new(&spec, b) else {
            return Ok(None);
        };
        // Spectral weights per channel (multi-term MFS), None for an image not gridded.
        let factors = |on: bool, p: u8| -> Option<Vec<f64>> {
            on.then(|| {
                b.freqs
                    .iter()
                    .map(|f| ((f - self.ref_hz) / self.ref_hz).powi(p as i32))
                    .collect()
            })
        };
        let (fd, fp) = (
            factors(self.with_dirty, self.dirty_power),
            factors(self.with_psf, self.psf_power),
        );
        let job = WStack {
            spec: &spec,
            b,
            planes: &planes,
            dirty_factor: fd.as_deref(),
            psf_factor: fp.as_deref(),
        };
        let (dirty, psf) = if strict {
            compute.grid_wstack(&job)?
        } else {
            crate::compute::or_cpu(compute, "gridding", |c, _| c.grid_wstack(&job))
        };
        Ok(Some(Gridded {
            sum_w: weight_sum(&spec, b, &planes.rows),
            dw: planes.dw,
            dirty,
            psf,
        }))
    }

    /// Adds a block's images (w-taper corrected) and weight sum; their buffers go back to
    /// `workspace`.
    fn accumulate(
        &mut self,
        g: Gridded,
        workspace: Option<&crate::primitives::wgridder::Workspace>,
    ) {
        let spec = self.spec;
        self.sum_w += g.sum_w;
        let n = spec.n_image;
        let corr = w_taper_correction(&spec, g.dw);
        for (on, acc, blk) in [
            (self.with_dirty, &mut self.dirty, &g.dirty),
            (self.with_psf, &mut self.psf, &g.psf),
        ] {
            if !on {
                continue;
            }
            acc.par_chunks_mut(n)
                .zip(blk.par_chunks(n))
                .enumerate()
                .for_each(|(y, (a, bl))| {
                    for x in 0..n {
                        a[x] += bl[x] * corr(spec.nm1(x, y));
                    }
                });
        }
        if let Some(w) = workspace {
            for (on, blk) in [(self.with_dirty, g.dirty), (self.with_psf, g.psf)] {
                if on {
                    w.give(blk);
                }
            }
        }
    }

    /// Grids a block into several dirty-only images of the same grid at once (the spectral
    /// terms' residuals of multi-term CLEAN: one pass on the CPU, where the samples'
    /// geometry and kernel taps are shared), as `add_with` on each. Grids with a PSF or
    /// another spec are gridded one by one.
    pub fn add_all_with(
        grids: &mut [GridPair],
        b: &VisBlock,
        compute: &dyn crate::compute::Compute,
    ) {
        // Never Err: failures go to the CPU.
        let _ = Self::add_all_checked(grids, b, compute, false);
    }

    /// As `add_all_with`, but a backend failure is returned with every image untouched
    /// (see `try_add`).
    pub fn try_add_all(
        grids: &mut [GridPair],
        b: &VisBlock,
        compute: &dyn crate::compute::Compute,
    ) -> Result<(), crate::compute::GpuError> {
        Self::add_all_checked(grids, b, compute, true)
    }

    fn add_all_checked(
        grids: &mut [GridPair],
        b: &VisBlock,
        compute: &dyn crate::compute::Compute,
        strict: bool,
    ) -> Result<(), crate::compute::GpuError> {
        let Some(first) = grids.first() else {
            return Ok(());
        };
        let spec = first.spec;
        let shared = spec.w_terms
            && grids
                .iter()
                .all(|g| g.with_dirty && !g.with_psf && g.spec == spec);
        if !strict && (!shared || grids.len() == 1) {
            grids.iter_mut().for_each(|g| g.add_with(b, compute));
            return Ok(());
        }
        if !shared || grids.len() == 1 {
            // Every grid's block first, so that a failure leaves all the images as they were.
            let blocks = grids
                .iter()
                .map(|g| g.grid_block(b, compute, strict))
                .collect::<Result<Vec<_>, _>>()?;
            for (g, blk) in grids.iter_mut().zip(blocks) {
                if let Some(blk) = blk {
                    g.accumulate(blk, b.workspace);
                }
            }
            return Ok(());
        }
        let Some(planes) = Planes::new(&spec, b) else {
            return Ok(());
        };
        let factors: Vec<Vec<f64>> = grids
            .iter()
            .map(|g| {
                b.freqs
                    .iter()
                    .map(|f| ((f - g.ref_hz) / g.ref_hz).powi(g.dirty_power as i32))
                    .collect()
            })
            .collect();
        let refs: Vec<&[f64]> = factors.iter().map(|f| f.as_slice()).collect();
        let blocks = if strict {
            compute.grid_wstack_dirties(&spec, b, &planes, &refs)?
        } else {
            crate::compute::or_cpu(compute, "gridding", |c, _| {
                c.grid_wstack_dirties(&spec, b, &planes, &refs)
            })
        };
        let n = spec.n_image;
        let sum_w = weight_sum(&spec, b, &planes.rows);
        let corr = w_taper_correction(&spec, planes.dw);
        for (g, blk) in grids.iter_mut().zip(&blocks) {
            g.sum_w += sum_w;
            g.dirty
                .par_chunks_mut(n)
                .zip(blk.par_chunks(n))
                .enumerate()
                .for_each(|(y, (a, bl))| {
                    for x in 0..n {
                        a[x] += bl[x] * corr(spec.nm1(x, y));
                    }
                });
        }
        if let Some(w) = b.workspace {
            blocks.into_iter().for_each(|blk| w.give(blk));
        }
        Ok(())
    }

    /// The images and the weight sum as one f64 buffer (for MPI reductions).
    pub fn to_buffer(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(2 * self.dirty.len() + 1);
        out.extend_from_slice(&self.dirty);
        out.extend_from_slice(&self.psf);
        out.push(self.sum_w);
        out
    }

    /// Sums these images over the ranks onto `owner` (a collective: every rank calls it);
    /// the owner gets the reduced images, the others None.
    pub fn reduce_to(self, comm: &dyn crate::comm::Comm, owner: usize) -> Option<Self> {
        let mut buf = self.to_buffer();
        comm.reduce_sum_f64(owner, &mut buf);
        (comm.rank() == owner).then(|| Self::from_buffer(self.spec, &buf).with_flags_of(&self))
    }

    fn with_flags_of(mut self, o: &GridPair) -> Self {
        (
            self.with_psf,
            self.with_dirty,
            self.ref_hz,
            self.dirty_power,
            self.psf_power,
        ) = (
            o.with_psf,
            o.with_dirty,
            o.ref_hz,
            o.dirty_power,
            o.psf_power,
        );
        self
    }

    pub fn buffer_len(spec: &GridSpec) -> usize {
        2 * spec.n_image * spec.n_image + 1
    }

    pub fn from_buffer(spec: GridSpec, buf: &[f64]) -> Self {
        let n = spec.n_image * spec.n_image;
        assert_eq!(buf.len(), 2 * n + 1, "image buffer size");
        GridPair {
            dirty: buf[..n].to_vec(),
            psf: buf[n..2 * n].to_vec(),
            sum_w: buf[2 * n],
            ..Self::new(spec)
        }
    }

    /// Normalises and uv-corrects: (dirty, psf) images, row-major (y, x), the PSF peaking
    /// at 1. None if nothing was gridded.
    pub fn finish(self) -> Option<(Vec<f32>, Vec<f32>)> {
        let (d, p) = self.finish_f64()?;
        Some((
            d.iter().map(|&x| x as f32).collect(),
            p.iter().map(|&x| x as f32).collect(),
        ))
    }

    /// As `finish`, in f64.
    pub fn finish_f64(self) -> Option<(Vec<f64>, Vec<f64>)> {
        if self.sum_w <= 0.0 {
            return None;
        }
        let spec = self.spec;
        let k = spec.kernel;
        let norm0 = k.fourier(0.0);
        // uv correction, normalised so a unit tap sum maps to unit flux.
        let corr: Vec<f64> = k
            .correction(spec.n_image, spec.n_grid)
            .iter()
            .map(|c| c * norm0)
            .collect();
        let norm = 1.0 / (self.sum_w * norm0 * norm0);
        let n = spec.n_image;
        // In place; an image not gridded is returned as it is (zero, its pages untouched).
        let f = |on: bool, mut img: Vec<f64>| -> Vec<f64> {
            if on {
                img.par_chunks_mut(n).enumerate().for_each(|(y, row)| {
                    for (x, px) in row.iter_mut().enumerate() {
                        *px *= norm * corr[x] * corr[y];
                    }
                });
            }
            img
        };
        Some((f(self.with_dirty, self.dirty), f(self.with_psf, self.psf)))
    }
}

/// A block's w-planes, the same for gridding and degridding: the rows in use, each row's
/// Hermitian flip to w >= 0 and its w range over the block's channels, and the planes
/// w0 + p dw (p < nplanes, wavelengths) covering them. The w kernel's transform is used only
/// for |dw x| <= 1/4, where its aliasing error is below epsilon (2x oversampling, as in u
/// and v).
pub struct Planes {
    /// The rows in use (use_row true), ascending.
    pub rows: Vec<u32>,
    /// Per row: -1 where the row is flipped to w >= 0 ((uvw, V) -> (-uvw, V*)), else 1.
    pub sign: Vec<f64>,
    /// Per row: its w range (wavelengths, after the flip) over the block's channels.
    pub wrange: Vec<[f64; 2]>,
    pub w0: f64,
    pub dw: f64,
    pub nplanes: usize,
}

impl Planes {
    /// None when no row of the block is in use.
    pub fn new(spec: &GridSpec, b: &VisBlock) -> Option<Self> {
        let fmin = b.freqs.iter().copied().fold(f64::INFINITY, f64::min);
        let fmax = b.freqs.iter().copied().fold(0.0, f64::max);
        let sign: Vec<f64> = b
            .uvw_m
            .iter()
            .map(|x| if x[2] < 0.0 { -1.0 } else { 1.0 })
            .collect();
        let wrange: Vec<[f64; 2]> = b
            .uvw_m
            .iter()
            .zip(&sign)
            .map(|(x, s)| [s * x[2] * fmin / C_M_S, s * x[2] * fmax / C_M_S])
            .collect();
        let rows: Vec<u32> = (0..b.uvw_m.len())
            .filter(|&r| b.use_row[r])
            .map(|r| r as u32)
            .collect();
        if rows.is_empty() {
            return None;
        }
        let wmin = rows
            .iter()
            .map(|&r| wrange[r as usize][0])
            .fold(f64::INFINITY, f64::min);
        let wmax = rows
            .iter()
            .map(|&r| wrange[r as usize][1])
            .fold(0.0, f64::max);
        let support = spec.kernel.support;
        let dw = 0.25 / spec.max_nm1().max(1e-15);
        let w0 = wmin - dw * support as f64 / 2.0;
        let nplanes = ((wmax - wmin) / dw).floor() as usize + support + 1;
        Some(Planes {
            rows,
            sign,
            wrange,
            w0,
            dw,
            nplanes,
        })
    }

    /// The planes whose w kernel (`support` planes wide) reaches any of `rows`; planes
    /// outside it would only add zeros.
    pub fn touched(&self, rows: &[u32], support: usize) -> std::ops::Range<usize> {
        if rows.is_empty() {
            return 0..0;
        }
        let lo = rows
            .iter()
            .map(|&r| self.wrange[r as usize][0])
            .fold(f64::INFINITY, f64::min);
        let hi = rows
            .iter()
            .map(|&r| self.wrange[r as usize][1])
            .fold(f64::NEG_INFINITY, f64::max);
        let half = support as f64 / 2.0;
        let first = ((lo - self.w0) / self.dw - half).floor().max(0.0) as usize;
        let last =
            (((hi - self.w0) / self.dw + half).ceil().max(0.0) as usize + 1).min(self.nplanes);
        first.min(last)..last
    }
}

/// One block's w-stacking as a backend runs it (`Compute::grid_wstack`): each plane gridded
/// with the ES kernel in u, v and w, transformed, cropped to the image and multiplied by
/// its w-screen exp(-2 pi i w_p (n-1)); the result is the sum over planes (real part), not
/// yet corrected for the w taper.
pub struct WStack<'a> {
    pub spec: &'a GridSpec,
    pub b: &'a VisBlock<'a>,
    pub planes: &'a Planes,
    /// Per-channel factors of each visibility's contribution to the dirty image and to the
    /// PSF (multi-term MFS); None: that image is not gridded.
    pub dirty_factor: Option<&'a [f64]>,
    pub psf_factor: Option<&'a [f64]>,
}

/// 1 / psi_hat(dw (n - 1)): the w kernel's taper that `GridPair::add_with` divides out of
/// a backend's block images, as a function of n - 1 (a table, linearly interpolated).
fn w_taper_correction(spec: &GridSpec, dw: f64) -> impl Fn(f64) -> f64 {
    let (xmax, k) = (spec.max_nm1().max(1e-15), spec.kernel);
    const NTAB: usize = 2048;
    let tab: Vec<f64> = (0..=NTAB)
        .map(|i| 1.0 / k.fourier(i as f64 / NTAB as f64 * xmax * dw))
        .collect();
    move |x: f64| {
        let t = (-x / xmax).clamp(0.0, 1.0) * NTAB as f64;
        let i = (t.floor() as usize).min(NTAB - 1);
        let f = t - i as f64;
        tab[i] * (1.0 - f) + tab[i + 1] * f
    }
}

/// The wgridder options of a block on this grid: the same rows, rephasing and uv cuts
/// (including the w-stacked grid's edge limit) as the device path.
pub(crate) fn wgridder_options<'a>(
    spec: &GridSpec,
    b: &'a VisBlock<'a>,
) -> crate::primitives::wgridder::Options<'a> {
    let mut o =
        crate::primitives::wgridder::Options::new(spec.n_image, spec.cell_rad, spec.epsilon);
    o.npol = b.npol;
    o.row_mask = Some(b.use_row);
    o.row_delay_m = Some(b.dw_m);
    o.uv_min_lambda = spec.uv_min_lambda;
    o.uv_max_lambda = spec.uv_max_lambda;
    // `accepted`'s limit.
    o.max_uv_pixfrac = spec.uv_edge_pixfrac();
    o.wgridding = spec.w_terms;
    o.workspace = b.workspace;
    o
}

/// The CPU backend of `WStack`: (dirty, psf) block images, each zero when not gridded.
/// Computed by primitives::wgridder (its own grid, kernel and planes, to its accuracy
/// contract), then multiplied by the w-stacked grid's kernel transforms that
/// `GridPair::add_with` and `finish` divide out, so both backends share those steps.
pub fn wstack_cpu(job: &WStack) -> (Vec<f64>, Vec<f64>) {
    let want = crate::primitives::wgridder::Want {
        dirty: job.dirty_factor.is_some(),
        psf: job.psf_factor.is_some(),
        dirty_chan_factor: job.dirty_factor,
        psf_chan_factor: job.psf_factor,
        more_dirty: &[],
    };
    let (d, p, _) = wgridder_block(job.spec, job.b, job.planes, want);
    (d, p)
}

/// The CPU backend of `Compute::grid_wstack_dirties`: every dirty image from one
/// wgridder pass.
pub fn wstack_cpu_dirties(
    spec: &GridSpec,
    b: &VisBlock,
    planes: &Planes,
    factors: &[&[f64]],
) -> Vec<Vec<f64>> {
    let want = crate::primitives::wgridder::Want {
        more_dirty: factors,
        ..Default::default()
    };
    wgridder_block(spec, b, planes, want).2
}

/// A block through primitives::wgridder, each image (zero when not gridded) in the
/// w-stacked grid's convention (see `wstack_cpu`).
fn wgridder_block(
    spec: &GridSpec,
    b: &VisBlock,
    planes: &Planes,
    want: crate::primitives::wgridder::Want,
) -> (Vec<f64>, Vec<f64>, Vec<Vec<f64>>) {
    let n = spec.n_image;
    let opt = wgridder_options(spec, b);
    let t0 = std::time::Instant::now();
    let images = match crate::primitives::wgridder::vis2dirty(
        b.uvw_m, b.freqs, b.vis, b.weight, &opt, want,
    ) {
        Ok((images, choice)) => {
            if let Some(c) = choice {
                log::debug!(
                    "gridded {} rows x {} channels in {:.2} s: sigma {:.2}, grid {}, W {}, {} w-planes, {}",
                    b.use_row.iter().filter(|&&u| u).count(),
                    b.freqs.len(),
                    t0.elapsed().as_secs_f64(),
                    c.sigma,
                    c.n_grid,
                    c.support,
                    c.nplanes,
                    if c.single { "single" } else { "double" }
                );
            }
            images
        }
        Err(e) => {
            // The block's arrays come from VisBlock's own layout: a mismatch is a bug.
            panic!("CPU gridder: {e}");
        }
    };
    let inv = spec.kernel.correction(n, spec.n_grid);
    let taper = w_taper_correction(spec, planes.dw);
    let back = |img: Option<Vec<f64>>| -> Vec<f64> {
        let Some(mut img) = img else {
            return vec![0.0; n * n];
        };
        img.par_chunks_mut(n).enumerate().for_each(|(y, row)| {
            for (x, px) in row.iter_mut().enumerate() {
                *px /= inv[x] * inv[y] * taper(spec.nm1(x, y));
            }
        });
        img
    };
    (
        back(images.dirty),
        back(images.psf),
        images.more.into_iter().map(|m| back(Some(m))).collect(),
    )
}

/// Whether a visibility at (u, v) (wavelengths) passes the uv cuts and fits on the grid.
#[inline]
fn accepted(spec: &GridSpec, u: f64, v: f64) -> bool {
    let q = u * u + v * v;
    if q < spec.uv_min_lambda * spec.uv_min_lambda
        || (spec.uv_max_lambda > 0.0 && q > spec.uv_max_lambda * spec.uv_max_lambda)
    {
        return false;
    }
    // Kernel footprint inside the (edge) grid.
    let limit = spec.uv_edge_pixfrac() * spec.n_grid as f64;
    let scale = spec.n_grid as f64 * spec.cell_rad;
    (u * scale).abs() < limit && (v * scale).abs() < limit
}

/// Sum of the weights of the visibilities that will be gridded.
fn weight_sum(spec: &GridSpec, b: &VisBlock, rows: &[u32]) -> f64 {
    let stride = b.freqs.len() * b.npol;
    rows.par_iter()
        .map(|&r| {
            let r = r as usize;
            let [um, vm, _] = b.uvw_m[r];
            let mut s = 0.0;
            for (c, &f) in b.freqs.iter().enumerate() {
                let lam = f / C_M_S;
                if !accepted(spec, um * lam, vm * lam) {
                    continue;
                }
                let base = r * stride + c * b.npol;
                s += b.weight[base..base + b.npol]
                    .iter()
                    .filter(|&&w| w > 0.0)
                    .map(|&w| w as f64)
                    .sum::<f64>();
            }
            s
        })
        .sum()
}
