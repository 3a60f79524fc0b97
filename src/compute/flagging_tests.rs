//! Unit tests of the flagging algorithms (src/compute/flagging.rs).
use super::*;

#[test]
fn eight_lane_local_fits_are_bit_for_bit_the_scalar_ones() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut next = || rng.random::<f32>();
    // Flag rates: most windows flagged, most windows not (their weight sums are the
    // kernel's own).
    for (nt, nf, st, sf, rate) in [
        (24, 768, 3.1, 8.2, 0.1),
        (24, 768, 3.1, 8.2, 0.001),
        (7, 40, 1.5, 2.5, 0.1),
        (5, 45, 2.0, 3.0, 0.1),
        (3, 5, 2.0, 9.0, 0.1),
        (24, 96, 0.0, 4.0, 0.1),
        (24, 96, 1.0, 4.0, 0.0),
    ] {
        let values: Vec<f32> = (0..nt * nf).map(|_| 10.0 * next()).collect();
        // Flags in runs and singles; NaN under some flags (it must not leak).
        let mut flags: Vec<bool> = (0..nt * nf).map(|_| next() < rate).collect();
        flags
            .iter_mut()
            .skip(nf / 2)
            .take(nf / 3)
            .for_each(|f| *f = true);
        let values: Vec<f32> = values
            .iter()
            .zip(&flags)
            .enumerate()
            .map(|(i, (&v, &f))| if f && i % 3 == 0 { f32::NAN } else { v })
            .collect();
        for (a, b) in [
            // The dispatched build (AVX2 where the CPU has it) too.
            (
                masked_smooth(&values, &flags, nt, nf, st, sf, false),
                masked_smooth_lines::<false>(&values, &flags, nt, nf, st, sf, false),
            ),
            (
                masked_smooth(&values, &flags, nt, nf, st, sf, true),
                masked_smooth_lines::<true>(&values, &flags, nt, nf, st, sf, false),
            ),
            (
                masked_smooth_lines::<false>(&values, &flags, nt, nf, st, sf, true),
                masked_smooth_lines::<false>(&values, &flags, nt, nf, st, sf, false),
            ),
            (
                masked_smooth_lines::<true>(&values, &flags, nt, nf, st, sf, true),
                masked_smooth_lines::<true>(&values, &flags, nt, nf, st, sf, false),
            ),
        ] {
            assert!(a.iter().all(|x| x.is_finite()), "{nt}x{nf}");
            assert_eq!(
                a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{nt}x{nf}"
            );
        }
    }
}

/// The first pass's binary-weight lines (weight sums by subtraction) against the scalar
/// loop: every window without a missing tap bit for bit, the rest within f64 rounding
/// (values relative to the line's level, weights to the kernel's sum: seeds 21-24 gave
/// at most 2.6e-13; asserted 1e-12; the outputs are f32),
/// windows with no unflagged sample 0 with weight 0; flags in runs, singles and whole
/// lines, kernels longer than the line.
#[test]
fn binary_weight_lines_are_the_scalar_fits_to_rounding() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    for (n, sigma, rate) in [
        (768, 8.2, 0.05),
        (768, 8.2, 0.0),
        (96, 4.0, 0.3),
        (45, 3.0, 0.1),
        (5, 9.0, 0.2),
        (40, 2.5, 1.0),
    ] {
        let kern = gaussian_taps(sigma);
        for linear in [false, true] {
            let mut flagged: Vec<bool> = (0..n).map(|_| rng.random::<f64>() < rate).collect();
            flagged
                .iter_mut()
                .skip(n / 3)
                .take(n / 7)
                .for_each(|f| *f = true);
            let v: Vec<f64> = (0..n)
                .map(|i| {
                    if flagged[i] {
                        0.0
                    } else {
                        10.0 + 3.0 * rng.random::<f64>() + 0.01 * i as f64
                    }
                })
                .collect();
            let w: Vec<f64> = flagged.iter().map(|&f| if f { 0.0 } else { 1.0 }).collect();
            let (mut av, mut aw) = (vec![0.0; n], vec![0.0; n]);
            let (mut bv, mut bw) = (vec![0.0; n], vec![0.0; n]);
            let mut scratch = BinaryScratch::default();
            if linear {
                let bk = BinaryKernel::new::<true>(&kern, n);
                binary_fit_line::<true>(&v, &flagged, &bk, &mut scratch, &mut av, &mut aw);
                local_linear_line::<true>(&v, &w, 1, n, &kern, &mut bv, &mut bw);
            } else {
                let bk = BinaryKernel::new::<false>(&kern, n);
                binary_fit_line::<false>(&v, &flagged, &bk, &mut scratch, &mut av, &mut aw);
                local_linear_line::<false>(&v, &w, 1, n, &kern, &mut bv, &mut bw);
            }
            let h = kern.len() / 2;
            for i in 0..n {
                let window = i.saturating_sub(h)..(i + h + 1).min(n);
                let err = ((av[i] - bv[i]) / 13.0)
                    .abs()
                    .max((aw[i] - bw[i]).abs() / kern.iter().sum::<f64>());
                assert!(
                    err < 1e-12,
                    "n {n} linear {linear} i {i}: {} vs {}, weight {} vs {}",
                    av[i],
                    bv[i],
                    aw[i],
                    bw[i]
                );
                if window.len() == kern.len() && !flagged[window.clone()].iter().any(|&f| f) {
                    assert_eq!(
                        (av[i].to_bits(), aw[i].to_bits()),
                        (bv[i].to_bits(), bw[i].to_bits()),
                        "n {n} i {i}"
                    );
                }
                if flagged[window].iter().all(|&f| f) {
                    assert_eq!((av[i], aw[i]), (0.0, 0.0), "n {n} i {i}");
                }
            }
        }
    }
}

#[test]
fn sumthreshold_finds_a_weak_long_line_but_not_noise() {
    let (nt, nf) = (24, 64);
    let mut v = vec![0f32; nt * nf];
    // Deterministic pseudo-noise in [-1, 1].
    for (i, x) in v.iter_mut().enumerate() {
        *x = (((i * 7919) % 1000) as f32 / 500.0) - 1.0;
    }
    // A weak persistent channel: 2 units over all times (below chi_1 = 6).
    for t in 0..nt {
        v[t * nf + 20] += 2.0;
    }
    let flags = vec![false; nt * nf];
    let out = sumthreshold_plane(&v, &flags, nt, nf, 6.0, 1.5, 16, 32);
    assert!((0..nt).all(|t| out[t * nf + 20]), "persistent line found");
    let false_flags = out
        .iter()
        .enumerate()
        .filter(|(i, &f)| f && i % nf != 20)
        .count();
    assert_eq!(false_flags, 0);
}

#[test]
fn sumthreshold_on_all_columns_is_the_line_one_per_column() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let (nt, nf) = (24, 37);
    let v: Vec<f32> = (0..nt * nf)
        .map(|_| rng.random::<f32>() * 4.0 - 1.0)
        .collect();
    let fl: Vec<bool> = (0..nt * nf).map(|_| rng.random::<f32>() < 0.05).collect();
    for m in [1, 2, 3, 8, 24, 25] {
        let mut a = fl.clone();
        sumthreshold_columns(&v, &fl, nt, nf, m, 1.2, &mut a);
        let mut b = fl.clone();
        for f in 0..nf {
            sumthreshold_line(&v, &fl, f, nf, nt, m, 1.2, &mut b);
        }
        assert_eq!(a, b, "m {m}");
        assert!(m > nt || m > 2 || a != fl, "m {m} found something");
    }
}

#[test]
fn sir_fills_gaps_and_extends_edges() {
    // eta = 0.2: a window of 5 with 4 flagged is flagged entirely.
    let mut f = vec![
        false, true, true, false, true, true, false, false, false, false,
    ];
    sir_line(&mut f, 0, 1, 10, 0.2);
    assert_eq!(&f[..7], &[false, true, true, true, true, true, false]);
    assert!(!f[9]);
    let mut none = vec![false; 10];
    sir_line(&mut none, 0, 1, 10, 0.2);
    assert!(none.iter().all(|&x| !x));
}

#[test]
fn trimmed_sir_fills_gaps_but_does_not_extend_runs() {
    // A run of 8 with one gap, then clean samples: plain SIR extends it past its end.
    let orig = [
        false, false, false, true, true, true, false, true, true, true, true, false, false, false,
        false,
    ];
    let mut plain = orig.to_vec();
    sir_line(&mut plain, 0, 1, orig.len(), 0.2);
    assert!(plain[11], "plain SIR extends: {plain:?}");
    let mut trimmed = plain.clone();
    trim_sir_line(&mut trimmed, &orig, 0, 1, orig.len());
    let expect: Vec<bool> = (0..orig.len()).map(|i| (3..=10).contains(&i)).collect();
    assert_eq!(trimmed, expect);
}

#[test]
fn background_follows_slopes_to_the_edges() {
    let (nt, nf) = (24, 16);
    let v: Vec<f32> = (0..nt * nf)
        .map(|i| 2.0 + 0.3 * (i / nf) as f32 - 0.1 * (i % nf) as f32)
        .collect();
    let bg = masked_smooth(&v, &vec![false; nt * nf], nt, nf, 3.0, 4.0, true);
    for (a, b) in v.iter().zip(&bg) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn masked_background_ignores_flagged_spikes() {
    let (nt, nf) = (4, 32);
    let mut v = vec![1f32; nt * nf];
    let mut fl = vec![false; nt * nf];
    v[2 * nf + 10] = 1000.0;
    fl[2 * nf + 10] = true;
    let bg = masked_gaussian(&v, &fl, nt, nf, 1.0, 3.0);
    assert!(bg.iter().all(|&x| (x - 1.0).abs() < 1e-6));
}
