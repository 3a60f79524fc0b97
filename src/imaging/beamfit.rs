//! The restoring beam: an elliptical Gaussian fitted to the PSF's main lobe by least squares.
//!
//! Contract: on a PSF that is an elliptical Gaussian of peak 1 centred on pixel (n/2, n/2),
//! the fit returns its FWHMs within 0.5 % and its position angle within 0.5 deg for minor axes
//! down to 2 pixels (tested below), whatever the orientation. On a real PSF it is the
//! Gaussian closest in the least-squares sense to the main lobe's pixels above
//! [`LOBE_LEVEL`] that connect to the centre (the practice of CASA and WSClean: a fit to the
//! main lobe, not moments of a thresholded region, which are quantised by the pixel grid).
//!
//! Method: the model is m = exp(-(A e^2 + B e n + C n^2)) with (e, n) the pixel's east and
//! north offsets from the centre and the peak held at 1 (the PSF is normalised). A linear
//! least-squares fit of ln(psf) weighted by psf^2 (the first-order equivalent of a fit in
//! the linear domain) starts Gauss-Newton on the linear-domain residuals; the quadratic
//! form's eigenvalues give the axes (FWHM = sqrt(4 ln 2 / lambda)).

use super::clean::Beam;

/// The fraction of the peak above which a pixel connected to the centre counts as main lobe.
pub const LOBE_LEVEL: f64 = 0.35;

/// The main lobe's pixels (east offset, north offset, value), by flood fill from the centre.
fn main_lobe(psf: &[f64], n: usize) -> Vec<(f64, f64, f64)> {
    let c = n / 2;
    let mut seen = vec![false; n * n];
    let mut stack = vec![(c, c)];
    let mut out = Vec::new();
    while let Some((x, y)) = stack.pop() {
        let i = y * n + x;
        if seen[i] || !(psf[i] >= LOBE_LEVEL) {
            continue;
        }
        seen[i] = true;
        // East is -x (RA increases to the left), north is +y.
        out.push((-(x as f64 - c as f64), y as f64 - c as f64, psf[i]));
        if x > 0 {
            stack.push((x - 1, y));
        }
        if x + 1 < n {
            stack.push((x + 1, y));
        }
        if y > 0 {
            stack.push((x, y - 1));
        }
        if y + 1 < n {
            stack.push((x, y + 1));
        }
    }
    out
}

/// Solves the 3 x 3 system `m x = r` (symmetric, by Cramer's rule); None when singular.
fn solve3(m: [[f64; 3]; 3], r: [f64; 3]) -> Option<[f64; 3]> {
    let det = |a: [[f64; 3]; 3]| {
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    };
    let d = det(m);
    if !d.is_finite() || d.abs() < 1e-300 {
        return None;
    }
    let mut x = [0.0; 3];
    for (k, xk) in x.iter_mut().enumerate() {
        let mut a = m;
        for (row, rv) in a.iter_mut().zip(r) {
            row[k] = rv;
        }
        *xk = det(a) / d;
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Weighted normal equations of `sum w (J . p - y)^2` over the lobe; J = (e^2, e n, n^2).
fn normal_step(
    pts: &[(f64, f64, f64)],
    f: impl Fn(f64, f64, f64) -> (f64, f64),
) -> Option<[f64; 3]> {
    let mut m = [[0.0; 3]; 3];
    let mut r = [0.0; 3];
    for &(e, nn, v) in pts {
        let (w, y) = f(e, nn, v);
        let j = [e * e, e * nn, nn * nn];
        for a in 0..3 {
            r[a] += w * j[a] * y;
            for b in 0..3 {
                m[a][b] += w * j[a] * j[b];
            }
        }
    }
    solve3(m, r)
}

/// The quadratic form (A, B, C) of the Gaussian closest to the lobe; None if it is not an
/// ellipse (too few pixels, or a form that is not positive definite).
fn fit_form(pts: &[(f64, f64, f64)]) -> Option<[f64; 3]> {
    // Off-centre pixels only carry shape (the centre is 1 by normalisation).
    if pts.iter().filter(|p| p.0 != 0.0 || p.1 != 0.0).count() < 3 {
        return None;
    }
    // ln m = -(A e^2 + B e n + C n^2): linear in (A, B, C); weight v^2.
    let mut p = normal_step(pts, |_, _, v| (v * v, -v.ln()))?;
    let sse = |p: &[f64; 3]| -> f64 {
        pts.iter()
            .map(|&(e, nn, v)| {
                (v - (-(p[0] * e * e + p[1] * e * nn + p[2] * nn * nn)).exp()).powi(2)
            })
            .sum()
    };
    let mut cost = sse(&p);
    // Gauss-Newton on v - m: dm/dA = -e^2 m etc., so the step solves
    // sum m^2 J J^T dp = -sum m J (v - m).
    for _ in 0..30 {
        let q = p;
        let Some(dp) = normal_step(pts, |e, nn, v| {
            let m = (-(q[0] * e * e + q[1] * e * nn + q[2] * nn * nn)).exp();
            (m * m, -(v - m) / m.max(1e-300))
        }) else {
            break;
        };
        // Halve the step until the cost does not rise.
        let mut t = 1.0;
        let mut accepted = false;
        for _ in 0..20 {
            let cand = [q[0] + t * dp[0], q[1] + t * dp[1], q[2] + t * dp[2]];
            let c = sse(&cand);
            if c <= cost {
                p = cand;
                accepted = c < cost;
                cost = c;
                break;
            }
            t *= 0.5;
        }
        let small = dp
            .iter()
            .zip(&p)
            .all(|(d, v)| (t * d).abs() <= 1e-10 * v.abs().max(1e-6));
        if !accepted || small {
            break;
        }
    }
    let (a, b, c) = (p[0], p[1], p[2]);
    (a > 0.0 && c > 0.0 && 4.0 * a * c - b * b > 0.0).then_some(p)
}

/// The restoring beam of a PSF (n x n, peak at (n/2, n/2)); see the module's contract.
pub fn fit_beam(psf: &[f64], n: usize) -> Beam {
    let pts = main_lobe(psf, n);
    let Some([a, b, c]) = fit_form(&pts) else {
        // A lobe of fewer than 4 pixels: the beam is not resolved by the pixels.
        return Beam {
            major_px: 1.0,
            minor_px: 1.0,
            pa_deg: 0.0,
        };
    };
    // Q = [[a, b/2], [b/2, c]]: the major axis lies along the smaller eigenvalue.
    let tr = a + c;
    let disc = ((a - c).powi(2) / 4.0 + b * b / 4.0).sqrt();
    let (lmin, lmax) = (tr / 2.0 - disc, tr / 2.0 + disc);
    // Eigenvector of lmin in (east, north).
    let (ve, vn) = if b.abs() > 1e-12 * tr {
        (b / 2.0, lmin - a)
    } else if a <= c {
        (1.0, 0.0)
    } else {
        (0.0, 1.0)
    };
    let fwhm = |l: f64| (4.0 * std::f64::consts::LN_2 / l).sqrt();
    Beam {
        major_px: fwhm(lmin),
        minor_px: fwhm(lmax),
        pa_deg: ve.atan2(vn).to_degrees().rem_euclid(180.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An n x n elliptical Gaussian of peak 1 at (n/2, n/2): FWHMs in pixels, position angle
    /// of the major axis in degrees east of north.
    fn gaussian(n: usize, major: f64, minor: f64, pa_deg: f64) -> Vec<f64> {
        let c = (n / 2) as f64;
        let k = 4.0 * std::f64::consts::LN_2;
        let th = pa_deg.to_radians();
        (0..n * n)
            .map(|i| {
                let (e, nn) = (-((i % n) as f64 - c), (i / n) as f64 - c);
                let along = e * th.sin() + nn * th.cos();
                let across = e * th.cos() - nn * th.sin();
                (-k * (along * along / (major * major) + across * across / (minor * minor))).exp()
            })
            .collect()
    }

    #[test]
    fn recovers_gaussians_of_any_orientation_down_to_two_pixel_minor_axes() {
        // Measured: errors below 1e-6 (the model is exact); asserted at the contract.
        for &(maj, min, pa) in &[
            (8.0, 5.0, 90.0),
            (10.2, 2.45, 110.0),
            (6.0, 2.0, 33.0),
            (4.0, 4.0, 0.0),
            (12.0, 3.0, 0.0),
            (5.0, 3.0, 170.0),
        ] {
            let b = fit_beam(&gaussian(64, maj, min, pa), 64);
            assert!(
                (b.major_px / maj - 1.0).abs() < 5e-3 && (b.minor_px / min - 1.0).abs() < 5e-3,
                "{maj} x {min} at {pa}: {b:?}"
            );
            if maj > min {
                let dpa = (b.pa_deg - pa + 90.0).rem_euclid(180.0) - 90.0;
                assert!(dpa.abs() < 0.5, "{maj} x {min} at {pa}: {b:?}");
            }
        }
    }

    #[test]
    fn a_sidelobe_ring_does_not_widen_the_fit() {
        // A Gaussian main lobe with a 30 % ring outside it: the ring is not connected
        // above the lobe level, so the beam is the lobe's.
        let n = 64;
        let g = gaussian(n, 6.0, 4.0, 45.0);
        let c = (n / 2) as f64;
        let psf: Vec<f64> = g
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let r = (((i % n) as f64 - c).powi(2) + ((i / n) as f64 - c).powi(2)).sqrt();
                v + 0.3 * (-(r - 10.0).powi(2) / 2.0).exp()
            })
            .collect();
        let b = fit_beam(&psf, n);
        assert!(
            (b.major_px / 6.0 - 1.0).abs() < 0.03 && (b.minor_px / 4.0 - 1.0).abs() < 0.03,
            "{b:?}"
        );
    }

    #[test]
    fn an_unresolved_psf_gives_a_one_pixel_beam_not_a_panic() {
        let mut psf = vec![0.0; 16 * 16];
        psf[8 * 16 + 8] = 1.0;
        let b = fit_beam(&psf, 16);
        assert_eq!((b.major_px, b.minor_px), (1.0, 1.0));
        let nan = vec![f64::NAN; 16 * 16];
        let b = fit_beam(&nan, 16);
        assert_eq!((b.major_px, b.minor_px), (1.0, 1.0));
    }
}
