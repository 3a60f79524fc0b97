//! The exponential-of-semicircle (ES) gridding kernel (Barnett et al. 2019, as in ducc0 and
//! FINUFFT) and its grid-correction function.
//!
//! phi(x) = exp(beta (sqrt(1 - x^2) - 1)) on |x| <= 1, spread over `support` grid cells.
//! Accuracy contract (measured against a direct Fourier transform with w-terms, 3-D
//! gridding at oversampling 2, beta = 2.3 W; see tests/gridder_dft.rs): relative L2 error
//! ~1.1 x 10^-(W-1) — W = 4: 1.1e-3, 5: 1.1e-4, 6: 1.1e-5, 7: 1.2e-6.
//! `for_epsilon` picks the smallest support whose error is at most the requested epsilon.

/// Largest supported kernel support (cells).
pub const MAX_SUPPORT: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EsKernel {
    /// Kernel width in grid cells.
    pub support: usize,
    /// Shape parameter.
    pub beta: f64,
}

impl EsKernel {
    /// Kernel for a requested relative accuracy at grid oversampling 2.
    pub fn for_epsilon(epsilon: f64) -> Self {
        let eps = epsilon.clamp(1e-14, 0.1);
        // Smallest W with 1.2e-(W-1) <= eps.
        let support = ((1.2f64 / eps).log10().ceil() as usize + 1).clamp(3, MAX_SUPPORT);
        EsKernel { support, beta: 2.3 * support as f64 }
    }

    /// phi at normalised position x in [-1, 1].
    #[inline]
    pub fn phi(&self, x: f64) -> f64 {
        let s = 1.0 - x * x;
        if s <= 0.0 {
            0.0
        } else {
            (self.beta * (s.sqrt() - 1.0)).exp()
        }
    }

    /// Taps for a point at continuous grid coordinate `g`: returns the first cell index and
    /// fills `w[..support]` with the kernel at cells first..first+support.
    #[inline]
    pub fn taps(&self, g: f64, w: &mut [f64; MAX_SUPPORT]) -> i64 {
        let half = self.support as f64 * 0.5;
        let first = (g - half).ceil() as i64;
        let inv = 1.0 / half;
        for (k, wk) in w.iter_mut().take(self.support).enumerate() {
            let x = (first + k as i64) as f64 - g;
            *wk = self.phi(x * inv);
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
                sum += wq * 0.5 * h * self.phi(t / half) * (2.0 * std::f64::consts::PI * nu * t).cos();
            }
        }
        2.0 * sum
    }

    /// Grid-correction factors for `n_image` pixels of an image whose padded grid has
    /// `n_grid` cells: c[j] = 1 / psi_hat((j - n_image/2) / n_grid).
    pub fn correction(&self, n_image: usize, n_grid: usize) -> Vec<f64> {
        let c = (n_image / 2) as f64;
        (0..n_image).map(|j| 1.0 / self.fourier((j as f64 - c) / n_grid as f64)).collect()
    }
}

/// 8-point Gauss-Legendre nodes and weights on [-1, 1].
const GL8: [(f64, f64); 8] = [
    (-0.960_289_856_497_536_3, 0.101_228_536_290_376_26),
    (-0.796_666_477_413_626_7, 0.222_381_034_453_374_47),
    (-0.525_532_409_916_329_0, 0.313_706_645_877_887_3),
    (-0.183_434_642_495_649_8, 0.362_683_783_378_362),
    (0.183_434_642_495_649_8, 0.362_683_783_378_362),
    (0.525_532_409_916_329_0, 0.313_706_645_877_887_3),
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
            assert!((s / k.fourier(0.0) - 1.0).abs() < 1e-6, "{s} {}", k.fourier(0.0));
        }
    }

    #[test]
    fn support_grows_with_accuracy() {
        assert!(EsKernel::for_epsilon(1e-6).support > EsKernel::for_epsilon(1e-3).support);
    }
}
