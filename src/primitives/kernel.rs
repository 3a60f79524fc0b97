//! The exponential-of-semicircle (ES) gridding kernel (Barnett et al. 2019, as in ducc0 and
//! FINUFFT) and its grid-correction function.
//!
//! phi(x) = exp(beta (sqrt(1 - x^2) - 1)) on |x| <= 1, spread over `support` grid cells;
//! `EsKernel::tuned` generalises the square root to a power e0 (Arras et al. 2021's
//! two-parameter form), with (beta, e0) tuned per support and oversampling
//! (`kernel_shapes.rs`, from scripts/es_kernel_shapes.py): 3-6x less aliasing than the
//! plain kernel at the same support (`aliasing_estimate`).
//! Accuracy contract (measured against a direct Fourier transform with w-terms, 3-D
//! gridding at oversampling 2, beta = 2.3 W; see tests/gridder_dft.rs): relative L2 error
//! ~1.1 x 10^-(W-1) — W = 4: 1.1e-3, 5: 1.1e-4, 6: 1.1e-5, 7: 1.2e-6.
//! `for_epsilon` picks the smallest support whose error is at most the requested epsilon.

use super::kernel_shapes::SHAPES;

/// Largest supported kernel support (cells).
pub const MAX_SUPPORT: usize = 16;

/// Highest polynomial degree of the tap approximation.
const MAX_DEGREE: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EsKernel {
    /// Kernel width in grid cells.
    pub support: usize,
    /// Shape parameter.
    pub beta: f64,
    /// Exponent of (1 - x^2): 1/2 for the plain ES kernel (`for_epsilon`, `with_shape`:
    /// what the compute layer's kernels evaluate), tuned by `tuned`.
    pub e0: f64,
    /// Tap polynomials (see `taps`): coef[d][k] multiplies s^d for tap k, s = 2t - 1 with
    /// t in [0, 1) the offset of the first tap; Horner over d, vectorised over k.
    coef: [[f64; MAX_SUPPORT]; MAX_DEGREE + 1],
    degree: usize,
}

impl EsKernel {
    /// Kernel for a requested relative accuracy at grid oversampling 2.
    pub fn for_epsilon(epsilon: f64) -> Self {
        let eps = epsilon.clamp(1e-14, 0.1);
        // Smallest W with 1.2e-(W-1) <= eps.
        let support = ((1.2f64 / eps).log10().ceil() as usize + 1).clamp(3, MAX_SUPPORT);
        Self::with_shape(support, 2.3 * support as f64)
    }

    /// Kernel of a given support and shape, with its tap polynomials: the lowest degree
    /// whose largest error over the taps (sampled densely) is below 0.25 x 10^-(support-1),
    /// at most a fifth of the kernel's own aliasing error (at oversampling 2; less at the
    /// smaller ones the w-gridder also uses). The error falls slowly past that degree (the
    /// kernel's edges are not smooth): 1.9e-7 at degree 7 for support 7, 1.2e-7 at 10.
    pub fn with_shape(support: usize, beta: f64) -> Self {
        Self::with_shape_e0(support, beta, 0.5, 0.25 * 10f64.powi(-(support as i32 - 1)))
    }

    /// The two-parameter kernel tuned for `support` cells at grid oversampling `sigma`
    /// (`kernel_shapes::SHAPES`, sigma rounded down to the table's 0.05 steps from 1.2 to
    /// 2.0; clamped into that range), with its aliasing estimate (`aliasing_estimate`).
    /// The tap polynomials are fitted to 0.15x that estimate on their sampling (at most a
    /// quarter of it anywhere, tested).
    pub fn tuned(support: usize, sigma: f64) -> (Self, f64) {
        let (beta, e0, est) = tuned_shape(support, sigma);
        (Self::with_shape_e0(support, beta, e0, 0.15 * est), est)
    }

    /// The tuned kernel's largest grid correction over an image at oversampling `sigma`:
    /// psi_hat(0) / psi_hat(1 / (2 sigma)), by which the grid's rounding errors are
    /// amplified at the image's edge (per axis).
    pub fn tuned_correction_max(support: usize, sigma: f64) -> f64 {
        let (beta, e0, _) = tuned_shape(support, sigma);
        let k = Self::unfitted(support, beta, e0);
        k.fourier(0.0) / k.fourier(0.5 / sigma)
    }

    /// The shape without its tap polynomials (enough for `phi` and `fourier`).
    fn unfitted(support: usize, beta: f64, e0: f64) -> Self {
        EsKernel {
            support,
            beta,
            e0,
            coef: [[0.0; MAX_SUPPORT]; MAX_DEGREE + 1],
            degree: 0,
        }
    }

    fn with_shape_e0(support: usize, beta: f64, e0: f64, target: f64) -> Self {
        let mut k = Self::unfitted(support, beta, e0);
        for degree in support.saturating_sub(1).max(3)..=MAX_DEGREE {
            k.fit(degree);
            if k.poly_error() <= target {
                break;
            }
        }
        k
    }

    /// The kernel's aliasing estimate at grid oversampling `sigma`: the largest, over image
    /// frequencies xi in [0, 1/(2 sigma)] cycles per cell, of sqrt(sum over m = +-1..+-4
    /// of psi_hat(xi + m)^2) / psi_hat(xi) (what scripts/es_kernel_shapes.py minimises).
    pub fn aliasing_estimate(&self, sigma: f64) -> f64 {
        (0..=48)
            .map(|i| {
                let xi = 0.5 / sigma * i as f64 / 48.0;
                let alias: f64 = [1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0]
                    .iter()
                    .map(|m| self.fourier(xi + m).powi(2))
                    .sum();
                alias.sqrt() / self.fourier(xi).abs()
            })
            .fold(0.0, f64::max)
    }

    /// Interpolates each tap at degree + 1 Chebyshev nodes in s (Vandermonde solve; the
    /// nodes keep it well conditioned at these degrees).
    fn fit(&mut self, degree: usize) {
        let m = degree + 1;
        let nodes: Vec<f64> = (0..m)
            .map(|j| -(std::f64::consts::PI * (j as f64 + 0.5) / m as f64).cos())
            .collect();
        let half = self.support as f64 * 0.5;
        self.coef = [[0.0; MAX_SUPPORT]; MAX_DEGREE + 1];
        self.degree = degree;
        for k in 0..self.support {
            // Rows: s_j^d; right side: the tap at t = (s_j + 1) / 2.
            let mut a: Vec<Vec<f64>> = nodes
                .iter()
                .map(|&s| (0..m).map(|d| s.powi(d as i32)).collect())
                .collect();
            let mut b: Vec<f64> = nodes
                .iter()
                .map(|&s| self.phi(((s + 1.0) * 0.5 + k as f64 - half) / half))
                .collect();
            let c = solve(&mut a, &mut b);
            for d in 0..m {
                self.coef[d][k] = c[d];
            }
        }
    }

    /// Largest |polynomial tap - exact tap| over a fine sampling of t.
    fn poly_error(&self) -> f64 {
        let mut w = [0.0; MAX_SUPPORT];
        let mut err = 0.0f64;
        for i in 0..=997 {
            let g = 100.0 + (i as f64 + 0.5) / 998.0;
            let first = self.taps(g, &mut w);
            for (k, wk) in w.iter().enumerate().take(self.support) {
                let x = (first + k as i64) as f64 - g;
                err = err.max((wk - self.phi(x / (self.support as f64 * 0.5))).abs());
            }
        }
        err
    }

    /// phi at normalised position x in [-1, 1].
    #[inline]
    pub fn phi(&self, x: f64) -> f64 {
        let s = 1.0 - x * x;
        if s <= 0.0 {
            0.0
        } else if self.e0 == 0.5 {
            (self.beta * (s.sqrt() - 1.0)).exp()
        } else {
            (self.beta * (s.powf(self.e0) - 1.0)).exp()
        }
    }

    /// Taps for a point at continuous grid coordinate `g`: returns the first cell index and
    /// fills `w[..support]` with the kernel at cells first..first+support (all MAX_SUPPORT
    /// entries are written; those past the support are not meaningful). Evaluated from the
    /// tap polynomials: a few multiply-adds per tap instead of an exp and a sqrt.
    #[inline(always)]
    pub fn taps(&self, g: f64, w: &mut [f64; MAX_SUPPORT]) -> i64 {
        let half = self.support as f64 * 0.5;
        let first = (g - half).ceil() as i64;
        // t = first - (g - half) in [0, 1); s = 2t - 1.
        let s = 2.0 * (first as f64 - g + half) - 1.0;
        if self.support <= 8 {
            horner::<8>(&self.coef, self.degree, s, w);
        } else {
            horner::<MAX_SUPPORT>(&self.coef, self.degree, s, w);
        }
        first
    }

    /// The tap polynomials (see `taps`): rows d = 0..=degree of coefficients of s^d, one
    /// column per tap (columns past the support are zero).
    pub fn tap_polynomials(&self) -> &[[f64; MAX_SUPPORT]] {
        &self.coef[..=self.degree]
    }

    /// `taps` by direct evaluation of phi (the reference the polynomials are fitted to).
    pub fn taps_exact(&self, g: f64, w: &mut [f64; MAX_SUPPORT]) -> i64 {
        let half = self.support as f64 * 0.5;
        let first = (g - half).ceil() as i64;
        for (k, wk) in w.iter_mut().take(self.support).enumerate() {
            let x = (first + k as i64) as f64 - g;
            *wk = self.phi(x / half);
        }
        first
    }

    /// Fourier transform of the kernel (in cell units) at frequency `nu` cycles per cell:
    /// psi_hat(nu) = integral phi(2t/W) cos(2 pi nu t) dt, by Gauss-Legendre quadrature.
    pub fn fourier(&self, nu: f64) -> f64 {
        let half = self.support as f64 * 0.5;
        // Composite Gauss-Legendre (8 points) over 4*support panels on [0, half]: exact to
        // far below 1e-14 for these smooth integrands.
        let panels = 4 * self.support;
        let h = half / panels as f64;
        let mut sum = 0.0;
        for p in 0..panels {
            let a = p as f64 * h;
            for (x, wq) in GL8.iter() {
                let t = a + 0.5 * h * (x + 1.0);
                sum +=
                    wq * 0.5 * h * self.phi(t / half) * (2.0 * std::f64::consts::PI * nu * t).cos();
            }
        }
        2.0 * sum
    }

    /// Grid-correction factors for `n_image` pixels of an image whose padded grid has
    /// `n_grid` cells: c[j] = 1 / psi_hat((j - n_image/2) / n_grid).
    pub fn correction(&self, n_image: usize, n_grid: usize) -> Vec<f64> {
        let c = (n_image / 2) as f64;
        (0..n_image)
            .map(|j| 1.0 / self.fourier((j as f64 - c) / n_grid as f64))
            .collect()
    }
}

/// (beta, e0, aliasing estimate) of the tuned shape for `support` at `sigma` (rounded down
/// to the table's steps, clamped to 1.2..=2.0).
pub fn tuned_shape(support: usize, sigma: f64) -> (f64, f64, f64) {
    let i = (((sigma.clamp(1.2, 2.0) - 1.2) / 0.05 + 1e-9).floor() as usize).min(16);
    let (w, table_sigma, beta, e0, est, _) = SHAPES[(support.clamp(3, MAX_SUPPORT) - 3) * 17 + i];
    debug_assert_eq!(w, support.clamp(3, MAX_SUPPORT));
    debug_assert!((table_sigma - (1.2 + 0.05 * i as f64)).abs() < 1e-9);
    (beta, e0, est)
}

/// The first L taps' polynomials at s by Horner's rule, L lanes at once (vectorised).
#[inline(always)]
fn horner<const L: usize>(
    coef: &[[f64; MAX_SUPPORT]; MAX_DEGREE + 1],
    degree: usize,
    s: f64,
    w: &mut [f64; MAX_SUPPORT],
) {
    let mut acc = [0.0; L];
    acc.copy_from_slice(&coef[degree][..L]);
    for c in coef[..degree].iter().rev() {
        for k in 0..L {
            acc[k] = acc[k] * s + c[k];
        }
    }
    w[..L].copy_from_slice(&acc);
}

/// Solves a x = b by Gaussian elimination with partial pivoting (small dense systems).
fn solve(a: &mut [Vec<f64>], b: &mut [f64]) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let p = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, p);
        b.swap(col, p);
        for r in col + 1..n {
            let f = a[r][col] / a[col][col];
            for c in col..n {
                a[r][c] -= f * a[col][c];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    x
}

/// 8-point Gauss-Legendre nodes and weights on [-1, 1].
const GL8: [(f64, f64); 8] = [
    (-0.960_289_856_497_536_3, 0.101_228_536_290_376_26),
    (-0.796_666_477_413_626_7, 0.222_381_034_453_374_47),
    (-0.525_532_409_916_329, 0.313_706_645_877_887_3),
    (-0.183_434_642_495_649_8, 0.362_683_783_378_362),
    (0.183_434_642_495_649_8, 0.362_683_783_378_362),
    (0.525_532_409_916_329, 0.313_706_645_877_887_3),
    (0.796_666_477_413_626_7, 0.222_381_034_453_374_47),
    (0.960_289_856_497_536_3, 0.101_228_536_290_376_26),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourier_at_zero_is_the_sum_of_taps() {
        let k = EsKernel::for_epsilon(1e-6);
        let mut w = [0.0; MAX_SUPPORT];
        // For a band-limited-enough kernel the tap sum equals psi_hat(0) for any offset.
        for g in [10.0, 10.3, 10.77] {
            k.taps(g, &mut w);
            let s: f64 = w[..k.support].iter().sum();
            assert!(
                (s / k.fourier(0.0) - 1.0).abs() < 1e-6,
                "{s} {}",
                k.fourier(0.0)
            );
        }
    }

    /// The tap polynomials agree with the exact kernel far below each support's aliasing
    /// error, for every support the gridder may pick.
    #[test]
    fn polynomial_taps_match_the_exact_kernel() {
        for eps in [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8] {
            let k = EsKernel::for_epsilon(eps);
            let (mut a, mut b) = ([0.0; MAX_SUPPORT], [0.0; MAX_SUPPORT]);
            let mut err = 0.0f64;
            for i in 0..5000 {
                // Off the lattice: at x = +-1 exactly phi is cut to 0, the polynomial is exp(-beta).
                let g = -3.0 + (i as f64 + 0.5) * 0.001_37;
                assert_eq!(k.taps(g, &mut a), k.taps_exact(g, &mut b));
                for j in 0..k.support {
                    err = err.max((a[j] - b[j]).abs());
                }
            }
            println!(
                "eps {eps:e}: support {}, degree {}, max tap error {err:.2e}",
                k.support, k.degree
            );
            assert!(err < 0.1 * eps, "eps {eps}: tap error {err}");
        }
    }

    /// The table's aliasing estimates (scripts/es_kernel_shapes.py, numpy quadrature)
    /// recomputed here from the kernel's own Fourier transform; the tuned shapes alias
    /// several times less than the plain ES kernel at the same support and oversampling;
    /// their tap polynomials stay within a quarter of the estimate.
    #[test]
    fn tuned_shapes_match_their_estimates_and_beat_the_plain_kernel() {
        for (w, sigma) in [(4, 1.5), (5, 2.0), (6, 1.5), (6, 1.9), (7, 1.25), (8, 1.65)] {
            let (k, est) = EsKernel::tuned(w, sigma);
            let here = k.aliasing_estimate(sigma);
            let plain = EsKernel::with_shape(w, 2.3 * w as f64 * (1.0 - 0.5 / sigma) / 0.75)
                .aliasing_estimate(sigma);
            println!("W {w} sigma {sigma}: table {est:.3e}, here {here:.3e}, plain {plain:.3e}");
            assert!(
                (here / est - 1.0).abs() < 0.05,
                "W {w} sigma {sigma}: {here} vs {est}"
            );
            assert!(
                plain > 3.0 * here,
                "W {w} sigma {sigma}: plain {plain}, tuned {here}"
            );
            let (mut a, mut b) = ([0.0; MAX_SUPPORT], [0.0; MAX_SUPPORT]);
            let mut err = 0.0f64;
            for i in 0..3000 {
                let g = -3.0 + (i as f64 + 0.5) * 0.002_31;
                assert_eq!(k.taps(g, &mut a), k.taps_exact(g, &mut b));
                for j in 0..w {
                    err = err.max((a[j] - b[j]).abs());
                }
            }
            println!("   degree {}, tap error {err:.2e}", k.degree);
            assert!(err <= 0.25 * est, "W {w} sigma {sigma}: tap error {err:e}");
        }
    }

    #[test]
    fn support_grows_with_accuracy() {
        assert!(EsKernel::for_epsilon(1e-6).support > EsKernel::for_epsilon(1e-3).support);
    }
}
