//! A group's flagging planes held on the device for the whole flagger (feature `gpu`;
//! `Compute::hold_planes`, compute::flag_planes): the cross-correlations' amplitudes (f32)
//! and flags (a byte a sample) copied up once, in pieces through a bounded host buffer.
//! Every pass then runs on batches of them without the bus: each batch's amplitudes and
//! flags copied on the device, device_flag's background, noise, residuals and SumThreshold,
//! then planes.cu's excess power (summed over the batches, per cell) and the flags written
//! back to the held ones. SIR, the array's cells, dead antennas' planes and the amplitude
//! clip run on the held flags too. What crosses the bus afterwards: per pass the excess
//! power (one cell plane) and the cells; per step a count a plane; the clip's subsets
//! (at most 4 M amplitudes a polarization) for their median on the host; and the flags,
//! once, at the end.
//!
//! The held planes take at most half of the flagger's room (its quarter of the rank's
//! share, less a group the reader holds ahead: `Gpu::flag_room`); the batches of every
//! pass keep the rest.

use super::device::{bool_bytes, cuda, Gpu};
use super::device_flag::{PASS_BYTES, SIR_BYTES};
use super::device_timing::Phases;
use super::flag_pass::ExcessPower;
use super::flag_planes::{FlagPlanes, PlanesFill, PlanesPass, PlanesShape};
use super::{launch, GpuError, NoGpu};
use cudarc::driver::{CudaFunction, CudaSlice};

/// The functions of planes.cu.
pub(super) struct PlanesKernels {
    or_cells: CudaFunction,
    clear_cells: CudaFunction,
    apply_found: CudaFunction,
    excess_partial: CudaFunction,
    excess_reduce: CudaFunction,
    count_planes: CudaFunction,
    flag_planes: CudaFunction,
    clip_sample: CudaFunction,
    clip_above: CudaFunction,
}

impl PlanesKernels {
    pub(super) fn load(
        load: impl Fn(&'static str, &'static str) -> Result<CudaFunction, NoGpu>,
    ) -> Result<Self, NoGpu> {
        Ok(PlanesKernels {
            or_cells: load("planes.cu", "or_cells")?,
            clear_cells: load("planes.cu", "clear_cells")?,
            apply_found: load("planes.cu", "apply_found")?,
            excess_partial: load("planes.cu", "excess_partial")?,
            excess_reduce: load("planes.cu", "excess_reduce")?,
            count_planes: load("planes.cu", "count_planes")?,
            flag_planes: load("planes.cu", "flag_planes")?,
            clip_sample: load("planes.cu", "clip_sample")?,
            clip_above: load("planes.cu", "clip_above")?,
        })
    }
}

/// Samples of the host buffer the planes are filled through: at most 64 MB of amplitudes,
/// and a sixteenth of the flagger's budget.
const FILL_SAMPLES: usize = 1 << 24;
/// Planes a thread of excess_partial sums (the partial sums take 12 bytes a cell a chunk).
const EXCESS_CHUNK: usize = 64;
/// Device bytes a held sample: its amplitude and its flag.
const HELD_BYTES: usize = 5;

/// The planes on the device.
pub(super) struct DevPlanes<'a> {
    gpu: &'a Gpu,
    amp: CudaSlice<f32>,
    flags: CudaSlice<u8>,
    shape: PlanesShape,
    /// The flagger's budget less the held planes: the batches' share.
    budget: usize,
}

impl Gpu {
    /// Compute::hold_planes: None where the planes would take more than half the flagger's
    /// budget.
    pub(super) fn hold_planes_dev(
        &self,
        shape: &PlanesShape,
        fill: &mut PlanesFill,
    ) -> Result<Option<DevPlanes<'_>>, GpuError> {
        let tf = shape.nt * shape.nf;
        let n = shape.planes * tf;
        let room = self.flag_room();
        if n == 0 || 2 * n * HELD_BYTES > room {
            return Ok(None);
        }
        let s = &self.flag_stream;
        let mut amp = unsafe { s.alloc::<f32>(n) }.map_err(cuda)?;
        let mut flags = unsafe { s.alloc::<u8>(n) }.map_err(cuda)?;
        let piece = (FILL_SAMPLES.min(room / 16) / tf).clamp(1, shape.planes);
        log::debug!(
            "holding {} flagging planes, filled {} at a time",
            shape.planes,
            piece
        );
        let (mut h_amp, mut h_fl) = (vec![0f32; piece * tf], vec![false; piece * tf]);
        let mut t = Phases::start(s, "hold_flag_planes");
        for first in (0..shape.planes).step_by(piece) {
            let k = piece.min(shape.planes - first);
            let (a, f) = (&mut h_amp[..k * tf], &mut h_fl[..k * tf]);
            fill(first, a, f);
            t.mark("fill on the host");
            let range = first * tf..(first + k) * tf;
            s.memcpy_htod(&*a, &mut amp.slice_mut(range.clone()))
                .map_err(cuda)?;
            s.memcpy_htod(bool_bytes(f), &mut flags.slice_mut(range))
                .map_err(cuda)?;
            // The host buffers are refilled next.
            s.synchronize().map_err(cuda)?;
            t.mark("upload");
        }
        t.finish();
        Ok(Some(DevPlanes {
            gpu: self,
            amp,
            flags,
            shape: *shape,
            budget: room - n * HELD_BYTES,
        }))
    }
}

impl DevPlanes<'_> {
    fn tf(&self) -> usize {
        self.shape.nt * self.shape.nf
    }

    fn n(&self) -> usize {
        self.shape.planes * self.tf()
    }

    /// Planes a batch of `bytes` device bytes a sample.
    fn batch(&self, bytes: usize) -> usize {
        let (nt, nf) = (self.shape.nt, self.shape.nf);
        self.gpu
            .flag_batch_in(self.budget, bytes, nt * nf, self.shape.planes, nt.max(nf))
    }

    /// The cells as a byte a cell (zeros for none).
    fn cells(&self, cells: &[bool]) -> Result<CudaSlice<u8>, GpuError> {
        let s = &self.gpu.flag_stream;
        if cells.is_empty() {
            s.alloc_zeros::<u8>(self.tf()).map_err(cuda)
        } else {
            s.clone_htod(bool_bytes(cells)).map_err(cuda)
        }
    }

    /// A copy of the held `src` samples of planes `first..first + k`.
    fn copy<T: cudarc::driver::DeviceRepr>(
        &self,
        src: &CudaSlice<T>,
        first: usize,
        k: usize,
    ) -> Result<CudaSlice<T>, GpuError> {
        let s = &self.gpu.flag_stream;
        let tf = self.tf();
        let mut out = unsafe { s.alloc::<T>(k * tf) }.map_err(cuda)?;
        s.memcpy_dtod(&src.slice(first * tf..(first + k) * tf), &mut out)
            .map_err(cuda)?;
        Ok(out)
    }

    /// planes.cu's apply_found: `found` (planes first..first + k) kept on the held flags
    /// of usable planes outside the cells.
    fn apply(
        &mut self,
        found: &CudaSlice<u8>,
        used: &CudaSlice<u8>,
        cells: &CudaSlice<u8>,
        first: usize,
    ) -> Result<(), GpuError> {
        let g = self.gpu;
        let tf = self.tf();
        let n = found.len();
        let mut dst = self.flags.slice_mut(first * tf..first * tf + n);
        // SAFETY: one thread a sample of the batch; used one a batch plane, cells one a cell.
        unsafe {
            launch::apply_found(
                &g.flag_stream,
                &g.planes.apply_found,
                launch::for_elems(n)?,
                &mut dst,
                found,
                used,
                cells,
                tf as i64,
                n as i64,
            )
        }
        .map_err(cuda)
    }

    /// One batch of a pass: planes first..first + k.
    fn pass_batch(
        &mut self,
        job: &PlanesPass,
        (first, k): (usize, usize),
        (d_cells, taps): (&CudaSlice<u8>, (&CudaSlice<f64>, &CudaSlice<f64>)),
        (sum, count): (&mut CudaSlice<f64>, &mut CudaSlice<i32>),
        t: &mut Phases,
    ) -> Result<(), GpuError> {
        let g = self.gpu;
        let s = &g.flag_stream;
        let (nt, nf, tf) = (self.shape.nt, self.shape.nf, self.tf());
        let n = k * tf;
        let mut d_val = self.copy(&self.amp, first, k)?;
        let d_fl = self.copy(&self.flags, first, k)?;
        let masked = if job.cells.is_empty() {
            None
        } else {
            let mut m = self.copy(&self.flags, first, k)?;
            // SAFETY: one thread a sample of the batch; cells one a cell.
            unsafe {
                launch::or_cells(
                    s,
                    &g.planes.or_cells,
                    launch::for_elems(n)?,
                    &mut m,
                    d_cells,
                    tf as i64,
                    n as i64,
                )
            }
            .map_err(cuda)?;
            Some(m)
        };
        let mask = masked.as_ref().unwrap_or(&d_fl);
        let linear = job.smoothing.linear;
        t.mark("copy");
        let bg = g.background_dev(&d_val, mask, k, nt, nf, taps, linear)?;
        t.mark("background");
        let (_sigma, used) = g.residuals_dev(&mut d_val, &bg, mask, k, tf)?;
        drop((bg, masked));
        t.mark("noise+residuals");
        self.excess(&d_val, &d_fl, &used, k, job.clip, (sum, count))?;
        t.mark("excess power");
        let Some((sched, two_sided)) = &job.sumthreshold else {
            return Ok(());
        };
        let mut d_st = unsafe { s.alloc::<f32>(n) }.map_err(cuda)?;
        g.threshold_values_dev(&d_val, d_cells, 1.0, tf, &mut d_st)?;
        let start = self.copy(&self.flags, first, k)?;
        let mut found = g.sumthreshold_dev(&d_st, start, k, nt, nf, sched)?;
        if *two_sided {
            g.threshold_values_dev(&d_val, d_cells, -1.0, tf, &mut d_st)?;
            let neg = g.sumthreshold_dev(&d_st, d_fl, k, nt, nf, sched)?;
            g.or_flags_dev(&mut found, &neg)?;
        }
        t.mark("sumthreshold");
        self.apply(&found, &used, d_cells, first)?;
        t.mark("apply");
        Ok(())
    }

    /// planes.cu's excess power of a batch of k planes' residuals, added to (sum, count).
    fn excess(
        &self,
        res: &CudaSlice<f32>,
        flags: &CudaSlice<u8>,
        used: &CudaSlice<u8>,
        k: usize,
        clip: f32,
        (sum, count): (&mut CudaSlice<f64>, &mut CudaSlice<i32>),
    ) -> Result<(), GpuError> {
        let g = self.gpu;
        let s = &g.flag_stream;
        let tf = self.tf();
        let chunks = k.div_ceil(EXCESS_CHUNK);
        let mut psum = unsafe { s.alloc::<f64>(chunks * tf) }.map_err(cuda)?;
        let mut pcount = unsafe { s.alloc::<i32>(chunks * tf) }.map_err(cuda)?;
        let clip2 = f64::from(clip).powi(2);
        let (ki, tfi, ci) = (k as i32, tf as i32, EXCESS_CHUNK as i32);
        // SAFETY: one thread a (chunk, cell); res and flags k planes of tf, used one a plane.
        unsafe {
            launch::excess_partial(
                s,
                &g.planes.excess_partial,
                launch::for_elems(chunks * tf)?,
                res,
                flags,
                used,
                ki,
                tfi,
                ci,
                clip2,
                &mut psum,
                &mut pcount,
            )
        }
        .map_err(cuda)?;
        // SAFETY: one thread a cell; psum and pcount chunks x tf, sum and count tf.
        unsafe {
            launch::excess_reduce(
                s,
                &g.planes.excess_reduce,
                launch::for_elems(tf)?,
                &psum,
                &pcount,
                chunks as i32,
                tfi,
                sum,
                count,
            )
        }
        .map_err(cuda)
    }

    /// A launch of one thread a held sample.
    fn all(&self) -> Result<cudarc::driver::LaunchConfig, GpuError> {
        launch::for_elems(self.n())
    }
}

impl FlagPlanes for DevPlanes<'_> {
    fn pass(&mut self, job: &PlanesPass) -> Result<ExcessPower, GpuError> {
        let g = self.gpu;
        let s = &g.flag_stream;
        let tf = self.tf();
        let d_cells = self.cells(job.cells)?;
        let (d_kt, d_kf) = g.taps(&job.smoothing)?;
        let mut sum = s.alloc_zeros::<f64>(tf).map_err(cuda)?;
        let mut count = s.alloc_zeros::<i32>(tf).map_err(cuda)?;
        let per_batch = self.batch(PASS_BYTES + 2);
        log::debug!(
            "held flagging pass: {} planes in batches of {}",
            self.shape.planes,
            per_batch
        );
        let mut t = Phases::start(s, "held_flag_pass");
        for first in (0..self.shape.planes).step_by(per_batch) {
            let k = per_batch.min(self.shape.planes - first);
            let bufs = (&mut sum, &mut count);
            self.pass_batch(job, (first, k), (&d_cells, (&d_kt, &d_kf)), bufs, &mut t)?;
        }
        let sum = s.clone_dtoh(&sum).map_err(cuda)?;
        let count = s.clone_dtoh(&count).map_err(cuda)?;
        t.mark("download");
        s.synchronize().map_err(cuda)?;
        t.finish();
        Ok(ExcessPower {
            sum,
            count: count.into_iter().map(|c| c as u32).collect(),
        })
    }

    fn flag_cells(&mut self, cells: &[bool]) -> Result<(), GpuError> {
        let g = self.gpu;
        let d_cells = self.cells(cells)?;
        let (tf, n, cfg) = (self.tf() as i64, self.n() as i64, self.all()?);
        // SAFETY: one thread a held sample; cells one a cell.
        unsafe {
            launch::or_cells(
                &g.flag_stream,
                &g.planes.or_cells,
                cfg,
                &mut self.flags,
                &d_cells,
                tf,
                n,
            )
        }
        .map_err(cuda)
    }

    fn sir(&mut self, cells: &[bool], eta: f64, extend: bool) -> Result<(), GpuError> {
        let g = self.gpu;
        let s = &g.flag_stream;
        let (nt, nf, tf) = (self.shape.nt, self.shape.nf, self.tf());
        if eta <= 0.0 || self.n() == 0 {
            return Ok(());
        }
        let d_cells = self.cells(cells)?;
        let per_batch = self.batch(SIR_BYTES + 1);
        for first in (0..self.shape.planes).step_by(per_batch) {
            let k = per_batch.min(self.shape.planes - first);
            let n = k * tf;
            let mut before = unsafe { s.alloc::<u8>(n) }.map_err(cuda)?;
            let held = self.flags.slice(first * tf..first * tf + n);
            // SAFETY: one thread a sample of the batch; cells one a cell.
            unsafe {
                launch::clear_cells(
                    s,
                    &g.planes.clear_cells,
                    launch::for_elems(n)?,
                    &held,
                    &d_cells,
                    tf as i64,
                    n as i64,
                    &mut before,
                )
            }
            .map_err(cuda)?;
            let dilated = g.sir_batch_dev(&before, k, nt, nf, eta, extend)?;
            drop(before);
            // SIR's flags are kept on every plane.
            let all = s.clone_htod(&vec![1u8; k]).map_err(cuda)?;
            self.apply(&dilated, &all, &d_cells, first)?;
        }
        s.synchronize().map_err(cuda)
    }

    fn counts(&mut self) -> Result<Vec<usize>, GpuError> {
        let g = self.gpu;
        let s = &g.flag_stream;
        let (tf, planes) = (self.tf(), self.shape.planes);
        let mut counts = s.alloc_zeros::<i32>(planes).map_err(cuda)?;
        // SAFETY: one thread a run of 256 samples of a plane; counts one a plane.
        unsafe {
            launch::count_planes(
                s,
                &g.planes.count_planes,
                launch::for_elems(tf.div_ceil(256) * planes)?,
                &self.flags,
                tf as i64,
                planes as i32,
                &mut counts,
            )
        }
        .map_err(cuda)?;
        let c = s.clone_dtoh(&counts).map_err(cuda)?;
        Ok(c.into_iter().map(|c| c as usize).collect())
    }

    fn flag_planes(&mut self, which: &[bool]) -> Result<(), GpuError> {
        let g = self.gpu;
        let d_which = g.flag_stream.clone_htod(bool_bytes(which)).map_err(cuda)?;
        let (tf, n, cfg) = (self.tf() as i64, self.n() as i64, self.all()?);
        // SAFETY: one thread a held sample; which one a plane.
        unsafe {
            launch::flag_planes(
                &g.flag_stream,
                &g.planes.flag_planes,
                cfg,
                &mut self.flags,
                &d_which,
                tf,
                n,
            )
        }
        .map_err(cuda)
    }

    fn clip_sample(&mut self, pol: usize, stride: usize, m: usize) -> Result<Vec<f32>, GpuError> {
        let g = self.gpu;
        let s = &g.flag_stream;
        let np = self.shape.np;
        if m == 0 || (m - 1) * stride >= self.n() / np.max(1) {
            return Err(GpuError::Cuda(format!(
                "a clip subset of {m} samples {stride} apart is longer than the planes"
            )));
        }
        let mut out = unsafe { s.alloc::<f32>(m) }.map_err(cuda)?;
        // SAFETY: one thread a subset sample, each inside the polarization's planes.
        unsafe {
            launch::clip_sample(
                s,
                &g.planes.clip_sample,
                launch::for_elems(m)?,
                &self.amp,
                &self.flags,
                pol as i32,
                np as i32,
                self.tf() as i64,
                stride as i64,
                m as i64,
                &mut out,
            )
        }
        .map_err(cuda)?;
        s.clone_dtoh(&out).map_err(cuda)
    }

    fn clip(&mut self, pol: usize, limit: f32) -> Result<(), GpuError> {
        let g = self.gpu;
        let (tf, n, cfg) = (self.tf() as i64, self.n() as i64, self.all()?);
        let np = self.shape.np as i32;
        // SAFETY: one thread a held sample.
        unsafe {
            launch::clip_above(
                &g.flag_stream,
                &g.planes.clip_above,
                cfg,
                &self.amp,
                &mut self.flags,
                pol as i32,
                np,
                tf,
                n,
                limit,
            )
        }
        .map_err(cuda)
    }

    fn flags(&mut self) -> Result<Vec<bool>, GpuError> {
        let s = &self.gpu.flag_stream;
        let f = s.clone_dtoh(&self.flags).map_err(cuda)?;
        s.synchronize().map_err(cuda)?;
        Ok(f.into_iter().map(|x| x != 0).collect())
    }
}
