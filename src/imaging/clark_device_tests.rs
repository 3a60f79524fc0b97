//! Clark's minor cycles with the residual images held on a device
//! (`compute::device_residual`) against the same device's minor cycles with the images on
//! the host: the same components and residuals, and after the device is lost part-way, the
//! same to the rounding of one convolution.

use super::*;
use crate::compute::device::Gpu;
use crate::compute::failing_device::Failing;

/// A 48 x 48 image's PSFs (2n x 2n, peak 1 at (n, n): a Gaussian main lobe with ringing
/// sidelobes; for two terms the x-weighted ones smaller) and a residual of six sources
/// through them plus a low ripple.
fn fixture(nt: usize) -> (usize, Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let n = 48;
    let m = 2 * n;
    let psfs: Vec<Vec<f64>> = (0..2 * nt - 1)
        .map(|k| {
            let scale = [1.0, 0.12, 0.45][k];
            (0..m * m)
                .map(|i| {
                    let (x, y) = ((i % m) as f64 - n as f64, (i / m) as f64 - n as f64);
                    let r2 = x * x + y * y;
                    scale * ((-r2 / 8.0).exp() + 0.15 * (0.7 * x).cos() * (-r2 / 400.0).exp())
                        / 1.15
                })
                .collect()
        })
        .collect();
    let sources = [
        (10, 12, 1.0),
        (30, 20, -0.4),
        (24, 24, 0.7),
        (40, 5, 0.25),
        (5, 40, 0.3),
        (33, 33, 0.5),
    ];
    let residuals = (0..nt)
        .map(|t| {
            (0..n * n)
                .map(|i| {
                    let (x, y) = ((i % n) as i64, (i / n) as i64);
                    let mut v = 0.003 * ((x * 7 + y * 3) as f64 * 0.31).sin();
                    for &(sx, sy, f) in &sources {
                        let (dx, dy) = ((x - sx + n as i64) as usize, (y - sy + n as i64) as usize);
                        v += f * (1.0 - 0.3 * t as f64) * psfs[t][dy * m + dx];
                    }
                    v
                })
                .collect()
        })
        .collect();
    (n, psfs, residuals)
}

/// The outcome of one minor cycle: components per term, residuals, iterations, last peak.
type Outcome = (Vec<Vec<f64>>, Vec<Vec<f64>>, usize, f64);

fn minor_cycle(nt: usize, compute: &dyn Compute, gpu: &Gpu) -> Outcome {
    let (n, psfs, mut residuals) = fixture(nt);
    let cps: Vec<ClarkPsf> = psfs.iter().map(|p| ClarkPsf::new(p, n, 6, gpu)).collect();
    // Components only away from the border and outside a 6 x 6 box (a clean mask).
    let eligible = |i: usize| {
        let (x, y) = (i % n, i / n);
        (2..n - 2).contains(&x)
            && (2..n - 2).contains(&y)
            && !((20..26).contains(&x) && (4..10).contains(&y))
    };
    let start = residuals[0].iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let r = Round {
        gain: 0.1,
        niter: 1000,
        half_patch: 6,
        floor: 0.0,
        mgain_stop: 0.01 * start,
        deep: None,
        start,
        eligible: &eligible,
    };
    let mut models = vec![vec![0.0; n * n]; nt];
    let mut deltas = vec![vec![0.0; n * n]; nt];
    let mut iterations = 0;
    let last = clark(
        &mut residuals,
        &psfs,
        n,
        &cps,
        &r,
        &mut iterations,
        &mut models,
        &mut deltas,
        compute,
    );
    (models, residuals, iterations, last)
}

fn largest_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn held_residual_images_clean_as_the_host() {
    let Some(gpu) = crate::compute::device::tests::device() else {
        return;
    };
    for nt in [1, 2] {
        let on_host = Failing::new(&gpu, 0);
        let want = minor_cycle(nt, &on_host, &gpu);
        assert!(want.2 > 20, "{nt} terms: {} iterations", want.2);
        let held = Failing::new(&gpu, usize::MAX);
        let got = minor_cycle(nt, &held, &gpu);
        let calls = held.calls();
        eprintln!(
            "{nt} terms: {} iterations, {calls} calls on the held images",
            want.2
        );
        assert!(calls > 5, "{nt} terms: held images used ({calls} calls)");
        assert_eq!(got.2, want.2, "{nt} terms: iterations");
        assert_eq!(got.3.to_bits(), want.3.to_bits(), "{nt} terms: last peak");
        assert_eq!(got.0, want.0, "{nt} terms: components");
        assert_eq!(got.1, want.1, "{nt} terms: residuals");
        // Lost at the second round's peak (the first on the held copy), in its list, in a
        // later call, at the fetch.
        for fail_at in [1, 2, calls / 2, calls] {
            let lost = Failing::new(&gpu, fail_at);
            let got = minor_cycle(nt, &lost, &gpu);
            let (dm, dr) = (
                largest_difference(&got.0, &want.0),
                largest_difference(&got.1, &want.1),
            );
            eprintln!("{nt} terms, lost at call {fail_at}: components within {dm:.1e}, residuals {dr:.1e}");
            assert_eq!(got.2, want.2, "{nt} terms, lost at {fail_at}: iterations");
            assert!(
                dm < 1e-12 && dr < 1e-12,
                "{nt} terms, lost at {fail_at}: {dm} {dr}"
            );
        }
    }
}
