//! Centred 2-D FFTs over square complex grids (row-major), rayon-parallel over rows/columns.

use num_complex::Complex64;
use rayon::prelude::*;
use rustfft::FftPlanner;

/// In place: grid[k] -> sum_k grid[k] exp(-2 pi i (k - n/2)(j - n/2) / n) for both axes,
/// i.e. the DFT with the origin at the grid centre on both sides. `n` must be a multiple of 4.
pub fn centred_fft2_forward(grid: &mut [Complex64], n: usize) {
    centred_fft2(grid, n, false);
}

/// In place, the opposite sign: grid[k] -> sum_k grid[k] exp(+2 pi i (k - n/2)(j - n/2) / n),
/// unnormalised (the adjoint of `centred_fft2_forward`).
pub fn centred_fft2_inverse(grid: &mut [Complex64], n: usize) {
    centred_fft2(grid, n, true);
}

fn centred_fft2(grid: &mut [Complex64], n: usize, inverse: bool) {
    assert_eq!(grid.len(), n * n);
    assert!(n % 4 == 0, "centred FFT needs n divisible by 4");
    checkerboard(grid, n);
    let mut planner = FftPlanner::<f64>::new();
    let fft = if inverse { planner.plan_fft_inverse(n) } else { planner.plan_fft_forward(n) };
    grid.par_chunks_mut(n).for_each(|row| fft.process(row));
    // Columns: transpose, transform rows, transpose back.
    let mut t = transpose(grid, n);
    t.par_chunks_mut(n).for_each(|row| fft.process(row));
    let back = transpose(&t, n);
    grid.copy_from_slice(&back);
    checkerboard(grid, n);
}

fn checkerboard(grid: &mut [Complex64], n: usize) {
    grid.par_chunks_mut(n).enumerate().for_each(|(y, row)| {
        for (x, v) in row.iter_mut().enumerate() {
            if (x + y) % 2 == 1 {
                *v = -*v;
            }
        }
    });
}

fn transpose(a: &[Complex64], n: usize) -> Vec<Complex64> {
    let mut out = vec![Complex64::new(0.0, 0.0); n * n];
    const B: usize = 32;
    out.par_chunks_mut(n * B).enumerate().for_each(|(bi, chunk)| {
        let r0 = bi * B;
        let rows = chunk.len() / n;
        for c0 in (0..n).step_by(B) {
            for r in 0..rows {
                for c in c0..(c0 + B).min(n) {
                    chunk[r * n + c] = a[c * n + r0 + r];
                }
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_centred_dft() {
        let n = 8;
        let mut g: Vec<Complex64> = (0..n * n).map(|i| Complex64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos())).collect();
        let orig = g.clone();
        centred_fft2_forward(&mut g, n);
        let c = (n / 2) as f64;
        for jy in 0..n {
            for jx in 0..n {
                let mut s = Complex64::new(0.0, 0.0);
                for ky in 0..n {
                    for kx in 0..n {
                        let ph = -2.0 * std::f64::consts::PI
                            * ((kx as f64 - c) * (jx as f64 - c) + (ky as f64 - c) * (jy as f64 - c))
                            / n as f64;
                        s += orig[ky * n + kx] * Complex64::from_polar(1.0, ph);
                    }
                }
                assert!((s - g[jy * n + jx]).norm() < 1e-10);
            }
        }
    }
}
