//! The DSA-110 primary beam: an Airy pattern of a uniformly illuminated 4.65 m dish.

use super::C_M_S;

/// Bessel function of the first kind, order 1 (libm's `j1`, the FreeBSD msun algorithm).
pub fn bessel_j1(x: f64) -> f64 {
    libm::j1(x)
}

/// Power response of an Airy disk of diameter `dish_m` at angle `theta_rad` off axis,
/// frequency `freq_hz`: (2 J1(x)/x)^2 with x = pi D sin(theta) / lambda.
pub fn airy_power(theta_rad: f64, freq_hz: f64, dish_m: f64) -> f64 {
    let x = std::f64::consts::PI * dish_m * theta_rad.sin() * freq_hz / C_M_S;
    if x.abs() < 1e-8 {
        return 1.0;
    }
    let a = 2.0 * bessel_j1(x) / x;
    a * a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn j1_reference_values() {
        // Reference values from Abramowitz & Stegun / scipy.special.j1.
        for (x, want) in [
            (1.0, 0.440_050_585_744_933_5),
            (5.0, -0.327_579_137_591_465_2),
            (10.0, 0.043_472_746_168_861_44),
            (15.0, 0.205_104_038_613_522_8),
            (30.0, -0.118_751_062_366_8),
        ] {
            assert!(
                (bessel_j1(x) - want).abs() < 1e-9,
                "J1({x}) = {} vs {want}",
                bessel_j1(x)
            );
        }
        // First zero of J1.
        assert!(bessel_j1(3.831_705_970_207_512).abs() < 1e-12);
    }

    #[test]
    fn airy_fwhm_matches_dsa110() {
        // Half-power point at x = 1.616340; FWHM about 2.9 deg at 1311 MHz.
        let f = 1311e6;
        let mut lo = 0.0f64;
        let mut hi = 5.0f64.to_radians();
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if airy_power(mid, f, 4.65) > 0.5 {
                lo = mid
            } else {
                hi = mid
            }
        }
        let fwhm = 2.0 * lo.to_degrees();
        assert!((fwhm - 2.9).abs() < 0.1, "{fwhm}");
    }
}
