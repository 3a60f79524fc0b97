//! A group held in device memory for CLEAN's major cycles (feature `gpu`;
//! `Compute::hold`): its visibilities, weights and geometry copied up once, then read there
//! by every gridding (each pass's rows gathered on the device, kernels/held.cu, instead of
//! packed on the host and copied up) and degridding, and every major cycle's prediction
//! subtracted there. Nothing of the group crosses the bus again until the caller fetches
//! its visibilities.
//!
//! The held copy counts against the rank's imaging budget (`Gpu::held_bytes`) and takes at
//! most half of what the budget leaves free when it is made: the passes that read it keep
//! the rest. A copy the group reader makes ahead of the image loop (`Compute::hold_ahead`,
//! on the flagger's stream, while the loop's passes for the previous group run) counts
//! against the flagger's budget instead, the reader's own, until the loop adopts it
//! (`Compute::adopt`, between its passes): a pass already sized to the imaging budget
//! never finds less room than it counted on.

use super::device::{as_f32, as_f32_ref, cuda, Gpu};
use super::device_stack::{DevItems, PrepInputs, SliceRows, STAGE_BYTES};
use super::stack::Geometry;
use super::{launch, GpuError, NoGpu, Resident};
use crate::compute::degridder::{WUnstack, Weights};
use crate::compute::gridder::{VisBlock, WStack};
use cudarc::driver::{CudaFunction, CudaSlice, CudaView};
use num_complex::Complex32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The functions of held.cu.
pub(super) struct HeldKernels {
    gather_f32: CudaFunction,
    gather_f64: CudaFunction,
    subtract_rows: CudaFunction,
    zero_column: CudaFunction,
}

impl HeldKernels {
    pub(super) fn load(
        load: impl Fn(&'static str, &'static str) -> Result<CudaFunction, NoGpu>,
    ) -> Result<Self, NoGpu> {
        Ok(HeldKernels {
            gather_f32: load("held.cu", "gather_f32")?,
            gather_f64: load("held.cu", "gather_f64")?,
            subtract_rows: load("held.cu", "subtract_rows")?,
            zero_column: load("held.cu", "zero_column")?,
        })
    }
}

/// A block's samples on the device (all its rows, in its own order).
pub(super) struct DevHeld {
    /// Row x channel x polarization, interleaved (re, im); predictions are subtracted here.
    pub(super) vis: Mutex<CudaSlice<f32>>,
    pub(super) wt: CudaSlice<f32>,
    /// Per row (u, v, w) in metres, and dw.
    uvw: CudaSlice<f64>,
    dw: CudaSlice<f64>,
    /// Ones a row and a channel: the weights of a prediction that has none.
    ones_row: CudaSlice<f32>,
    ones_chan: CudaSlice<f32>,
    pub(super) rows: usize,
    pub(super) nchan: usize,
    pub(super) npol: usize,
    bytes: usize,
    /// The count of held bytes of the backend that made it (`Gpu::resident_bytes`), which
    /// it leaves when dropped; also how a backend knows its own.
    count: Arc<AtomicUsize>,
    /// The backend's count of bytes held ahead (`Gpu::ahead_bytes`), and whether this copy
    /// is still counted there (held ahead, not yet adopted) rather than in `count`.
    ahead_count: Arc<AtomicUsize>,
    ahead: AtomicBool,
    /// The outliers' unit-model tables, uploaded at the first fit and kept for the later
    /// ones (device_outliers; a few MB), with the digest of the tables they hold.
    pub(super) outlier_model: Mutex<Option<(u64, Arc<super::device_outliers::DevModel>)>>,
}

impl Drop for DevHeld {
    fn drop(&mut self) {
        if *self.ahead.get_mut() {
            self.ahead_count.fetch_sub(self.bytes, Ordering::Relaxed);
        } else {
            self.count.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

impl Resident for DevHeld {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A pass's rows of a held group on the device: (u, v, w) and dw packed, and the rows'
/// indices.
pub(super) struct PassGeometry {
    pub(super) uvw: CudaSlice<f64>,
    pub(super) dw: CudaSlice<f64>,
    pub(super) idx: CudaSlice<i32>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, GpuError> {
    m.lock()
        .map_err(|_| GpuError::Cuda("a held group's lock was poisoned".into()))
}

impl Gpu {
    /// The device copy `r` names, if this backend made it.
    pub(super) fn own<'a>(&self, r: &'a dyn Resident) -> Result<&'a DevHeld, GpuError> {
        r.as_any()
            .downcast_ref::<DevHeld>()
            .filter(|h| Arc::ptr_eq(&h.count, &self.resident_bytes))
            .ok_or_else(|| GpuError::Cuda("samples held by another backend".into()))
    }

    /// The device copy of `b`'s samples when the block names one (Err when it names one
    /// this backend cannot read for it: `b.vis` may not be current).
    pub(super) fn resident_of<'a>(
        &self,
        b: &VisBlock<'a>,
    ) -> Result<Option<&'a DevHeld>, GpuError> {
        let Some(r) = b.resident else {
            return Ok(None);
        };
        let h = self.own(r)?;
        if (h.rows, h.nchan, h.npol) != (b.uvw_m.len(), b.freqs.len(), b.npol) {
            return Err(GpuError::Cuda(format!(
                "a held group of {} rows x {} channels x {} polarizations named by a block of {} x {} x {}",
                h.rows,
                h.nchan,
                h.npol,
                b.uvw_m.len(),
                b.freqs.len(),
                b.npol
            )));
        }
        Ok(Some(h))
    }

    /// `Compute::hold` on the device (`ahead`: `Compute::hold_ahead`, from the group
    /// reader's thread on the flagger's stream, counted against the flagger's room).
    pub(super) fn hold_dev(
        &self,
        b: &VisBlock,
        ahead: bool,
    ) -> Result<Option<Box<dyn Resident>>, GpuError> {
        let (rows, nchan, npol) = (b.uvw_m.len(), b.freqs.len(), b.npol);
        let n = rows * nchan * npol;
        if n == 0 || b.vis.len() != n || b.weight.len() != n || b.dw_m.len() != rows {
            return Ok(None);
        }
        let bytes = 12 * n + 36 * rows + 4 * nchan;
        let (free, s, count) = if ahead {
            (self.flag_room(), &self.flag_stream, &self.ahead_bytes)
        } else {
            (self.work_budget(), &self.stream, &self.resident_bytes)
        };
        if bytes > free / 2 {
            log::debug!(
                "a group of {:.2} GB is not held on the device{} ({:.2} GB of the {} free)",
                bytes as f64 / 1e9,
                if ahead {
                    " ahead of the image loop"
                } else {
                    ""
                },
                free as f64 / 1e9,
                if ahead { "flagger's budget" } else { "budget" }
            );
            return Ok(None);
        }
        let h = DevHeld {
            vis: Mutex::new(s.clone_htod(as_f32_ref(b.vis)).map_err(cuda)?),
            wt: s.clone_htod(b.weight).map_err(cuda)?,
            uvw: s.clone_htod(b.uvw_m.as_flattened()).map_err(cuda)?,
            dw: s.clone_htod(b.dw_m).map_err(cuda)?,
            ones_row: s.clone_htod(&vec![1f32; rows]).map_err(cuda)?,
            ones_chan: s.clone_htod(&vec![1f32; nchan]).map_err(cuda)?,
            rows,
            nchan,
            npol,
            bytes,
            count: self.resident_bytes.clone(),
            ahead_count: self.ahead_bytes.clone(),
            ahead: AtomicBool::new(ahead),
            outlier_model: Mutex::new(None),
        };
        // Counted before anything can fail: dropping `h` takes the bytes off again.
        count.fetch_add(bytes, Ordering::Relaxed);
        // Complete before the copy is handed on (another thread's stream reads it next).
        s.synchronize().map_err(cuda)?;
        Ok(Some(Box::new(h)))
    }

    /// `Compute::adopt` on the device: a copy held ahead counts against the imaging
    /// budget from now on (added there before it leaves the flagger's count).
    pub(super) fn adopt_dev(&self, r: &dyn Resident) {
        if let Ok(h) = self.own(r) {
            if h.ahead.swap(false, Ordering::AcqRel) {
                self.resident_bytes.fetch_add(h.bytes, Ordering::Relaxed);
                self.ahead_bytes.fetch_sub(h.bytes, Ordering::Relaxed);
            }
        }
    }

    /// `Compute::fetch_resident` on the device.
    pub(super) fn fetch_dev(
        &self,
        r: &dyn Resident,
        vis: &mut [Complex32],
    ) -> Result<(), GpuError> {
        let h = self.own(r)?;
        let d = lock(&h.vis)?;
        if 2 * vis.len() != d.len() {
            return Err(GpuError::Cuda(format!(
                "{} visibilities to fetch, {} held",
                vis.len(),
                d.len() / 2
            )));
        }
        self.stream.memcpy_dtoh(&*d, as_f32(vis)).map_err(cuda)?;
        self.stream.synchronize().map_err(cuda)
    }

    /// held.cu's gather_f32: `m` rows of `stride` elements from `src` at the indices
    /// `idx` into `dst`, on the main stream.
    fn gather32(
        &self,
        src: &CudaSlice<f32>,
        idx: &CudaView<i32>,
        (m, stride): (usize, usize),
        dst: &mut CudaSlice<f32>,
    ) -> Result<(), GpuError> {
        let (k, cfg) = (&self.held.gather_f32, launch::for_elems(m * stride)?);
        let s = &self.stream;
        // SAFETY: one thread an element of the m x stride gathered; every index < rows.
        unsafe { launch::gather_f32(s, k, cfg, src, idx, m as i32, stride as i32, dst) }
            .map_err(cuda)
    }

    /// `gather32` of f64 elements (held.cu's gather_f64).
    fn gather64(
        &self,
        src: &CudaSlice<f64>,
        idx: &CudaView<i32>,
        (m, stride): (usize, usize),
        dst: &mut CudaSlice<f64>,
    ) -> Result<(), GpuError> {
        let (k, cfg) = (&self.held.gather_f64, launch::for_elems(m * stride)?);
        let s = &self.stream;
        // SAFETY: one thread an element of the m x stride gathered; every index < rows.
        unsafe { launch::gather_f64(s, k, cfg, src, idx, m as i32, stride as i32, dst) }
            .map_err(cuda)
    }

    /// The row indices of a pass on the device.
    fn row_indices(&self, rows: &[u32]) -> Result<CudaSlice<i32>, GpuError> {
        let idx: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        self.stream.clone_htod(&idx).map_err(cuda)
    }

    /// The gridder's items of `rows` of the held group: each slice of rows gathered on the
    /// device and prepared (as `upload_and_prepare` does for rows copied up).
    pub(super) fn gather_and_prepare(
        &self,
        job: &WStack,
        h: &DevHeld,
        rows: &[u32],
        g: &Geometry,
        counts: &mut CudaSlice<i32>,
        keys: &mut CudaSlice<i32>,
    ) -> Result<DevItems, GpuError> {
        let stride = h.nchan * h.npol;
        let s = &self.stream;
        let mut it = DevItems::zeros(s, rows.len() * h.nchan)?;
        let inputs = PrepInputs::new(s, job)?;
        let slice_rows = (STAGE_BYTES / (12 * stride + 32)).clamp(1, rows.len().max(1));
        let mut vis = s
            .alloc_zeros::<f32>(2 * slice_rows * stride)
            .map_err(cuda)?;
        let mut wt = s.alloc_zeros::<f32>(slice_rows * stride).map_err(cuda)?;
        let mut uvw = s.alloc_zeros::<f64>(3 * slice_rows).map_err(cuda)?;
        let mut dw = s.alloc_zeros::<f64>(slice_rows).map_err(cuda)?;
        let idx = self.row_indices(rows)?;
        let held_vis = lock(&h.vis)?;
        for (k, part) in rows.chunks(slice_rows).enumerate() {
            let (m, first) = (part.len(), k * slice_rows);
            let at = idx.slice(first..first + m);
            self.gather32(&held_vis, &at, (m, 2 * stride), &mut vis)?;
            self.gather32(&h.wt, &at, (m, stride), &mut wt)?;
            self.gather64(&h.uvw, &at, (m, 3), &mut uvw)?;
            self.gather64(&h.dw, &at, (m, 1), &mut dw)?;
            if !job.spec.w_terms {
                // A grid without the w-term (the PSFs'): the rows' w = 0, as the block's.
                let cfg = launch::for_elems(m)?;
                // SAFETY: one thread a row of the m packed (u, v, w) rows.
                unsafe {
                    launch::zero_column(s, &self.held.zero_column, cfg, &mut uvw, m as i32, 3, 2)
                }
                .map_err(cuda)?;
            }
            let src = SliceRows {
                vis: &vis,
                wt: &wt,
                uvw: &uvw,
                dw: &dw,
            };
            let out0 = (first * h.nchan) as i64;
            self.grid_prep_slice(s, &src, m, h.npol, g, &inputs, out0, &mut it, keys, counts)?;
        }
        Ok(it)
    }

    /// The (uvw, dw) of `rows` of the held group, packed, and the rows' indices.
    pub(super) fn gather_geometry(
        &self,
        h: &DevHeld,
        rows: &[u32],
    ) -> Result<PassGeometry, GpuError> {
        let s = &self.stream;
        let m = rows.len();
        let idx = self.row_indices(rows)?;
        let mut uvw = s.alloc_zeros::<f64>(3 * m).map_err(cuda)?;
        let mut dw = s.alloc_zeros::<f64>(m).map_err(cuda)?;
        let all = idx.slice(..);
        self.gather64(&h.uvw, &all, (m, 3), &mut uvw)?;
        self.gather64(&h.dw, &all, (m, 1), &mut dw)?;
        Ok(PassGeometry { uvw, dw, idx })
    }

    /// held.cu's subtract_rows: `scale * wrow[r] * wchan[c] * pred` of `m` rows at `idx`
    /// off the held visibilities.
    fn subtract_rows(
        &self,
        h: &DevHeld,
        pred: &impl launch::DevRead<f32>,
        idx: &impl launch::DevRead<i32>,
        m: usize,
        (wrow, wchan): (&CudaSlice<f32>, &CudaSlice<f32>),
        scale: f32,
    ) -> Result<(), GpuError> {
        let mut vis = lock(&h.vis)?;
        let (mi, nc, np) = (m as i32, h.nchan as i32, h.npol as i32);
        // SAFETY: one thread an item (row of idx, channel) of the m rows; the held
        // visibilities hold every row idx names, wrow one value a held row.
        unsafe {
            launch::subtract_rows(
                &self.stream,
                &self.held.subtract_rows,
                launch::for_elems(m * h.nchan)?,
                &mut *vis,
                pred,
                idx,
                wrow,
                wchan,
                mi,
                nc,
                np,
                scale,
            )
        }
        .map_err(cuda)
    }

    /// A prediction's per-row or per-channel weights on the device (None: the held
    /// group's ones).
    fn weights_dev(&self, w: Option<&[f32]>, n: usize) -> Result<Option<CudaSlice<f32>>, GpuError> {
        match w {
            None => Ok(None),
            Some(v) if v.len() == n => self.stream.clone_htod(v).map(Some).map_err(cuda),
            Some(v) => Err(GpuError::Cuda(format!(
                "{} weights for {n} values",
                v.len()
            ))),
        }
    }

    /// `Compute::degrid_subtract` on the device: each job's passes (device_unstack)
    /// subtracted from the held visibilities as they come.
    pub(super) fn degrid_subtract_dev(
        &self,
        r: &dyn Resident,
        jobs: &[WUnstack],
        weights: &[Weights],
        scale: f32,
    ) -> Result<(), GpuError> {
        let h = self.own(r)?;
        for (job, w) in jobs.iter().zip(weights) {
            if !self.resident_of(job.b)?.is_some_and(|x| std::ptr::eq(x, h)) {
                return Err(GpuError::Cuda(
                    "a prediction to subtract from a held group whose block does not name it"
                        .into(),
                ));
            }
            let (wrow, wchan) = (
                self.weights_dev(w.row, h.rows)?,
                self.weights_dev(w.chan, h.nchan)?,
            );
            let weights = (
                wrow.as_ref().unwrap_or(&h.ones_row),
                wchan.as_ref().unwrap_or(&h.ones_chan),
            );
            self.unstack(job, |rows, idx, pred| {
                let idx = idx.ok_or_else(|| GpuError::Cuda("a held pass without rows".into()))?;
                self.subtract_rows(h, pred, idx, rows.len(), weights, scale)
            })?;
        }
        self.stream.synchronize().map_err(cuda)
    }

    /// A prediction of the held group's rows `rows` (f32 pairs, row x channel) on the
    /// device subtracted from every polarization of them.
    pub(super) fn subtract_predicted_rows(
        &self,
        r: &dyn Resident,
        rows: std::ops::Range<usize>,
        pred: &CudaSlice<f32>,
    ) -> Result<(), GpuError> {
        let h = self.own(r)?;
        let m = rows.len();
        if rows.end > h.rows || pred.len() != 2 * m * h.nchan {
            return Err(GpuError::Cuda(format!(
                "a prediction of {} values for rows {rows:?} of a held group of {} rows x {} channels",
                pred.len() / 2,
                h.rows,
                h.nchan
            )));
        }
        let idx: Vec<u32> = (rows.start as u32..rows.end as u32).collect();
        let idx = self.row_indices(&idx)?;
        self.subtract_rows(h, pred, &idx, m, (&h.ones_row, &h.ones_chan), 1.0)
    }
}

#[cfg(test)]
mod tests {
    use crate::compute::device::tests::device_with;
    use crate::compute::gridder::VisBlock;
    use crate::compute::Compute;
    use num_complex::Complex32;

    /// A copy the reader holds ahead counts against the flagger's room and not the imaging
    /// budget (a pass of the loop sized before it keeps its room), then, adopted, against
    /// the budget alone (once, however often adopted); dropped, against neither. Its
    /// samples are the block's. A group too large for half the flagger's room is not held
    /// ahead, though the loop may still hold it.
    #[test]
    fn a_group_held_ahead_counts_against_the_flaggers_room_until_adopted() {
        // A share of 4 MiB: 3 for imaging, 1 for the flagger.
        let Some(g) = device_with(4.0 / 1024.0) else {
            return;
        };
        let block = |rows: usize, nchan: usize| {
            let n = rows * nchan;
            let vis: Vec<Complex32> = (0..n)
                .map(|i| Complex32::new(i as f32, -0.5 * i as f32))
                .collect();
            let weight: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32).collect();
            let uvw: Vec<[f64; 3]> = (0..rows).map(|r| [r as f64, 2.0, 0.5]).collect();
            (vis, weight, uvw, vec![0.0; rows], vec![1.4e9; nchan])
        };
        let (vis, weight, uvw, dw, freqs) = block(100, 64);
        let use_row = vec![true; 100];
        let b = VisBlock {
            freqs: &freqs,
            npol: 1,
            uvw_m: &uvw,
            dw_m: &dw,
            vis: &vis,
            weight: &weight,
            use_row: &use_row,
            workspace: None,
            resident: None,
        };
        let bytes = 12 * 6400 + 36 * 100 + 4 * 64;
        let (work, room) = (g.work_budget(), g.flag_room());
        let r = g.hold_ahead(&b).unwrap().expect("room for it ahead");
        assert_eq!((g.work_budget(), g.flag_room()), (work, room - bytes));
        let mut back = vec![Complex32::default(); vis.len()];
        g.fetch_resident(r.as_ref(), &mut back).unwrap();
        assert_eq!(back, vis);
        for _ in 0..2 {
            g.adopt(r.as_ref());
            assert_eq!((g.work_budget(), g.flag_room()), (work - bytes, room));
        }
        drop(r);
        assert_eq!((g.work_budget(), g.flag_room()), (work, room));
        // Let go before the loop took it: the room comes back.
        drop(g.hold_ahead(&b).unwrap().expect("room for it ahead"));
        assert_eq!((g.work_budget(), g.flag_room()), (work, room));
        // 12 bytes x 50,000 samples: more than half the flagger's 1 MiB, less than half
        // the 3 MiB for imaging.
        let (vis, weight, uvw, dw, freqs) = block(500, 100);
        let use_row = vec![true; 500];
        let big = VisBlock {
            freqs: &freqs,
            uvw_m: &uvw,
            dw_m: &dw,
            vis: &vis,
            weight: &weight,
            use_row: &use_row,
            ..b
        };
        assert!(g.hold_ahead(&big).unwrap().is_none());
        assert_eq!(g.flag_room(), room);
        assert!(g.hold(&big).unwrap().is_some());
    }
}
