//! The w-stacked gridder against a direct Fourier transform (with w-terms, rephasing and
//! weights): relative L2 error within the requested epsilon.

use contimg::imaging::{GridPair, GridSpec, VisBlock};
use contimg::primitives::C_M_S;
use num_complex::{Complex32, Complex64};
use rand::{Rng, SeedableRng};

struct Problem {
    freqs: Vec<f64>,
    uvw_m: Vec<[f64; 3]>,
    dw_m: Vec<f64>,
    vis: Vec<Complex32>,
    weight: Vec<f32>,
    use_row: Vec<bool>,
}

fn problem(nrow: usize, spec: &GridSpec, wmax_lambda: f64) -> Problem {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let freqs = vec![1.31e9, 1.36e9, 1.42e9, 1.49e9];
    // Keep |u|,|v| inside the grid at the highest frequency.
    let umax = 0.45 / spec.cell_rad * (1.0 - 2.0 * spec.kernel.support as f64 / spec.n_grid as f64);
    let lam_max = 1.49e9 / C_M_S;
    let uvw_m: Vec<[f64; 3]> = (0..nrow)
        .map(|_| {
            [
                rng.random_range(-umax..umax) / lam_max,
                rng.random_range(-umax..umax) / lam_max,
                if wmax_lambda > 0.0 {
                    rng.random_range(-wmax_lambda..wmax_lambda) / lam_max
                } else {
                    0.0
                },
            ]
        })
        .collect();
    let dw_m = (0..nrow)
        .map(|_| {
            if wmax_lambda > 0.0 {
                rng.random_range(-3.0..3.0)
            } else {
                0.0
            }
        })
        .collect();
    let n = nrow * freqs.len() * 2;
    let vis = (0..n)
        .map(|_| Complex32::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
        .collect();
    let weight = (0..n)
        .map(|i| {
            if i % 17 == 0 {
                0.0
            } else {
                rng.random_range(0.5..2.0)
            }
        })
        .collect();
    let use_row = (0..nrow).map(|r| r % 23 != 0).collect();
    Problem {
        freqs,
        uvw_m,
        dw_m,
        vis,
        weight,
        use_row,
    }
}

/// The same visibilities with the channel axis reversed (descending frequency, as DSA-110's
/// correlator writes each subband; WSClean has mis-imaged such input).
fn descending(p: &Problem) -> Problem {
    fn flip<T: Copy>(v: &[T], nch: usize) -> Vec<T> {
        v.chunks(nch * 2)
            .flat_map(|row| {
                (0..nch)
                    .rev()
                    .flat_map(move |c| row[c * 2..c * 2 + 2].to_vec())
            })
            .collect()
    }
    let nch = p.freqs.len();
    Problem {
        freqs: p.freqs.iter().rev().copied().collect(),
        uvw_m: p.uvw_m.clone(),
        dw_m: p.dw_m.clone(),
        vis: flip(&p.vis, nch),
        weight: flip(&p.weight, nch),
        use_row: p.use_row.clone(),
    }
}

/// Direct transform at every pixel, same conventions as the gridder's documentation.
fn dft(spec: &GridSpec, p: &Problem) -> Vec<f64> {
    dft_weighted(spec, p, &vec![1.0; p.freqs.len()], false)
}

/// The direct transform with each channel's visibilities multiplied by `factor` (not the
/// weight sum that normalises); `psf`: unit visibilities.
fn dft_weighted(spec: &GridSpec, p: &Problem, factor: &[f64], psf: bool) -> Vec<f64> {
    let n = spec.n_image;
    let mut img = vec![0.0; n * n];
    let mut sw = 0.0;
    let nch = p.freqs.len();
    for (r, uvw) in p.uvw_m.iter().enumerate() {
        if !p.use_row[r] {
            continue;
        }
        for (c, f) in p.freqs.iter().enumerate() {
            let lam = f / C_M_S;
            let rot = Complex64::from_polar(1.0, -std::f64::consts::TAU * p.dw_m[r] * lam);
            let mut v = Complex64::new(0.0, 0.0);
            for pol in 0..2 {
                let i = (r * nch + c) * 2 + pol;
                let w = p.weight[i] as f64;
                let x = if psf {
                    Complex64::new(1.0, 0.0)
                } else {
                    Complex64::new(p.vis[i].re as f64, p.vis[i].im as f64)
                };
                v += x * w;
                sw += w;
            }
            let v = if psf {
                v * factor[c]
            } else {
                v * rot * factor[c]
            };
            let (u, vv, w) = (uvw[0] * lam, uvw[1] * lam, uvw[2] * lam);
            for y in 0..n {
                for x in 0..n {
                    let l = (n as f64 / 2.0 - x as f64) * spec.cell_rad;
                    let m = (y as f64 - n as f64 / 2.0) * spec.cell_rad;
                    let nm1 = (1.0 - l * l - m * m).sqrt() - 1.0;
                    let ph = -std::f64::consts::TAU * (u * l + vv * m + w * nm1);
                    img[y * n + x] += (v * Complex64::from_polar(1.0, ph)).re;
                }
            }
        }
    }
    img.iter().map(|x| x / sw).collect()
}

fn rel_l2(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

fn check(eps: f64, wmax: f64) -> Vec<f32> {
    check_order(eps, wmax, false)
}

fn check_order(eps: f64, wmax: f64, descend: bool) -> Vec<f32> {
    // A 4-degree field so that w-terms are large: w (n - 1) reaches ~1 turn at wmax = 800.
    let spec = GridSpec::new(64, (4.0f64 / 64.0).to_radians(), eps);
    let mut p = problem(300, &spec, wmax);
    if descend {
        p = descending(&p);
        assert!(p.freqs.windows(2).all(|w| w[1] < w[0]));
    }
    let mut g = GridPair::new(spec);
    // Two blocks: sums over blocks must be exact.
    let half = p.uvw_m.len() / 2;
    let stride = p.freqs.len() * 2;
    for (lo, hi) in [(0, half), (half, p.uvw_m.len())] {
        g.add(&VisBlock {
            freqs: &p.freqs,
            npol: 2,
            uvw_m: &p.uvw_m[lo..hi],
            dw_m: &p.dw_m[lo..hi],
            vis: &p.vis[lo * stride..hi * stride],
            weight: &p.weight[lo * stride..hi * stride],
            use_row: &p.use_row[lo..hi],
        });
    }
    let (dirty, _psf) = g.finish().unwrap();
    let reference = dft(&spec, &p);
    let err = rel_l2(&dirty, &reference);
    println!("epsilon {eps:e}, |w| <= {wmax}, descending {descend}: support {} -> relative L2 error {err:.3e}", spec.kernel.support);
    assert!(err <= eps, "error {err:e} above epsilon {eps:e}");
    dirty
}

/// Descending-frequency input: the same image as ascending input (to rounding) and the
/// direct transform within epsilon, for gridding and degridding.
#[test]
fn descending_frequencies_image_correctly() {
    let up = check_order(1e-5, 800.0, false);
    let down = check_order(1e-5, 800.0, true);
    let scale = up.iter().fold(0.0f32, |a, b| a.max(b.abs()));
    let diff = up
        .iter()
        .zip(&down)
        .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
    assert!(
        diff <= 1e-6 * scale,
        "ascending and descending images differ by {diff} (peak {scale})"
    );
    check_degrid_order(1e-5, true);
}

#[test]
fn gridder_matches_dft_eps_1e2() {
    check(1e-2, 800.0);
}

#[test]
fn gridder_matches_dft_eps_1e4() {
    check(1e-4, 800.0);
}

#[test]
fn gridder_matches_dft_eps_1e6() {
    check(1e-6, 800.0);
}

#[test]
fn gridder_matches_dft_coplanar() {
    check(1e-5, 0.0);
}

#[test]
fn psf_peaks_at_one_at_the_centre() {
    let spec = GridSpec::new(64, (4.0f64 / 64.0).to_radians(), 1e-5);
    let p = problem(200, &spec, 300.0);
    let mut g = GridPair::new(spec);
    g.add(&VisBlock {
        freqs: &p.freqs,
        npol: 2,
        uvw_m: &p.uvw_m,
        dw_m: &p.dw_m,
        vis: &p.vis,
        weight: &p.weight,
        use_row: &p.use_row,
    });
    let (_, psf) = g.finish().unwrap();
    let centre = psf[32 * 64 + 32];
    assert!((centre - 1.0).abs() < 1e-4, "PSF centre {centre}");
    assert!(psf.iter().all(|&v| v <= centre + 1e-6));
}

/// Multi-term MFS images: the x-weighted dirty image and the x^2-weighted PSF,
/// x = (nu - ref) / ref, against the direct transform.
#[test]
fn spectral_term_images_match_dft() {
    let eps = 1e-5;
    let spec = GridSpec::new(64, (4.0f64 / 64.0).to_radians(), eps);
    let p = problem(300, &spec, 800.0);
    let ref_hz = 1.4e9;
    let mut g = GridPair::spectral(spec, ref_hz, Some(1), Some(2));
    g.add(&VisBlock {
        freqs: &p.freqs,
        npol: 2,
        uvw_m: &p.uvw_m,
        dw_m: &p.dw_m,
        vis: &p.vis,
        weight: &p.weight,
        use_row: &p.use_row,
    });
    let (dirty, psf) = g.finish().unwrap();
    let x: Vec<f64> = p.freqs.iter().map(|f| (f - ref_hz) / ref_hz).collect();
    let e1 = rel_l2(&dirty, &dft_weighted(&spec, &p, &x, false));
    let x2: Vec<f64> = x.iter().map(|v| v * v).collect();
    let e2 = rel_l2(&psf, &dft_weighted(&spec, &p, &x2, true));
    println!("spectral terms: x-weighted dirty error {e1:.2e}, x^2-weighted PSF error {e2:.2e}");
    assert!(e1 <= eps && e2 <= eps, "{e1} {e2}");
}

/// Degridding a model image against the direct transform, in the data's phasing.
fn check_degrid(eps: f64) {
    check_degrid_order(eps, false);
}

fn check_degrid_order(eps: f64, descend: bool) {
    let spec = GridSpec::new(64, (4.0f64 / 64.0).to_radians(), eps);
    let mut p = problem(200, &spec, 800.0);
    if descend {
        p = descending(&p);
    }
    let n = spec.n_image;
    let mut model = vec![0.0; n * n];
    for (i, &(x, y, f)) in [
        (10usize, 50usize, 1.0),
        (32, 32, 2.5),
        (55, 7, -0.7),
        (40, 20, 0.3),
    ]
    .iter()
    .enumerate()
    {
        model[y * n + x] = f + i as f64 * 0.01;
    }
    let b = VisBlock {
        freqs: &p.freqs,
        npol: 2,
        uvw_m: &p.uvw_m,
        dw_m: &p.dw_m,
        vis: &p.vis,
        weight: &p.weight,
        use_row: &p.use_row,
    };
    let got = contimg::imaging::degridder::degrid(&spec, &model, &b);
    let (mut num, mut den) = (0.0, 0.0);
    for (r, uvw) in p.uvw_m.iter().enumerate() {
        if !p.use_row[r] {
            continue;
        }
        for (c, f) in p.freqs.iter().enumerate() {
            let lam = f / C_M_S;
            let (u, v, w) = (uvw[0] * lam, uvw[1] * lam, uvw[2] * lam);
            let mut want = Complex64::new(0.0, 0.0);
            for y in 0..n {
                for x in 0..n {
                    let i = model[y * n + x];
                    if i == 0.0 {
                        continue;
                    }
                    let l = (n as f64 / 2.0 - x as f64) * spec.cell_rad;
                    let m = (y as f64 - n as f64 / 2.0) * spec.cell_rad;
                    let nm1 = (1.0 - l * l - m * m).sqrt() - 1.0;
                    want += i * Complex64::from_polar(
                        1.0,
                        std::f64::consts::TAU * (u * l + v * m + w * nm1),
                    );
                }
            }
            want *= Complex64::from_polar(1.0, std::f64::consts::TAU * p.dw_m[r] * lam);
            let g = got[r * p.freqs.len() + c];
            num += (Complex64::new(g.re as f64, g.im as f64) - want).norm_sqr();
            den += want.norm_sqr();
        }
    }
    let err = (num / den).sqrt();
    println!(
        "degrid epsilon {eps:e}, descending {descend}: support {} -> relative L2 error {err:.3e}",
        spec.kernel.support
    );
    assert!(
        err <= eps.max(2e-7),
        "degridding error {err:e} above epsilon {eps:e}"
    );
}

#[test]
fn degridder_matches_dft_eps_1e3() {
    check_degrid(1e-3);
}

/// Support 6: the planes are transformed in f32.
#[test]
fn degridder_matches_dft_eps_1e4() {
    check_degrid(1e-4);
}

#[test]
fn degridder_matches_dft_eps_1e5() {
    check_degrid(1e-5);
}
