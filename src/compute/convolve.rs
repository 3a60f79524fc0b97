//! CLEAN's round subtraction by FFT (imaging::clark): a round's point components of each
//! spectral term convolved with the 2n x 2n PSFs on their 2n grid, where every offset
//! between two pixels of the n x n image lies on the PSF, so the circular convolution is
//! the exact linear one over the image. The PSFs' centred transforms are made once per
//! image ([`PsfHat`], single precision: ~1e-7 of the peak). CPU twin of
//! `kernels/convolve.cu` with cuFFT (device_convolve).

use crate::primitives::fft::{centred_fft2_forward, centred_fft2_inverse};
use num_complex::{Complex32, Complex64};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// A PSF's centred transform on its m x m grid, with an identity a device can cache it by.
pub struct PsfHat {
    id: u64,
    pub m: usize,
    pub hat: Vec<Complex32>,
}

impl PsfHat {
    /// The transform of an m x m PSF (peak at (m/2, m/2)).
    pub fn new(psf: &[f64], m: usize) -> Self {
        assert_eq!(psf.len(), m * m, "the PSF is m x m");
        let mut hat: Vec<Complex64> = psf.par_iter().map(|&v| Complex64::new(v, 0.0)).collect();
        centred_fft2_forward(&mut hat, m);
        PsfHat::from_transform(
            hat.par_iter()
                .map(|c| Complex32::new(c.re as f32, c.im as f32))
                .collect(),
            m,
        )
    }

    /// A transform made elsewhere (a device's), with a new identity.
    pub fn from_transform(hat: Vec<Complex32>, m: usize) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        assert_eq!(hat.len(), m * m, "the transform is m x m");
        PsfHat {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            m,
            hat,
        }
    }

    /// Unique among the transforms of this process.
    pub fn id(&self) -> u64 {
        self.id
    }
}

#[inline]
fn widen(c: Complex32) -> Complex64 {
    Complex64::new(c.re as f64, c.im as f64)
}

/// Components (pixel, flux) of an n x n image placed at the centre of the m = 2n grid
/// (pixel (x, y) at (x + n/2, y + n/2)) and transformed.
fn components_hat(comps: &[(usize, f64)], n: usize, m: usize) -> Vec<Complex64> {
    let mut g = vec![Complex64::new(0.0, 0.0); m * m];
    for &(i, f) in comps {
        g[(i / n + n / 2) * m + i % n + n / 2].re += f;
    }
    centred_fft2_forward(&mut g, m);
    g
}

/// The centre of the inverse transform of `g`, normalised: an n x n image.
fn centre_of_inverse(mut g: Vec<Complex64>, n: usize, m: usize) -> Vec<f64> {
    centred_fft2_inverse(&mut g, m);
    let scale = 1.0 / (m * m) as f64;
    let mut out = vec![0.0; n * n];
    out.par_chunks_mut(n).enumerate().for_each(|(y, row)| {
        let grow = &g[(y + n / 2) * m + n / 2..];
        for (o, c) in row.iter_mut().zip(grow) {
            *o = c.re * scale;
        }
    });
    out
}

/// For each residual term t' (T = comps.len()), sum_t comps[t] convolved with PSF t + t'
/// (`hats` holds the 2T - 1 PSFs' transforms): the n x n images a round subtracts.
pub fn convolve_cpu(comps: &[Vec<(usize, f64)>], hats: &[&PsfHat], n: usize) -> Vec<Vec<f64>> {
    let nt = comps.len();
    assert!(hats.len() + 1 >= 2 * nt, "2T - 1 PSFs for T terms");
    let m = hats[0].m;
    assert_eq!(m, 2 * n, "the PSFs are 2n x 2n");
    let comp_hats: Vec<Vec<Complex64>> = comps.iter().map(|cs| components_hat(cs, n, m)).collect();
    if nt == 1 {
        // One term: the product in place.
        let mut g = comp_hats.into_iter().next().expect("one term");
        g.par_iter_mut()
            .zip(&hats[0].hat)
            .for_each(|(a, b)| *a *= widen(*b));
        return vec![centre_of_inverse(g, n, m)];
    }
    (0..nt)
        .map(|tp| {
            let mut g = vec![Complex64::new(0.0, 0.0); m * m];
            for (t, h) in comp_hats.iter().enumerate() {
                g.par_iter_mut()
                    .zip(h)
                    .zip(&hats[t + tp].hat)
                    .for_each(|((a, c), p)| *a += c * widen(*p));
            }
            centre_of_inverse(g, n, m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::host_kernels::{host_kernels, run_host};

    fn psf(m: usize, k: usize) -> Vec<f64> {
        (0..m * m)
            .map(|i| ((i * (k + 3)) as f64 * 0.013).sin() / (1.0 + k as f64))
            .collect()
    }

    /// kernels/convolve.cu (with wstack.cu's checkerboard) run on the host as
    /// device_convolve.rs composes them, kernels/host/dft2.h's FFT standing in for cuFFT: the PSF
    /// transform equals PsfHat::new's to f32 rounding, and one and two spectral terms'
    /// round convolutions equal convolve_cpu's on the same f32 transforms to 2e-14 of
    /// their peak (5.6e-15 seen with a direct DFT there: its rounding against rustfft's).
    #[test]
    fn kernels_run_on_the_host_as_the_device_composes_them() {
        let Some(run) = host_kernels() else { return };
        let n = 24;
        let m = 2 * n;
        let psfs: Vec<PsfHat> = (0..3).map(|k| PsfHat::new(&psf(m, k), m)).collect();
        // The PSF's transform.
        let mut input: Vec<u8> = (m as i64).to_le_bytes().to_vec();
        psf(m, 1).iter().for_each(|x| input.extend(x.to_le_bytes()));
        let out = run_host(&run, "psf_hat", &input);
        let got: Vec<f32> = out
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let want: Vec<f32> = psfs[1].hat.iter().flat_map(|c| [c.re, c.im]).collect();
        // Both narrow an f64 transform to f32 (the host FFT's here, rustfft's there): a value
        // may round the other way, by one f32 step at most, and values that cancel to near
        // zero differ by the transforms' f64 rounding (~1e-17 of the peak).
        assert_eq!(got.len(), want.len());
        let peak = want.iter().fold(0f32, |a, x| a.max(x.abs()));
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= f32::EPSILON * b.abs() + 1e-15 * peak,
                "PSF transform value {i}: {a} against {b}"
            );
        }
        // The round convolutions, one and two terms (components on the image's edges too).
        for nt in [1usize, 2] {
            let comps: Vec<Vec<(usize, f64)>> = (0..nt)
                .map(|t| {
                    let mut c: Vec<(usize, f64)> = (0..40)
                        .map(|k| {
                            (
                                (k * 37 + 11 * t + 5) % (n * n),
                                0.2 * ((k + t) as f64).cos(),
                            )
                        })
                        .collect();
                    c.push((0, 0.7));
                    c.push((n * n - 1, -0.4));
                    c
                })
                .collect();
            let hats: Vec<&PsfHat> = psfs.iter().take(2 * nt - 1).collect();
            let want = convolve_cpu(&comps, &hats, n);
            let mut input = Vec::new();
            for x in [n, nt] {
                input.extend((x as i64).to_le_bytes());
            }
            comps
                .iter()
                .for_each(|c| input.extend((c.len() as i64).to_le_bytes()));
            for c in &comps {
                c.iter()
                    .for_each(|p| input.extend((p.0 as i64).to_le_bytes()));
                c.iter().for_each(|p| input.extend(p.1.to_le_bytes()));
            }
            for h in &hats {
                h.hat.iter().for_each(|c| {
                    input.extend(c.re.to_le_bytes());
                    input.extend(c.im.to_le_bytes());
                });
            }
            let out = run_host(&run, "convolve", &input);
            assert_eq!(out.len(), nt * n * n * 8, "{nt} terms");
            for (tp, w) in want.iter().enumerate() {
                let scale = w.iter().fold(0f64, |a, x| a.max(x.abs()));
                let err = w
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        let o = (tp * n * n + i) * 8;
                        (f64::from_le_bytes(out[o..o + 8].try_into().unwrap()) - x).abs()
                    })
                    .fold(0f64, f64::max);
                assert!(
                    scale > 0.1 && err <= 2e-14 * scale,
                    "{nt} terms, residual term {tp}: {err} of {scale}"
                );
            }
        }
        let _ = std::fs::remove_dir_all(run.parent().unwrap());
    }
}
