//! The w-stacked degridder on the device (feature `gpu`): for each w-plane the model,
//! pre-corrected and multiplied by its w-screen, transformed by cuFFT and read at every
//! item (degrid.cu), the planes' values summed in f64 and finished (conjugation, rotation)
//! on the device. A block whose items exceed the rank's GPU-memory budget is done in
//! passes of rows. Each pass's prediction either comes back to the host
//! (`degrid_wstack_dev`) or is subtracted from a held group on the device
//! (device_held::degrid_subtract_dev).

use super::device::{cuda, Gpu};
use super::device_stack::{check_support, DEGRID_ITEM_BYTES};
use super::device_timing::Phases;
use super::stack::{self, Geometry};
use super::{launch, GpuError};
use crate::compute::degridder::WUnstack;
use cudarc::cufft::sys::double2;
use cudarc::driver::CudaSlice;
use num_complex::Complex32;

impl Gpu {
    /// The degridder's items (u, v in grid pixels, w in wavelengths; row x channel) of
    /// `m` rows packed in `d_uvw`, on the main stream.
    fn degrid_items(
        &self,
        g: &Geometry,
        d_uvw: &CudaSlice<f64>,
        d_freqs: &CudaSlice<f64>,
        m: usize,
    ) -> Result<[CudaSlice<f64>; 3], GpuError> {
        let s = &self.stream;
        let (nchan, items) = (d_freqs.len(), m * d_freqs.len());
        let mut u = s.alloc_zeros::<f64>(items).map_err(cuda)?;
        let mut v = s.alloc_zeros::<f64>(items).map_err(cuda)?;
        let mut w = s.alloc_zeros::<f64>(items).map_err(cuda)?;
        let (mi, nc, ngi, sup) = (m as i32, nchan as i32, g.ng as i32, g.support as i32);
        // SAFETY: one thread an item (row x channel) of the m rows.
        unsafe {
            launch::degrid_prep(
                s,
                &self.stack.degrid_prep,
                launch::for_elems(items)?,
                d_uvw,
                d_freqs,
                mi,
                nc,
                g.scale,
                g.centre,
                g.uvmin2,
                g.uvmax2,
                ngi,
                sup,
                &mut u,
                &mut v,
                &mut w,
            )
        }
        .map_err(cuda)?;
        Ok([u, v, w])
    }

    /// The device's `WUnstack`: the model's planes transformed by cuFFT and read at every
    /// item, summed in f64 on the device, finished (conjugation, rotation) there, and
    /// brought back into `out` (row x channel).
    pub(super) fn degrid_wstack_dev(
        &self,
        job: &WUnstack,
        out: &mut [Complex32],
    ) -> Result<(), GpuError> {
        let nchan = job.b.freqs.len();
        self.unstack(job, |rows, _, d_out| {
            let host = self.stream.clone_dtoh(d_out).map_err(cuda)?;
            for (k, &r) in rows.iter().enumerate() {
                let dst = &mut out[r as usize * nchan..(r as usize + 1) * nchan];
                for (c, o) in dst.iter_mut().enumerate() {
                    let j = 2 * (k * nchan + c);
                    *o = Complex32::new(host[j], host[j + 1]);
                }
            }
            Ok(())
        })
    }

    /// The passes of a `WUnstack`, each pass's prediction (f32 pairs, its rows x the
    /// channels) handed to `sink` with the pass's rows (and their indices on the device
    /// when the block is held there). The rows' geometry comes from the held samples
    /// where the block names them, else from the block.
    pub(super) fn unstack(
        &self,
        job: &WUnstack,
        mut sink: impl FnMut(&[u32], Option<&CudaSlice<i32>>, &CudaSlice<f32>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let g = Geometry::new(job.spec);
        check_support(&g)?;
        let b = job.b;
        let (nchan, n, ng) = (b.freqs.len(), g.n, g.ng);
        let fixed = 2 * ng * ng * 16 + n * n * 8;
        // The plan first, so that its work area is counted in what the caches hold.
        self.with_fft(ng, |_| Ok(()))?;
        let budget = self.work_budget();
        if fixed + DEGRID_ITEM_BYTES * nchan > budget {
            return Err(GpuError::Cuda(format!(
                "a {ng}^2 grid does not fit this rank's GPU-memory budget"
            )));
        }
        let rows_per_pass = ((budget - fixed) / (DEGRID_ITEM_BYTES * nchan))
            .min(i32::MAX as usize / nchan)
            .max(1);
        let s = &self.stream;
        let mut t = Phases::start(s, "degrid_wstack");
        let d_pre = s.clone_htod(job.pre).map_err(cuda)?;
        let d_freqs = s.clone_htod(b.freqs).map_err(cuda)?;
        let mut plane = s.alloc_zeros::<double2>(ng * ng).map_err(cuda)?;
        let half = g.support as f64 / 2.0;
        let (ngi, ni, sup, nc) = (ng as i32, n as i32, g.support as i32, nchan as i32);
        let held = self.resident_of(b)?;
        for rows in job.planes.rows.chunks(rows_per_pass) {
            let (m, items) = (rows.len(), rows.len() * nchan);
            let (d_uvw, d_dw, d_rows) = match held {
                Some(h) => {
                    let p = self.gather_geometry(h, rows)?;
                    (p.uvw, p.dw, Some(p.idx))
                }
                None => {
                    let (mut uvw, mut dw) = (vec![0f64; 3 * m], vec![0f64; m]);
                    stack::pack_rows(b, rows, &mut [], &mut [], &mut uvw, &mut dw);
                    (
                        s.clone_htod(&uvw).map_err(cuda)?,
                        s.clone_htod(&dw).map_err(cuda)?,
                        None,
                    )
                }
            };
            let [u, v, w] = self.degrid_items(&g, &d_uvw, &d_freqs, m)?;
            let mi = m as i32;
            t.mark("upload+prep");
            let mut acc = s.alloc_zeros::<double2>(items).map_err(cuda)?;
            let mut tmp = s.alloc_zeros::<double2>(items).map_err(cuda)?;
            let mut ww = s.alloc_zeros::<f64>(items).map_err(cuda)?;
            let (i32n, i64n) = (items as i32, items as i64);
            for p in job.planes.touched(rows, g.support) {
                let wp = job.planes.w0 + p as f64 * job.planes.dw;
                let hw = job.planes.dw * half;
                s.memset_zeros(&mut plane).map_err(cuda)?;
                // SAFETY: one thread an image pixel (n x n inside the ng x ng plane).
                unsafe {
                    launch::wscreen_fill(
                        s,
                        &self.stack.wscreen_fill,
                        launch::for_elems(n * n)?,
                        &d_pre,
                        ni,
                        g.cell,
                        wp,
                        ngi,
                        &mut plane,
                    )
                }
                .map_err(cuda)?;
                t.mark("screen");
                self.with_fft(ng, |plan| self.fft_in_place(plan, &mut plane, 1))?;
                self.checker(&mut plane, ng)?;
                t.mark("fft");
                self.w_weights_dev(&w, items, (wp, hw, g.beta), &mut ww)?;
                t.mark("w weights");
                // SAFETY: one thread an item of the pass.
                unsafe {
                    launch::degrid_points(
                        s,
                        &self.degrid,
                        launch::for_elems(items)?,
                        &plane,
                        ngi,
                        &u,
                        &v,
                        &ww,
                        i32n,
                        sup,
                        g.beta,
                        &mut tmp,
                    )
                }
                .map_err(cuda)?;
                t.mark("degrid");
                // SAFETY: one thread an item of the pass.
                unsafe {
                    launch::add_to(
                        s,
                        &self.stack.add_to,
                        launch::for_elems(items)?,
                        &mut acc,
                        &tmp,
                        i64n,
                    )
                }
                .map_err(cuda)?;
                t.mark("sum");
            }
            let mut d_out = s.alloc_zeros::<f32>(2 * items).map_err(cuda)?;
            // SAFETY: one thread an item of the pass; two f32 an item out.
            unsafe {
                launch::degrid_finish(
                    s,
                    &self.stack.degrid_finish,
                    launch::for_elems(items)?,
                    &acc,
                    &d_uvw,
                    &d_dw,
                    &d_freqs,
                    mi,
                    nc,
                    &mut d_out,
                )
            }
            .map_err(cuda)?;
            t.mark("finish");
            sink(rows, d_rows.as_ref(), &d_out)?;
            t.mark("out");
        }
        t.finish();
        Ok(())
    }
}
