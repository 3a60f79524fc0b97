//! CLEAN's round convolution on the device (feature `gpu`): the components placed on the
//! PSFs' 2n grid, centred transforms by cuFFT, the products with the PSFs' transforms
//! summed over terms (`kernels/convolve.cu`); only the n x n images a round subtracts come
//! back. The PSFs' transforms stay on the device between rounds and major cycles, cached by
//! PsfHat id: the current image's 2T - 1 PSFs only (8 bytes a cell of the 2n grid each,
//! 184 MB for a 2400^2 image), the previous image's freed when the next one's first round
//! comes.

use super::convolve::PsfHat;
use super::device::{cuda, Gpu};
use super::{launch, GpuError, NoGpu};
use cudarc::cufft::sys::double2;
use cudarc::driver::{CudaFunction, CudaSlice};

pub(super) struct ConvolveKernels {
    place: CudaFunction,
    multiply_accumulate: CudaFunction,
    centre_real: CudaFunction,
    real_to_complex: CudaFunction,
    narrow_complex: CudaFunction,
}

impl ConvolveKernels {
    pub(super) fn load(
        load: &impl Fn(&'static str, &'static str) -> Result<CudaFunction, NoGpu>,
    ) -> Result<Self, NoGpu> {
        Ok(ConvolveKernels {
            place: load("convolve.cu", "place_components")?,
            multiply_accumulate: load("convolve.cu", "multiply_accumulate")?,
            centre_real: load("convolve.cu", "centre_real")?,
            real_to_complex: load("convolve.cu", "real_to_complex")?,
            narrow_complex: load("convolve.cu", "narrow_complex")?,
        })
    }
}

/// PSF transforms on the device by PsfHat id (interleaved f32).
pub(crate) type PsfCache = Vec<(u64, CudaSlice<f32>)>;

/// The most transforms the cache holds: one image's 2T - 1 PSFs, T <= 3.
const PSF_CACHE_MAX: usize = 5;

impl Gpu {
    /// Compute::psf_hat on the device: the PSF uploaded, transformed by cuFFT and narrowed
    /// to f32 there; the transform stays in the cache under the new PsfHat's id (the
    /// round convolutions need no upload) and comes back for the host's copy.
    pub(super) fn psf_hat_dev(&self, psf: &[f64], m: usize) -> Result<PsfHat, GpuError> {
        if psf.len() != m * m || !m.is_multiple_of(2) {
            return Err(GpuError::Cuda(format!(
                "PSF transform: {} values for an even {m} x {m} grid",
                psf.len()
            )));
        }
        let s = &self.stream;
        let mm = m * m;
        let len = mm as i64;
        let d_psf = s.clone_htod(psf).map_err(cuda)?;
        let mut g = s.alloc_zeros::<double2>(mm).map_err(cuda)?;
        // SAFETY: one thread a pixel of the m x m both hold.
        unsafe {
            launch::real_to_complex(
                s,
                &self.convolve.real_to_complex,
                launch::for_elems(mm)?,
                &mut g,
                &d_psf,
                len,
            )
        }
        .map_err(cuda)?;
        drop(d_psf);
        self.centred_fft_in_place(&mut g, m, -1)?;
        let mut narrow = s.alloc_zeros::<f32>(2 * mm).map_err(cuda)?;
        // SAFETY: one thread a pixel; `narrow` holds two f32 a pixel.
        unsafe {
            launch::narrow_complex(
                s,
                &self.convolve.narrow_complex,
                launch::for_elems(mm)?,
                &mut narrow,
                &g,
                len,
            )
        }
        .map_err(cuda)?;
        drop(g);
        let flat = s.clone_dtoh(&narrow).map_err(cuda)?;
        let hat = PsfHat::from_transform(
            flat.chunks_exact(2)
                .map(|c| num_complex::Complex32::new(c[0], c[1]))
                .collect(),
            m,
        );
        let mut cache = self
            .psf_cache
            .lock()
            .map_err(|_| GpuError::Cuda("PSF cache poisoned".into()))?;
        while cache.len() >= PSF_CACHE_MAX {
            cache.remove(0);
        }
        cache.push((hat.id(), narrow));
        Ok(hat)
    }

    /// Compute::convolve_components on the device.
    pub(super) fn convolve_dev(
        &self,
        comps: &[Vec<(usize, f64)>],
        hats: &[&PsfHat],
        n: usize,
    ) -> Result<Vec<Vec<f64>>, GpuError> {
        let mut out = Vec::with_capacity(comps.len());
        self.convolve_dev_each(comps, hats, n, |_, img| {
            out.push(self.stream.clone_dtoh(img).map_err(cuda)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The round convolution on the device, each residual term's n x n image handed to
    /// `sink` (term, image on the device) as it is made.
    pub(super) fn convolve_dev_each(
        &self,
        comps: &[Vec<(usize, f64)>],
        hats: &[&PsfHat],
        n: usize,
        mut sink: impl FnMut(usize, &CudaSlice<f64>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let nt = comps.len();
        let m = 2 * n;
        if nt == 0 || hats.len() + 1 < 2 * nt || hats.iter().any(|h| h.m != m) {
            return Err(GpuError::Cuda(format!(
                "convolution: {nt} terms, {} PSF transforms, not all {m} x {m}",
                hats.len()
            )));
        }
        let s = &self.stream;
        let mut cache = self
            .psf_cache
            .lock()
            .map_err(|_| GpuError::Cuda("PSF cache poisoned".into()))?;
        let wanted: Vec<u64> = hats[..2 * nt - 1].iter().map(|h| h.id()).collect();
        // Only this image's PSFs stay (an earlier image's are freed before any upload).
        cache.retain(|c| wanted.contains(&c.0));
        for h in &hats[..2 * nt - 1] {
            if cache.iter().any(|c| c.0 == h.id()) {
                continue;
            }
            // SAFETY: Complex32 is repr(C) { re: f32, im: f32 }.
            let flat = unsafe {
                std::slice::from_raw_parts(h.hat.as_ptr().cast::<f32>(), 2 * h.hat.len())
            };
            cache.push((h.id(), s.clone_htod(flat).map_err(cuda)?));
        }
        let psf = |id: u64| -> &CudaSlice<f32> {
            &cache.iter().find(|c| c.0 == id).expect("cached above").1
        };
        let (mm, mi, ni) = (m * m, m as i32, n as i32);
        let mut comp_hats = Vec::with_capacity(nt);
        for cs in comps {
            let mut g = s.alloc_zeros::<double2>(mm).map_err(cuda)?;
            if !cs.is_empty() {
                let idx: Vec<i64> = cs.iter().map(|c| c.0 as i64).collect();
                let flux: Vec<f64> = cs.iter().map(|c| c.1).collect();
                let (d_idx, d_flux) = (
                    s.clone_htod(&idx).map_err(cuda)?,
                    s.clone_htod(&flux).map_err(cuda)?,
                );
                let count = cs.len() as i32;
                // SAFETY: one thread a component of the `count` both lists hold.
                unsafe {
                    launch::place_components(
                        s,
                        &self.convolve.place,
                        launch::for_elems(cs.len())?,
                        &mut g,
                        mi,
                        ni,
                        &d_idx,
                        &d_flux,
                        count,
                    )
                }
                .map_err(cuda)?;
            }
            self.centred_fft_in_place(&mut g, m, -1)?;
            comp_hats.push(g);
        }
        let mut acc = s.alloc_zeros::<double2>(mm).map_err(cuda)?;
        let mut img = s.alloc_zeros::<f64>(n * n).map_err(cuda)?;
        let (len, scale) = (mm as i64, 1.0 / mm as f64);
        for tp in 0..nt {
            s.memset_zeros(&mut acc).map_err(cuda)?;
            for (t, h) in comp_hats.iter().enumerate() {
                // SAFETY: one thread a pixel of the m x m all three hold.
                unsafe {
                    launch::multiply_accumulate(
                        s,
                        &self.convolve.multiply_accumulate,
                        launch::for_elems(mm)?,
                        &mut acc,
                        h,
                        psf(wanted[t + tp]),
                        len,
                    )
                }
                .map_err(cuda)?;
            }
            self.centred_fft_in_place(&mut acc, m, 1)?;
            // SAFETY: one thread an output pixel of the n x n centre of the m x m grid.
            unsafe {
                launch::centre_real(
                    s,
                    &self.convolve.centre_real,
                    launch::for_elems(n * n)?,
                    &acc,
                    mi,
                    ni,
                    scale,
                    &mut img,
                )
            }
            .map_err(cuda)?;
            sink(tp, &img)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::compute::convolve::{convolve_cpu, PsfHat};
    use crate::compute::device::tests::device;
    use crate::compute::Compute;

    /// Two spectral terms on a 48 x 48 image: the device's convolution against the CPU's
    /// (the same f32 PSF transforms; cuFFT's rounding against rustfft's).
    #[test]
    fn convolution_matches_the_cpu() {
        let Some(g) = device() else { return };
        let n = 48;
        let m = 2 * n;
        let psfs: Vec<PsfHat> = (0..3)
            .map(|k| {
                let psf: Vec<f64> = (0..m * m)
                    .map(|i| ((i * (k + 3)) as f64 * 0.013).sin() / (1.0 + k as f64))
                    .collect();
                PsfHat::new(&psf, m)
            })
            .collect();
        let hats: Vec<&PsfHat> = psfs.iter().collect();
        let comps: Vec<Vec<(usize, f64)>> = (0..2)
            .map(|t| {
                (0..70)
                    .map(|k| ((k * 41 + 7 * t + 3) % (n * n), 0.1 * ((k + t) as f64).cos()))
                    .collect()
            })
            .collect();
        for terms in [1, 2] {
            let cpu = convolve_cpu(&comps[..terms], &hats, n);
            // Twice: the second call finds the transforms cached.
            for _ in 0..2 {
                let dev = g.convolve_components(&comps[..terms], &hats, n).unwrap();
                for (d, c) in dev.iter().zip(&cpu) {
                    let err = d
                        .iter()
                        .zip(c)
                        .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
                    let peak = c.iter().fold(0.0f64, |a, x| a.max(x.abs()));
                    assert!(err < 1e-10 * peak, "{terms} terms: {err} of {peak}");
                    assert!(peak > 1e-2);
                }
            }
        }
    }

    /// The PSF's transform made on the device equals the CPU's to f32 rounding (cuFFT's
    /// rounding against rustfft's, then each narrowed to f32), stays cached under its id,
    /// and convolves as the CPU's transform does.
    #[test]
    fn psf_transform_matches_the_cpu() {
        let Some(g) = device() else { return };
        let n = 40;
        let m = 2 * n;
        let psf: Vec<f64> = (0..m * m)
            .map(|i| {
                let (dx, dy) = ((i % m) as f64 - n as f64, (i / m) as f64 - n as f64);
                (-(dx * dx + dy * dy) / 18.0).exp() + 0.03 * (dx * 0.4 - dy * 0.9).cos()
            })
            .collect();
        let cpu = PsfHat::new(&psf, m);
        let dev = g.psf_hat(&psf, m).unwrap();
        assert_ne!(dev.id(), cpu.id());
        let peak = cpu.hat.iter().fold(0.0f32, |a, c| a.max(c.norm()));
        let err = dev
            .hat
            .iter()
            .zip(&cpu.hat)
            .fold(0.0f32, |a, (d, c)| a.max((d - c).norm()));
        assert!(err <= 2e-7 * peak, "{err} of {peak}");
        assert!(g.psf_cache.lock().unwrap().iter().any(|c| c.0 == dev.id()));
        let comps = vec![(0..30)
            .map(|k| ((k * 53 + 11) % (n * n), 0.2 * (k as f64).sin()))
            .collect::<Vec<_>>()];
        let want = convolve_cpu(&comps, &[&cpu], n);
        let got = g.convolve_components(&comps, &[&dev], n).unwrap();
        let peak = want[0].iter().fold(0.0f64, |a, x| a.max(x.abs()));
        let err = got[0]
            .iter()
            .zip(&want[0])
            .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
        assert!(err < 1e-6 * peak && peak > 1e-2, "{err} of {peak}");
    }
}
