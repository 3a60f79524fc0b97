//! CLEAN's residual images held on the device through a Clark minor cycle (feature `gpu`;
//! `Compute::hold_images`, `kernels/residual.cu`): the images and the eligible pixels go
//! up once a minor cycle; each round's peak (one maximum a run of 1024 pixels comes down),
//! its pixel list (a count a run down, the runs' offsets up, the list down, in index order)
//! and the other terms' values at the list are found there, and the round's convolved
//! components (device_convolve, the PSFs' transforms already there) are subtracted there.
//! Before, every round's n x n convolution of every term came down for the host to
//! subtract (46 MB a term for a 2400^2 image), and the host searched the whole image.

use super::convolve::PsfHat;
use super::device::{cuda, Gpu};
use super::held_images::HeldImages;
use super::{launch, GpuError, NoGpu};
use cudarc::driver::{CudaFunction, CudaSlice};

/// Pixels a thread of residual.cu's list kernels scans (its RESIDUAL_RUN).
const RUN: usize = 1024;

/// The functions of residual.cu.
pub(super) struct ResidualKernels {
    absmax_runs: CudaFunction,
    count_above: CudaFunction,
    list_above: CudaFunction,
    gather_pixels: CudaFunction,
    subtract_image: CudaFunction,
}

impl ResidualKernels {
    pub(super) fn load(
        load: impl Fn(&'static str, &'static str) -> Result<CudaFunction, NoGpu>,
    ) -> Result<Self, NoGpu> {
        Ok(ResidualKernels {
            absmax_runs: load("residual.cu", "absmax_runs")?,
            count_above: load("residual.cu", "count_above")?,
            list_above: load("residual.cu", "list_above")?,
            gather_pixels: load("residual.cu", "gather_pixels")?,
            subtract_image: load("residual.cu", "subtract_image")?,
        })
    }
}

/// A minor cycle's residual images on the device.
pub(super) struct DevImages<'a> {
    gpu: &'a Gpu,
    images: Vec<CudaSlice<f64>>,
    mask: CudaSlice<u8>,
    n: usize,
}

impl Gpu {
    /// `Compute::hold_images` on the device: None where the images and the round's
    /// convolution grids (two complex 2n x 2n grids a term) would take more than half the
    /// work budget.
    pub(super) fn hold_images_dev(
        &self,
        images: &[Vec<f64>],
        eligible: &[bool],
        n: usize,
    ) -> Result<Option<DevImages<'_>>, GpuError> {
        let nn = n * n;
        if images.is_empty() || images.iter().any(|im| im.len() != nn) || eligible.len() != nn {
            return Ok(None);
        }
        let bytes = images.len() * (8 * nn + 2 * 16 * 4 * nn) + nn;
        if bytes > self.work_budget() / 2 {
            return Ok(None);
        }
        let s = &self.stream;
        let images = images
            .iter()
            .map(|im| s.clone_htod(im).map_err(cuda))
            .collect::<Result<Vec<_>, _>>()?;
        let mask = s
            .clone_htod(super::device::bool_bytes(eligible))
            .map_err(cuda)?;
        Ok(Some(DevImages {
            gpu: self,
            images,
            mask,
            n,
        }))
    }
}

impl DevImages<'_> {
    fn len(&self) -> (usize, usize) {
        let nn = self.n * self.n;
        (nn, nn.div_ceil(RUN))
    }
}

impl HeldImages for DevImages<'_> {
    fn peak(&mut self) -> Result<f64, GpuError> {
        let (nn, runs) = self.len();
        let (g, s) = (self.gpu, &self.gpu.stream);
        let mut partial = s.alloc_zeros::<f64>(runs).map_err(cuda)?;
        // SAFETY: one thread a run of RUN pixels of the nn both hold; `partial` one a run.
        unsafe {
            launch::absmax_runs(
                s,
                &g.residual.absmax_runs,
                launch::for_elems(runs)?,
                &self.images[0],
                &self.mask,
                nn as i64,
                &mut partial,
            )
        }
        .map_err(cuda)?;
        let host = s.clone_dtoh(&partial).map_err(cuda)?;
        Ok(host.into_iter().fold(0.0, f64::max))
    }

    fn above(&mut self, limit: f64) -> Result<Vec<(u32, f64)>, GpuError> {
        let (nn, runs) = self.len();
        let (g, s) = (self.gpu, &self.gpu.stream);
        let mut counts = s.alloc_zeros::<i32>(runs).map_err(cuda)?;
        // SAFETY: as in `peak`; `counts` one a run.
        unsafe {
            launch::count_above(
                s,
                &g.residual.count_above,
                launch::for_elems(runs)?,
                &self.images[0],
                &self.mask,
                nn as i64,
                limit,
                &mut counts,
            )
        }
        .map_err(cuda)?;
        let counts = s.clone_dtoh(&counts).map_err(cuda)?;
        let mut offsets = Vec::with_capacity(runs);
        let mut total = 0i64;
        for c in counts {
            offsets.push(total);
            total += c as i64;
        }
        if total == 0 {
            return Ok(Vec::new());
        }
        let total = total as usize;
        let d_off = s.clone_htod(&offsets).map_err(cuda)?;
        let mut idx = s.alloc_zeros::<i32>(total).map_err(cuda)?;
        let mut val = s.alloc_zeros::<f64>(total).map_err(cuda)?;
        // SAFETY: as in `peak`; run k writes its counts[k] entries from offsets[k], all
        // within the `total` both lists hold.
        unsafe {
            launch::list_above(
                s,
                &g.residual.list_above,
                launch::for_elems(runs)?,
                &self.images[0],
                &self.mask,
                nn as i64,
                limit,
                &d_off,
                &mut idx,
                &mut val,
            )
        }
        .map_err(cuda)?;
        let idx = s.clone_dtoh(&idx).map_err(cuda)?;
        let val = s.clone_dtoh(&val).map_err(cuda)?;
        Ok(idx.into_iter().map(|i| i as u32).zip(val).collect())
    }

    fn values(&mut self, t: usize, idx: &[u32]) -> Result<Vec<f64>, GpuError> {
        if idx.is_empty() {
            return Ok(Vec::new());
        }
        let (g, s) = (self.gpu, &self.gpu.stream);
        let image = self
            .images
            .get(t)
            .ok_or_else(|| GpuError::Cuda(format!("no term {t} held")))?;
        let i32s: Vec<i32> = idx.iter().map(|&i| i as i32).collect();
        let d_idx = s.clone_htod(&i32s).map_err(cuda)?;
        let mut out = s.alloc_zeros::<f64>(idx.len()).map_err(cuda)?;
        // SAFETY: one thread a listed pixel, each an index below nn.
        unsafe {
            launch::gather_pixels(
                s,
                &g.residual.gather_pixels,
                launch::for_elems(idx.len())?,
                image,
                &d_idx,
                idx.len() as i32,
                &mut out,
            )
        }
        .map_err(cuda)?;
        s.clone_dtoh(&out).map_err(cuda)
    }

    fn subtract(&mut self, comps: &[Vec<(usize, f64)>], hats: &[&PsfHat]) -> Result<(), GpuError> {
        let (nn, _) = self.len();
        let (g, n) = (self.gpu, self.n);
        if comps.len() != self.images.len() {
            return Err(GpuError::Cuda(format!(
                "{} terms of components for {} held images",
                comps.len(),
                self.images.len()
            )));
        }
        let images = &mut self.images;
        g.convolve_dev_each(comps, hats, n, |tp, img| {
            // SAFETY: one thread a pixel of the nn both hold.
            unsafe {
                launch::subtract_image(
                    &g.stream,
                    &g.residual.subtract_image,
                    launch::for_elems(nn)?,
                    &mut images[tp],
                    img,
                    nn as i64,
                )
            }
            .map_err(cuda)
        })
    }

    fn fetch(&mut self, out: &mut [Vec<f64>]) -> Result<(), GpuError> {
        let s = &self.gpu.stream;
        for (d, h) in self.images.iter().zip(out.iter_mut()) {
            s.memcpy_dtoh(d, h.as_mut_slice()).map_err(cuda)?;
        }
        s.synchronize().map_err(cuda)
    }
}
