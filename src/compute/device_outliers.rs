//! The outliers' fits on a group held on the device (feature `gpu`;
//! `Compute::outlier_normal`, `Compute::outlier_subtract`; kernels/outliers.cu): the
//! normal equations from the held visibilities and weights (the right side at every fit,
//! the normal matrix at the first), summed per row, then per chunk of rows in order (the
//! chunks' sums come down and are added on the host in order), and the fitted increment
//! subtracted there. Only the unit predictions' tables go up (a few
//! MB); the group's visibilities stay on the device, where before they came down and went
//! back up every major cycle.

use super::device::{cuda, Gpu};
use super::device_held::{lock, DevHeld};
use super::outlier_fit::UnitModel;
use super::{launch, GpuError, NoGpu, Resident};
use cudarc::driver::{CudaFunction, CudaSlice};
use std::sync::Arc;

/// The functions of outliers.cu.
pub(super) struct OutlierKernels {
    rows: CudaFunction,
    sum_chunks: CudaFunction,
    subtract: CudaFunction,
}

impl OutlierKernels {
    pub(super) fn load(
        load: impl Fn(&'static str, &'static str) -> Result<CudaFunction, NoGpu>,
    ) -> Result<Self, NoGpu> {
        Ok(OutlierKernels {
            rows: load("outliers.cu", "outlier_rows")?,
            sum_chunks: load("outliers.cu", "sum_row_chunks")?,
            subtract: load("outliers.cu", "outlier_subtract")?,
        })
    }
}

/// Rows a thread of sum_row_chunks adds.
const ROW_CHUNK: usize = 256;

/// A unit model's tables on the device.
pub(super) struct DevModel {
    bl_a: CudaSlice<i32>,
    bl_b: CudaSlice<i32>,
    amp: CudaSlice<f64>,
    delay: CudaSlice<f64>,
    smear: CudaSlice<f64>,
    freqs: CudaSlice<f64>,
    xs: CudaSlice<f64>,
    use_row: CudaSlice<u8>,
}

/// A digest of a unit model's tables (FNV-1a over their bits and lengths): the held
/// group's cached copy is reused only for the same tables.
fn digest(u: &UnitModel) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        for b in x.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    let m = &u.model;
    for t in [m.amp, m.delay, m.smear, m.freqs, u.xs] {
        eat(t.len() as u64);
        t.iter().for_each(|x| eat(x.to_bits()));
    }
    eat(u.nt as u64);
    eat(m.ns as u64);
    eat(m.n_ant as u64);
    for &(a, b) in u.baselines {
        eat(((a as u64) << 32) | b as u64);
    }
    u.use_row.iter().for_each(|&x| eat(u64::from(x)));
    h
}

impl Gpu {
    /// The unit model's tables on the device for the held group `h`: uploaded at its first
    /// fit and kept with it for the later ones (the same tables: the same digest).
    fn model_for(&self, h: &DevHeld, u: &UnitModel) -> Result<Arc<DevModel>, GpuError> {
        let key = digest(u);
        let mut cache = h
            .outlier_model
            .lock()
            .map_err(|_| GpuError::Cuda("the held outlier model's lock is poisoned".into()))?;
        if let Some((_, d)) = cache.as_ref().filter(|(k, _)| *k == key) {
            return Ok(d.clone());
        }
        let d = Arc::new(self.upload_model(u, h.rows, h.nchan)?);
        *cache = Some((key, d.clone()));
        Ok(d)
    }

    fn upload_model(&self, u: &UnitModel, rows: usize, nchan: usize) -> Result<DevModel, GpuError> {
        let s = &self.stream;
        let (m, nbl) = (&u.model, u.baselines.len());
        let ok = u.nt * nbl == rows
            && u.use_row.len() == rows
            && m.freqs.len() == nchan
            && u.xs.len() == nchan
            && m.amp.len() == u.nt * m.ns * nchan
            && m.delay.len() == u.nt * m.n_ant * m.ns
            && m.smear.len() == m.delay.len()
            && u.baselines.iter().all(|&(a, b)| a < m.n_ant && b < m.n_ant);
        if !ok {
            return Err(GpuError::Cuda(format!(
                "an outlier model of {} rows and {} channels for a held group of {rows} and {nchan}",
                u.nt * nbl,
                m.freqs.len()
            )));
        }
        let up = |x: &[f64]| s.clone_htod(x).map_err(cuda);
        let ants = |f: fn(&(usize, usize)) -> usize| -> Vec<i32> {
            u.baselines.iter().map(|b| f(b) as i32).collect()
        };
        let use_row: Vec<u8> = u.use_row.iter().map(|&u| u8::from(u)).collect();
        Ok(DevModel {
            bl_a: s.clone_htod(&ants(|b| b.0)).map_err(cuda)?,
            bl_b: s.clone_htod(&ants(|b| b.1)).map_err(cuda)?,
            amp: up(m.amp)?,
            delay: up(m.delay)?,
            smear: up(m.smear)?,
            freqs: up(m.freqs)?,
            xs: up(u.xs)?,
            use_row: s.clone_htod(&use_row).map_err(cuda)?,
        })
    }

    /// Compute::outlier_normal on the device: A^T W v, and with `with_ata` A^T W A (its
    /// upper triangle summed, then mirrored: k x k).
    pub(super) fn outlier_normal_dev(
        &self,
        r: &dyn Resident,
        u: &UnitModel,
        with_ata: bool,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>), GpuError> {
        let (h, m) = (self.own(r)?, &u.model);
        let d = self.model_for(h, u)?;
        let s = &self.stream;
        let k = 2 * m.ns;
        let (rows, width) = (h.rows, k + if with_ata { k * (k + 1) / 2 } else { 0 });
        let sums = if rows == 0 || k == 0 {
            vec![0.0; width]
        } else {
            let mut partial = unsafe { s.alloc::<f64>(rows * width) }.map_err(cuda)?;
            let vis = lock(&h.vis)?;
            let (nt, nc, np) = (u.nt as i32, h.nchan as i32, h.npol as i32);
            let (ns, na) = (m.ns as i32, m.n_ant as i32);
            // SAFETY: one thread a row of the held group; every table sized as checked.
            unsafe {
                launch::outlier_rows(
                    s,
                    &self.outliers.rows,
                    launch::for_elems_of("outlier_rows", rows)?,
                    &*vis,
                    &h.wt,
                    &d.use_row,
                    &d.bl_a,
                    &d.bl_b,
                    rows as i32,
                    nt,
                    nc,
                    np,
                    ns,
                    na,
                    &d.amp,
                    &d.delay,
                    &d.smear,
                    &d.freqs,
                    &d.xs,
                    i32::from(with_ata),
                    &mut partial,
                )
            }
            .map_err(cuda)?;
            drop(vis);
            self.sum_rows(&partial, rows, width)?
        };
        let ata = with_ata.then(|| {
            let mut ata = vec![0.0; k * k];
            let mut upper = sums[k..].iter();
            for i in 0..k {
                for j in i..k {
                    let x = upper.next().copied().unwrap_or(0.0);
                    ata[i * k + j] = x;
                    ata[j * k + i] = x;
                }
            }
            ata
        });
        Ok((sums[..k].to_vec(), ata))
    }

    /// The sums over rows of `partial` (rows x width): per chunk of rows in order on the
    /// device, the chunks added in order here.
    fn sum_rows(
        &self,
        partial: &CudaSlice<f64>,
        rows: usize,
        width: usize,
    ) -> Result<Vec<f64>, GpuError> {
        let s = &self.stream;
        let chunks = rows.div_ceil(ROW_CHUNK);
        let mut sums = unsafe { s.alloc::<f64>(chunks * width) }.map_err(cuda)?;
        // SAFETY: one thread a (chunk, entry) of the rows x width partial sums.
        unsafe {
            launch::sum_row_chunks(
                s,
                &self.outliers.sum_chunks,
                launch::for_elems(chunks * width)?,
                partial,
                rows as i32,
                width as i32,
                ROW_CHUNK as i32,
                &mut sums,
            )
        }
        .map_err(cuda)?;
        let sums = s.clone_dtoh(&sums).map_err(cuda)?;
        let mut total = vec![0.0; width];
        for chunk in sums.chunks(width) {
            total.iter_mut().zip(chunk).for_each(|(a, x)| *a += x);
        }
        Ok(total)
    }

    /// Compute::outlier_subtract on the device.
    pub(super) fn outlier_subtract_dev(
        &self,
        r: &dyn Resident,
        u: &UnitModel,
        delta: &[f64],
    ) -> Result<(), GpuError> {
        let (h, m) = (self.own(r)?, &u.model);
        if delta.len() != 2 * m.ns {
            return Err(GpuError::Cuda(format!(
                "{} outlier coefficients for {} sources",
                delta.len(),
                m.ns
            )));
        }
        let d = self.model_for(h, u)?;
        let s = &self.stream;
        let d_delta = s.clone_htod(delta).map_err(cuda)?;
        let mut vis = lock(&h.vis)?;
        let (nt, nc, np) = (u.nt as i32, h.nchan as i32, h.npol as i32);
        let (ns, na) = (m.ns as i32, m.n_ant as i32);
        // SAFETY: one thread a (row, channel) of the held group; tables sized as checked.
        unsafe {
            launch::outlier_subtract(
                s,
                &self.outliers.subtract,
                launch::for_elems(h.rows * h.nchan)?,
                &mut *vis,
                &d.use_row,
                &d.bl_a,
                &d.bl_b,
                h.rows as i32,
                nt,
                nc,
                np,
                ns,
                na,
                &d.amp,
                &d.delay,
                &d.smear,
                &d.freqs,
                &d.xs,
                &d_delta,
            )
        }
        .map_err(cuda)?;
        s.synchronize().map_err(cuda)
    }
}
