//! Centred 2-D FFTs over square complex grids (row-major), rayon-parallel over rows/columns.

use num_complex::{Complex, Complex64};
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

/// `centred_fft2_forward`, computing only the central `m x m` outputs (rows and columns
/// n/2 - m/2 .. n/2 + m/2), returned row-major; `grid` is left scrambled. Rows are
/// transformed in full, columns only where an output is wanted: for the gridder's 2x padded
/// grids this skips half of the column transforms. Generic over f32/f64.
pub fn centred_fft2_forward_crop<T: rustfft::FftNum>(
    grid: &mut [Complex<T>],
    n: usize,
    m: usize,
) -> Vec<Complex<T>> {
    let out = std::sync::Mutex::new(vec![Complex::new(T::zero(), T::zero()); m * m]);
    centred_fft2_forward_crop_each(grid, n, m, |x0, k, block| {
        let mut o = out.lock().expect("no panics while holding it");
        for j in 0..k {
            for y in 0..m {
                o[y * m + x0 + j] = block[j * m + y];
            }
        }
    });
    out.into_inner().expect("no panics while holding it")
}

/// `centred_fft2_forward_crop` handing the `m x m` outputs to `each` a block of columns at a
/// time instead of storing them: `each(x0, k, block)` gets output columns `x0 .. x0 + k`
/// (k <= 16), column-major (`block[j * m + y]` is output (x0 + j, y)), called in parallel
/// over disjoint column blocks. Only per-thread scratch of 16 columns besides `grid`, whose
/// rows are transformed in place (zero rows, a gridded plane's rows beyond its samples'
/// reach, skipped and left zero; the other rows are left transformed, so a caller that
/// refills them needs no re-zeroing).
pub fn centred_fft2_forward_crop_each<T, F>(grid: &mut [Complex<T>], n: usize, m: usize, each: F)
where
    T: rustfft::FftNum,
    F: Fn(usize, usize, &[Complex<T>]) + Sync,
{
    const B: usize = 16;
    assert_eq!(grid.len(), n * n);
    assert!(
        n.is_multiple_of(4) && m <= n && m.is_multiple_of(2),
        "centred FFT crop needs n divisible by 4, m even"
    );
    let lo = n / 2 - m / 2;
    let zero = Complex::new(T::zero(), T::zero());
    checkerboard(grid, n);
    let mut planner = FftPlanner::<T>::new();
    let fft = planner.plan_fft_forward(n);
    grid.par_chunks_mut(n).for_each(|row| {
        if row.iter().any(|c| *c != zero) {
            fft.process(row);
        }
    });
    let grid = &*grid;
    (0..m.div_ceil(B)).into_par_iter().for_each_init(
        || {
            (
                vec![zero; B * n],
                vec![zero; B * m],
                vec![zero; fft.get_inplace_scratch_len()],
            )
        },
        |(cols, out, scratch), bi| {
            let x0 = bi * B;
            let k = B.min(m - x0);
            let cols = &mut cols[..k * n];
            columns_into(grid, n, lo + x0, cols);
            for (j, col) in cols.chunks_mut(n).enumerate() {
                fft.process_with_scratch(col, scratch);
                let jx = lo + x0 + j;
                let o = &mut out[j * m..(j + 1) * m];
                for (i, v) in o.iter_mut().enumerate() {
                    let c = col[lo + i];
                    *v = if (jx + lo + i) % 2 == 1 { -c } else { c };
                }
            }
            each(x0, k, &out[..k * m]);
        },
    );
}

/// `centred_fft2_inverse` for a grid that is zero outside its central `m x m` window (a
/// padded model image): the row transforms of the all-zero rows are skipped.
pub fn centred_fft2_inverse_from_centre<T: rustfft::FftNum>(
    grid: &mut [Complex<T>],
    n: usize,
    m: usize,
) {
    centred_fft2_inverse_from_centre_with(grid, n, m, &mut Vec::new());
}

/// `centred_fft2_inverse_from_centre` with `t` as the transpose's scratch (resized to
/// n x n), reused across calls (no fresh pages per plane).
pub fn centred_fft2_inverse_from_centre_with<T: rustfft::FftNum>(
    grid: &mut [Complex<T>],
    n: usize,
    m: usize,
    t: &mut Vec<Complex<T>>,
) {
    assert!(m <= n && m.is_multiple_of(2), "window must be even and fit");
    assert_eq!(grid.len(), n * n);
    assert!(n.is_multiple_of(4), "centred FFT needs n divisible by 4");
    checkerboard(grid, n);
    fft2_rows_with(grid, n, true, n / 2 - m / 2..n / 2 + m / 2, t);
    checkerboard(grid, n);
}

fn centred_fft2(grid: &mut [Complex64], n: usize, inverse: bool) {
    centred_fft2_rows(grid, n, inverse, 0..n);
}

/// The centred transform, the first (row) pass only over `rows` (the others must be zero).
fn centred_fft2_rows<T: rustfft::FftNum>(
    grid: &mut [Complex<T>],
    n: usize,
    inverse: bool,
    rows: std::ops::Range<usize>,
) {
    assert_eq!(grid.len(), n * n);
    assert!(n.is_multiple_of(4), "centred FFT needs n divisible by 4");
    checkerboard(grid, n);
    fft2_rows(grid, n, inverse, rows);
    checkerboard(grid, n);
}

/// The plain (uncentred, unnormalised) 2-D transform in place, origin at cell 0 on both
/// sides, as cuFFT computes it: grid[k] -> sum_k grid[k] exp(-+2 pi i k j / n).
pub fn fft2(grid: &mut [Complex64], n: usize, inverse: bool) {
    assert_eq!(grid.len(), n * n);
    fft2_rows(grid, n, inverse, 0..n);
}

/// `fft2` with the first (row) pass only over `rows` (the others must be zero).
fn fft2_rows<T: rustfft::FftNum>(
    grid: &mut [Complex<T>],
    n: usize,
    inverse: bool,
    rows: std::ops::Range<usize>,
) {
    fft2_rows_with(grid, n, inverse, rows, &mut Vec::new());
}

/// `fft2_rows` with `t` as the transpose's scratch (resized to n x n).
fn fft2_rows_with<T: rustfft::FftNum>(
    grid: &mut [Complex<T>],
    n: usize,
    inverse: bool,
    rows: std::ops::Range<usize>,
    t: &mut Vec<Complex<T>>,
) {
    let mut planner = FftPlanner::<T>::new();
    let fft = if inverse {
        planner.plan_fft_inverse(n)
    } else {
        planner.plan_fft_forward(n)
    };
    grid[rows.start * n..rows.end * n]
        .par_chunks_mut(n)
        .for_each(|row| fft.process(row));
    // Columns: transpose, transform rows, transpose back (every element of t written).
    t.resize(n * n, Complex::new(T::zero(), T::zero()));
    transpose_into(grid, t, n);
    t.par_chunks_mut(n).for_each(|row| fft.process(row));
    transpose_into(t, grid, n);
}

fn checkerboard<T: rustfft::FftNum>(grid: &mut [Complex<T>], n: usize) {
    grid.par_chunks_mut(n).enumerate().for_each(|(y, row)| {
        for (x, v) in row.iter_mut().enumerate() {
            if (x + y) % 2 == 1 {
                *v = -*v;
            }
        }
    });
}

/// dst = src^T for n x n row-major grids.
fn transpose_into<T: rustfft::FftNum>(src: &[Complex<T>], dst: &mut [Complex<T>], n: usize) {
    columns_into(src, n, 0, dst);
}

/// The columns lo .. lo + dst.len() / n_rows of the row-major `src` (rows of `width`), as
/// the rows of `dst` (each n_rows = src.len() / width long): dst[j][y] = src[y][lo + j].
/// In B x B tiles through a small buffer, so that each cache line of the source and of the
/// destination is used whole as soon as it is loaded (with a power-of-two width, a column
/// walk's lines share a few cache sets and evict each other before their neighbours are
/// read).
fn columns_into<T: rustfft::FftNum>(
    src: &[Complex<T>],
    width: usize,
    lo: usize,
    dst: &mut [Complex<T>],
) {
    const B: usize = 16;
    let n_rows = src.len() / width;
    let zero = Complex::new(T::zero(), T::zero());
    dst.par_chunks_mut(n_rows * B)
        .enumerate()
        .for_each(|(bi, chunk)| {
            // Destination rows j0.. are the source's columns lo + j0..
            let j0 = lo + bi * B;
            let rows = chunk.len() / n_rows;
            let mut buf = [zero; B * B];
            for y0 in (0..n_rows).step_by(B) {
                let ys = B.min(n_rows - y0);
                for i in 0..ys {
                    let s = &src[(y0 + i) * width + j0..(y0 + i) * width + j0 + rows];
                    for (j, v) in s.iter().enumerate() {
                        buf[j * B + i] = *v;
                    }
                }
                for j in 0..rows {
                    chunk[j * n_rows + y0..j * n_rows + y0 + ys]
                        .copy_from_slice(&buf[j * B..j * B + ys]);
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_centred_dft() {
        let n = 8;
        let mut g: Vec<Complex64> = (0..n * n)
            .map(|i| Complex64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
            .collect();
        let orig = g.clone();
        centred_fft2_forward(&mut g, n);
        let c = (n / 2) as f64;
        for jy in 0..n {
            for jx in 0..n {
                let mut s = Complex64::new(0.0, 0.0);
                for ky in 0..n {
                    for kx in 0..n {
                        let ph = -2.0
                            * std::f64::consts::PI
                            * ((kx as f64 - c) * (jx as f64 - c)
                                + (ky as f64 - c) * (jy as f64 - c))
                            / n as f64;
                        s += orig[ky * n + kx] * Complex64::from_polar(1.0, ph);
                    }
                }
                assert!((s - g[jy * n + jx]).norm() < 1e-10);
            }
        }
    }

    #[test]
    fn inverse_from_a_central_window_matches_the_full_one() {
        let n = 16;
        let g: Vec<Complex64> = (0..n * n)
            .map(|i| {
                if (4..12).contains(&(i % n)) && (4..12).contains(&(i / n)) {
                    Complex64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos())
                } else {
                    Complex64::new(0.0, 0.0)
                }
            })
            .collect();
        let (mut a, mut b) = (g.clone(), g);
        centred_fft2_inverse(&mut a, n);
        centred_fft2_inverse_from_centre(&mut b, n, 8);
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).norm() < 1e-12));
    }

    #[test]
    fn cropped_transform_is_the_centre_of_the_full_one() {
        let n = 16;
        let g: Vec<Complex64> = (0..n * n)
            .map(|i| Complex64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
            .collect();
        let mut full = g.clone();
        centred_fft2_forward(&mut full, n);
        let mut h = g.clone();
        let crop = centred_fft2_forward_crop(&mut h, n, 8);
        for y in 0..8 {
            for x in 0..8 {
                assert!((crop[y * 8 + x] - full[(y + 4) * n + x + 4]).norm() < 1e-12);
            }
        }
    }
}
