//! The GPU backend (feature `gpu`): one CUDA device per rank through cudarc, the kernels
//! compiled by NVRTC for the device's architecture when the rank opens it (PTX cached on
//! disk between runs, see kernels::ptx_cache_dir), work chunked to the rank's GPU-memory
//! budget.
//!
//! The Compute seam runs the flagger's passes (device_flag: a batch's
//! backgrounds, robust noise, residuals and SumThreshold of both signs chained on the
//! device, and SIR dilation), CLEAN's minor-cycle iterations (device_minor) and round
//! subtraction by FFT (device_convolve, the PSFs' transforms kept on the device), the
//! direct prediction of point components (device_dft), and the
//! w-stacked gridding and degridding (device_stack, device_unstack: pinned
//! double-buffered uploads, tiles in shared memory, cuFFT) here, and holds a group on the
//! device for CLEAN's major cycles (device_held: copied up once, re-gridded and its model
//! increments and refitted outliers subtracted there, device_outliers) and a group's
//! flagging planes for the whole flagger
//! (device_planes: every pass, SIR, dead antennas and the amplitude clip on planes copied
//! up once), CLEAN's residual images through a minor cycle (device_residual) and the
//! calibration solver's statistics (device_calstats); with the debug log on, their phases
//! are timed (device_timing). The flagger's amplitudes and array detection (one cell
//! plane) and the clip's median run on the host.

use super::{kernels, launch, Compute, GpuError, NoGpu};
use cudarc::cufft::sys::double2;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig};
use num_complex::{Complex32, Complex64};
use std::sync::Arc;

pub struct Gpu {
    pub(super) ctx: Arc<CudaContext>,
    /// The main stream; the second takes every other upload slice (device_stack).
    pub(super) stream: Arc<CudaStream>,
    pub(super) stream2: Arc<CudaStream>,
    /// The flagger's stream: the next group's flagging (prefetch) runs beside this group's
    /// imaging instead of queueing behind it.
    pub(super) flag_stream: Arc<CudaStream>,
    pub(super) grid: CudaFunction,
    pub(super) degrid: CudaFunction,
    /// The flagger's kernels (device_flag).
    pub(super) flag: super::device_flag::FlagKernels,
    /// CLEAN's round convolution (device_convolve) and the PSF transforms it keeps.
    pub(super) convolve: super::device_convolve::ConvolveKernels,
    pub(super) psf_cache: std::sync::Mutex<super::device_convolve::PsfCache>,
    pub(super) clark_minor: CudaFunction,
    /// The direct prediction of point components (device_dft).
    pub(super) dft: CudaFunction,
    pub(super) psf_images: std::sync::Mutex<super::device_minor::PsfImages>,
    pub(super) stack: super::device_stack::StackKernels,
    /// held.cu's functions, and the bytes of the groups held on the device now
    /// (device_held; each held group leaves the count when it is dropped).
    pub(super) held: super::device_held::HeldKernels,
    /// planes.cu's functions: a group's flagging planes held for the flagger
    /// (device_planes).
    pub(super) planes: super::device_planes::PlanesKernels,
    /// outliers.cu's functions: the outliers' refit on a held group (device_outliers).
    pub(super) outliers: super::device_outliers::OutlierKernels,
    /// CLEAN's residual images held through a minor cycle (device_residual).
    pub(super) residual: super::device_residual::ResidualKernels,
    /// The calibration solver's sufficient statistics (device_calstats).
    pub(super) calstats: super::device_calstats::CalStatsKernels,
    pub(super) resident_bytes: Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes of the groups held ahead by the reader (`Compute::hold_ahead`) and not yet
    /// adopted by the image loop: they count against the flagger's budget (`flag_room`).
    pub(super) ahead_bytes: Arc<std::sync::atomic::AtomicUsize>,
    /// cuFFT plans by grid size (made on first use, kept for the process).
    pub(super) ffts: std::sync::Mutex<Vec<(usize, cudarc::cufft::CudaFft)>>,
    /// The gridder's two pinned staging slices, kept between blocks (pinning host memory
    /// costs more than filling it), with the rows and row length they were made for.
    pub(super) staging: std::sync::Mutex<Option<super::device_stack::Staging>>,
    name: String,
    /// Bytes of device memory this rank's imaging, rephasing and calibration buffers and
    /// the caches kept between calls (`held_bytes`) may use: three quarters of the rank's
    /// share.
    pub(super) budget: usize,
    /// Bytes the flagger's batches may use: the other quarter (the next group's flagging
    /// runs beside this group's imaging when prefetching, and the two never sum past the
    /// rank's share).
    pub(super) flag_budget: usize,
    pci: Option<(u32, u32, u32)>,
}

pub(super) fn cuda(e: impl std::fmt::Debug) -> GpuError {
    GpuError::Cuda(format!("{e:?}"))
}

impl Gpu {
    /// Opens device `local_rank mod count` (`local_size` ranks on the node share the
    /// devices round-robin); Err says why there is no GPU to use.
    pub fn open(local_rank: usize, local_size: usize, mem_gib: f64) -> Result<Self, NoGpu> {
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(NoGpu::NoDriver);
        }
        if !kernels::nvrtc_present() {
            return Err(NoGpu::NoNvrtc);
        }
        if !unsafe { cudarc::cufft::sys::is_culib_present() } {
            return Err(NoGpu::NoCufft);
        }
        let n = CudaContext::device_count().map_err(|e| NoGpu::Count(cuda(e)))?;
        if n <= 0 {
            return Err(NoGpu::NoDevice);
        }
        let ordinal = super::device_ordinal(local_rank, n as usize);
        let on_device = |e| NoGpu::Device {
            ordinal,
            source: cuda(e),
        };
        let ctx = CudaContext::new(ordinal).map_err(on_device)?;
        let (major, minor) = ctx.compute_capability().map_err(on_device)?;
        let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
        let cache = kernels::ptx_cache_dir();
        let load = |file: &'static str, entry: &'static str| -> Result<CudaFunction, NoGpu> {
            let kernel = |source| NoGpu::Kernel {
                file,
                entry,
                source,
            };
            let ptx = kernels::compile_cached(file, arch, cache.as_deref()).map_err(kernel)?;
            let m = ctx.load_module(ptx).map_err(|e| kernel(cuda(e)))?;
            m.load_function(entry).map_err(|e| kernel(cuda(e)))
        };
        let grid = load("grid.cu", "grid_tiles")?;
        let degrid = load("degrid.cu", "degrid_points")?;
        let flag = super::device_flag::FlagKernels::load(&load)?;
        let convolve = super::device_convolve::ConvolveKernels::load(&load)?;
        let clark_minor = load("minor.cu", "clark_minor")?;
        let dft = load("dft.cu", "predict_points")?;
        let stack = super::device_stack::StackKernels::load(load)?;
        let held = super::device_held::HeldKernels::load(load)?;
        let planes = super::device_planes::PlanesKernels::load(load)?;
        let outliers = super::device_outliers::OutlierKernels::load(load)?;
        let residual = super::device_residual::ResidualKernels::load(load)?;
        let calstats = super::device_calstats::CalStatsKernels::load(load)?;
        let (free, total) = ctx.mem_get_info().map_err(on_device)?;
        let share = super::rank_share(ordinal, local_size, n as usize, free, mem_gib);
        let (budget, flag_budget) = (share - share / 4, share / 4);
        let dev_name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
        let name = format!("gpu {ordinal} ({dev_name}, sm_{major}{minor}, {:.1} of {:.1} GiB free, budget {:.1} GiB)", free as f64 / 1e9 * 0.931, total as f64 / 1e9 * 0.931, share as f64 / (1u64 << 30) as f64);
        let stream = ctx.default_stream();
        let stream2 = ctx.new_stream().map_err(on_device)?;
        let flag_stream = ctx.new_stream().map_err(on_device)?;
        use cudarc::driver::sys::CUdevice_attribute as A;
        let attr = |a: A| ctx.attribute(a).ok().map(|v| v as u32);
        let pci = match (
            attr(A::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID),
            attr(A::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID),
            attr(A::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID),
        ) {
            (Some(d), Some(b), Some(v)) => Some((d, b, v)),
            _ => None,
        };
        Ok(Gpu {
            ctx,
            stream,
            stream2,
            flag_stream,
            grid,
            degrid,
            flag,
            convolve,
            psf_cache: Default::default(),
            clark_minor,
            dft,
            psf_images: Default::default(),
            stack,
            held,
            planes,
            outliers,
            residual,
            calstats,
            resident_bytes: Default::default(),
            ahead_bytes: Default::default(),
            ffts: Default::default(),
            staging: Default::default(),
            name,
            budget,
            flag_budget,
            pci,
        })
    }

    /// Device bytes held between calls: the PSF caches (device_convolve's transforms,
    /// device_minor's images), the cuFFT plans' work areas (estimated at one plane of
    /// the plan's size each) and the groups held for CLEAN (device_held). They sit inside the rank's budget: each call that sizes its
    /// passes from the budget first takes them off (`work_budget`).
    pub(super) fn held_bytes(&self) -> usize {
        let psf_hats: usize = self
            .psf_cache
            .lock()
            .map(|c| c.iter().map(|e| e.1.len() * 4).sum())
            .unwrap_or(0);
        let psf_images = self
            .psf_images
            .lock()
            .map(|c| c.as_ref().map_or(0, |e| e.1.len() * 8))
            .unwrap_or(0);
        let plans: usize = self
            .ffts
            .lock()
            .map(|p| p.iter().map(|e| e.0 * e.0 * 16).sum())
            .unwrap_or(0);
        let groups = self
            .resident_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        psf_hats + psf_images + plans + groups
    }

    /// The imaging budget less what the caches hold now.
    pub(super) fn work_budget(&self) -> usize {
        self.budget.saturating_sub(self.held_bytes())
    }

    /// The flagger's budget less the groups the reader holds ahead of the image loop.
    pub(super) fn flag_room(&self) -> usize {
        let ahead = self.ahead_bytes.load(std::sync::atomic::Ordering::Relaxed);
        self.flag_budget.saturating_sub(ahead)
    }

    /// grid_tiles: visibilities sorted by the 32 x 32 tile of their first tap (counting
    /// sort on the host), one block per segment of a tile accumulating in shared memory.
    #[allow(clippy::too_many_arguments)]
    pub fn grid_tiles(
        &self,
        ng: usize,
        u_px: &[f64],
        v_px: &[f64],
        vis_w: &[Complex64],
        w_weight: &[f64],
        support: usize,
        beta: f64,
    ) -> Result<Vec<Complex64>, GpuError> {
        use super::stack::{tile_key, tile_order, TILE};
        let tiles_x = ng.div_ceil(TILE);
        let keys: Vec<i32> = (0..u_px.len())
            .map(|j| tile_key(u_px[j], v_px[j], support, tiles_x) as i32)
            .collect();
        let (start, order) = tile_order(&keys, tiles_x * tiles_x);
        let pick = |v: &[f64]| -> Vec<f64> { order.iter().map(|&j| v[j]).collect() };
        let vis: Vec<double2> = order
            .iter()
            .map(|&j| double2 {
                x: vis_w[j].re,
                y: vis_w[j].im,
            })
            .collect();
        let s = &self.stream;
        let mut d_grid = s.alloc_zeros::<double2>(ng * ng).map_err(cuda)?;
        // Small segments here, so the vectors exercise tiles split over several blocks.
        let (seg_tile, seg_start) = super::stack::segments(&start, 16);
        let (d_u, d_v, d_vis, d_w) = (
            s.clone_htod(&pick(u_px)).map_err(cuda)?,
            s.clone_htod(&pick(v_px)).map_err(cuda)?,
            s.clone_htod(&vis).map_err(cuda)?,
            s.clone_htod(&pick(w_weight)).map_err(cuda)?,
        );
        let (d_seg_tile, d_seg_start) = (
            s.clone_htod(&seg_tile).map_err(cuda)?,
            s.clone_htod(&seg_start).map_err(cuda)?,
        );
        let (ngi, tx, sup) = (ng as i32, tiles_x as i32, support as i32);
        let cfg = LaunchConfig {
            grid_dim: (seg_tile.len() as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: one block a segment of the sorted visibilities, the ng x ng grid.
        unsafe {
            launch::grid_tiles(
                s,
                &self.grid,
                cfg,
                &mut d_grid,
                ngi,
                &d_u,
                &d_v,
                &d_vis,
                &d_w,
                &d_seg_tile,
                &d_seg_start,
                tx,
                sup,
                beta,
            )
        }
        .map_err(cuda)?;
        let out = s.clone_dtoh(&d_grid).map_err(cuda)?;
        Ok(out.iter().map(|c| Complex64::new(c.x, c.y)).collect())
    }

    /// degrid_points: one thread per visibility.
    #[allow(clippy::too_many_arguments)]
    pub fn degrid_points(
        &self,
        grid: &[Complex64],
        ng: usize,
        u_px: &[f64],
        v_px: &[f64],
        w_weight: &[f64],
        support: usize,
        beta: f64,
    ) -> Result<Vec<Complex64>, GpuError> {
        let s = &self.stream;
        let g: Vec<double2> = grid.iter().map(|c| double2 { x: c.re, y: c.im }).collect();
        let (d_g, d_u, d_v, d_w) = (
            s.clone_htod(&g).map_err(cuda)?,
            s.clone_htod(u_px).map_err(cuda)?,
            s.clone_htod(v_px).map_err(cuda)?,
            s.clone_htod(w_weight).map_err(cuda)?,
        );
        let mut d_out = s.alloc_zeros::<double2>(u_px.len()).map_err(cuda)?;
        let (ngi, n, sup) = (ng as i32, u_px.len() as i32, support as i32);
        // SAFETY: one thread a visibility of the n every list holds.
        unsafe {
            launch::degrid_points(
                s,
                &self.degrid,
                launch::for_elems(u_px.len())?,
                &d_g,
                ngi,
                &d_u,
                &d_v,
                &d_w,
                n,
                sup,
                beta,
                &mut d_out,
            )
        }
        .map_err(cuda)?;
        let out = s.clone_dtoh(&d_out).map_err(cuda)?;
        Ok(out.iter().map(|c| Complex64::new(c.x, c.y)).collect())
    }

    /// SumThreshold along time (stride nf) on every channel of one nt x nf plane.
    pub fn sumthreshold_time(
        &self,
        values: &[f32],
        flags: &[bool],
        nt: usize,
        nf: usize,
        m: usize,
        thr: f32,
    ) -> Result<Vec<bool>, GpuError> {
        let s = &self.stream;
        let f: Vec<u8> = flags.iter().map(|&x| u8::from(x)).collect();
        let (d_val, d_f) = (
            s.clone_htod(values).map_err(cuda)?,
            s.clone_htod(&f).map_err(cuda)?,
        );
        let mut d_new = s.clone_htod(&f).map_err(cuda)?;
        let (nlines, step, stride, n, mi, planes, plane) = (
            nf as i32,
            1i32,
            nf as i32,
            nt as i32,
            m as i32,
            1i32,
            (nt * nf) as i64,
        );
        // SAFETY: one thread a channel's line of the one plane.
        unsafe {
            launch::sumthreshold_lines(
                s,
                &self.flag.sumthreshold,
                launch::for_elems(nf)?,
                &d_val,
                &d_f,
                &mut d_new,
                nlines,
                step,
                stride,
                n,
                mi,
                thr,
                planes,
                plane,
            )
        }
        .map_err(cuda)?;
        Ok(s.clone_dtoh(&d_new)
            .map_err(cuda)?
            .into_iter()
            .map(|x| x != 0)
            .collect())
    }
}

/// Complex32 as interleaved f32 (the kernels' float2).
pub(super) fn as_f32(v: &mut [Complex32]) -> &mut [f32] {
    // SAFETY: Complex32 is repr(C) { re: f32, im: f32 }.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut f32, v.len() * 2) }
}

/// `as_f32` of a shared slice.
pub(super) fn as_f32_ref(v: &[Complex32]) -> &[f32] {
    // SAFETY: Complex32 is repr(C) { re: f32, im: f32 }.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const f32, v.len() * 2) }
}

impl Compute for Gpu {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn is_device(&self) -> bool {
        true
    }

    /// Batches of planes to the budget: prep, the pass along frequency, the pass along time
    /// (as the twin), the surface back as f32.
    fn background_planes(
        &self,
        values: &[f32],
        flags: &[bool],
        nt: usize,
        nf: usize,
        sm: &super::Smoothing,
    ) -> Result<Vec<f32>, GpuError> {
        self.background_batches(values, flags, nt, nf, sm)
    }

    fn sumthreshold_planes(
        &self,
        values: &[f32],
        flags: &mut [bool],
        nt: usize,
        nf: usize,
        sched: &super::Schedule,
    ) -> Result<(), GpuError> {
        self.sumthreshold_batches(values, flags, nt, nf, sched)
    }

    fn flag_pass(
        &self,
        job: &super::flag_pass::FlagPass,
        values: &mut [f32],
        flags: &[bool],
    ) -> Result<super::flag_pass::FlagPassOut, GpuError> {
        self.flag_pass_dev(job, values, flags)
    }

    fn convolve_components(
        &self,
        comps: &[Vec<(usize, f64)>],
        hats: &[&super::convolve::PsfHat],
        n: usize,
    ) -> Result<Vec<Vec<f64>>, GpuError> {
        self.convolve_dev(comps, hats, n)
    }

    fn psf_hat(&self, psf: &[f64], m: usize) -> Result<super::convolve::PsfHat, GpuError> {
        self.psf_hat_dev(psf, m)
    }

    fn minor_cycle(
        &self,
        job: &super::minor::MinorJob,
    ) -> Result<super::minor::MinorOut, GpuError> {
        self.minor_dev(job)
    }

    fn hold_images(
        &self,
        images: &[Vec<f64>],
        eligible: &[bool],
        n: usize,
    ) -> Result<Option<Box<dyn super::held_images::HeldImages + '_>>, GpuError> {
        Ok(self
            .hold_images_dev(images, eligible, n)?
            .map(|h| Box::new(h) as Box<dyn super::held_images::HeldImages>))
    }

    fn sir_planes(
        &self,
        flags: &mut [bool],
        nt: usize,
        nf: usize,
        eta: f64,
        extend: bool,
    ) -> Result<(), GpuError> {
        self.sir_dev(flags, nt, nf, eta, extend)
    }

    fn cal_stats(
        &self,
        job: &super::cal_stats::CalStatsJob,
        out: &mut [f64],
    ) -> Result<(), GpuError> {
        self.cal_stats_dev(job, out)
    }

    fn predict_points(
        &self,
        b: &super::dft::DftBlock,
        points: &[super::dft::Point],
        amp: &[f32],
        out: &mut [Complex32],
    ) -> Result<(), GpuError> {
        self.predict_points_dev(b, points, amp, out)
    }

    fn grid_wstack(
        &self,
        job: &crate::compute::gridder::WStack,
    ) -> Result<(Vec<f64>, Vec<f64>), GpuError> {
        self.grid_wstack_dev(job)
    }

    fn degrid_wstack(
        &self,
        job: &crate::compute::degridder::WUnstack,
        out: &mut [Complex32],
    ) -> Result<(), GpuError> {
        self.degrid_wstack_dev(job, out)
    }

    fn hold(
        &self,
        b: &crate::compute::gridder::VisBlock,
    ) -> Result<Option<Box<dyn super::Resident>>, GpuError> {
        self.hold_dev(b, false)
    }

    fn hold_ahead(
        &self,
        b: &crate::compute::gridder::VisBlock,
    ) -> Result<Option<Box<dyn super::Resident>>, GpuError> {
        self.hold_dev(b, true)
    }

    fn adopt(&self, r: &dyn super::Resident) {
        self.adopt_dev(r)
    }

    fn fetch_resident(
        &self,
        r: &dyn super::Resident,
        vis: &mut [Complex32],
    ) -> Result<(), GpuError> {
        self.fetch_dev(r, vis)
    }

    fn degrid_subtract(
        &self,
        r: &dyn super::Resident,
        jobs: &[crate::compute::degridder::WUnstack],
        weights: &[crate::compute::degridder::Weights],
        scale: f32,
    ) -> Result<(), GpuError> {
        self.degrid_subtract_dev(r, jobs, weights, scale)
    }

    fn predict_points_subtract(
        &self,
        r: &dyn super::Resident,
        b: &super::dft::DftBlock,
        points: &[super::dft::Point],
        amp: &[f32],
    ) -> Result<(), GpuError> {
        self.predict_points_subtract_dev(r, b, points, amp)
    }

    fn outlier_normal(
        &self,
        r: &dyn super::Resident,
        m: &super::outlier_fit::UnitModel,
        with_ata: bool,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>), GpuError> {
        self.outlier_normal_dev(r, m, with_ata)
    }

    fn outlier_subtract(
        &self,
        r: &dyn super::Resident,
        m: &super::outlier_fit::UnitModel,
        delta: &[f64],
    ) -> Result<(), GpuError> {
        self.outlier_subtract_dev(r, m, delta)
    }

    fn hold_planes(
        &self,
        shape: &super::flag_planes::PlanesShape,
        fill: &mut super::flag_planes::PlanesFill,
    ) -> Result<Option<Box<dyn super::flag_planes::FlagPlanes + '_>>, GpuError> {
        Ok(self
            .hold_planes_dev(shape, fill)?
            .map(|p| Box::new(p) as Box<dyn super::flag_planes::FlagPlanes>))
    }

    fn pci(&self) -> Option<(u32, u32, u32)> {
        self.pci
    }

    fn planes_per_batch(&self) -> usize {
        8192
    }
}

/// Flags as the bytes the kernels read (a bool is one byte holding 0 or 1).
pub(super) fn bool_bytes(flags: &[bool]) -> &[u8] {
    // SAFETY: bool has the size and alignment of u8 and every bool is a valid u8.
    unsafe { std::slice::from_raw_parts(flags.as_ptr().cast::<u8>(), flags.len()) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compute::vectors;

    pub(crate) fn device() -> Option<Gpu> {
        device_with(0.0)
    }

    /// `device` with a memory budget of `mem_gib` (0: the default share).
    pub(crate) fn device_with(mem_gib: f64) -> Option<Gpu> {
        match Gpu::open(0, 1, mem_gib) {
            Ok(g) => Some(g),
            Err(why) => {
                assert!(
                    std::env::var("CONTIMG_EXPECT_GPU").is_err(),
                    "CONTIMG_EXPECT_GPU is set but no device: {why}"
                );
                crate::compute::note_skipped_test(&format!("GPU-vs-CPU kernel test: {why}"));
                None
            }
        }
    }

    #[test]
    fn grid_kernel_matches_the_vectors() {
        let Some(g) = device() else { return };
        let v = vectors::grid();
        let got = g
            .grid_tiles(
                v.ng,
                &v.u_px,
                &v.v_px,
                &v.vis_w,
                &v.w_weight,
                v.support,
                v.beta,
            )
            .unwrap();
        let err = got
            .iter()
            .zip(&v.expected)
            .map(|(a, b)| (a - b).norm())
            .fold(0f64, f64::max);
        assert!(err < 1e-12, "max error {err}");
    }

    #[test]
    fn degrid_kernel_matches_the_vectors() {
        let Some(g) = device() else { return };
        let v = vectors::degrid();
        let got = g
            .degrid_points(
                &v.grid,
                v.ng,
                &v.u_px,
                &v.v_px,
                &v.w_weight,
                v.support,
                v.beta,
            )
            .unwrap();
        let err = got
            .iter()
            .zip(&v.expected)
            .map(|(a, b)| (a - b).norm())
            .fold(0f64, f64::max);
        assert!(err < 1e-12, "max error {err}");
    }

    #[test]
    fn sumthreshold_kernel_matches_the_vectors() {
        let Some(g) = device() else { return };
        let v = vectors::sumthreshold();
        assert_eq!(
            g.sumthreshold_time(&v.values, &v.flags, v.nt, v.nf, v.m, v.thr)
                .unwrap(),
            v.expected
        );
    }

    #[test]
    fn batched_sumthreshold_matches_the_cpu_schedule() {
        let Some(g) = device() else { return };
        let v = vectors::sumthreshold();
        // Five planes: the vector's plane scaled, with its flags.
        let values: Vec<f32> = (0..5)
            .flat_map(|k| v.values.iter().map(move |x| x * (1.0 + 0.3 * k as f32)))
            .collect();
        let flags: Vec<bool> = (0..5).flat_map(|_| v.flags.iter().copied()).collect();
        let sched = crate::compute::Schedule {
            chi1: 3.0,
            rho: 1.5,
            max_m_time: 16,
            max_m_freq: 8,
        };
        let (mut dev, mut cpu) = (flags.clone(), flags.clone());
        g.sumthreshold_planes(&values, &mut dev, v.nt, v.nf, &sched)
            .unwrap();
        crate::compute::Cpu
            .sumthreshold_planes(&values, &mut cpu, v.nt, v.nf, &sched)
            .unwrap();
        assert!(cpu.iter().filter(|&&f| f).count() > flags.iter().filter(|&&f| f).count());
        assert_eq!(dev, cpu);
    }

    #[test]
    fn batched_background_matches_the_cpu_smoothing() {
        let Some(g) = device() else { return };
        let v = vectors::sumthreshold();
        let values: Vec<f32> = (0..3)
            .flat_map(|k| v.values.iter().map(move |x| x + 0.1 * k as f32))
            .collect();
        let flags: Vec<bool> = (0..3).flat_map(|_| v.flags.iter().copied()).collect();
        for linear in [false, true] {
            let sm = crate::compute::Smoothing {
                sigma_t: 3.0,
                sigma_f: 5.5,
                linear,
            };
            let dev = g
                .background_planes(&values, &flags, v.nt, v.nf, &sm)
                .unwrap();
            let cpu = crate::compute::Cpu
                .background_planes(&values, &flags, v.nt, v.nf, &sm)
                .unwrap();
            let err = dev
                .iter()
                .zip(&cpu)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-6, "linear {linear}: max difference {err}");
        }
    }
}
