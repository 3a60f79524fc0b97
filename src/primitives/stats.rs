//! Robust statistics.

/// Median of a slice (reorders it). NaNs must be removed by the caller. Empty -> None.
pub fn median_mut(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    let m = *m;
    if n % 2 == 1 {
        Some(m)
    } else {
        let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(0.5 * (lower + m))
    }
}

/// Arrays from this length on take the parallel selection in [`median_and_mad_sigma`].
const PARALLEL_MIN: usize = 1 << 20;

/// Median and the normalised median absolute deviation (1.4826 x MAD: sigma for Gaussians)
/// of the finite values. Large arrays (an image) by parallel radix selection over the data
/// in place, the same result bit for bit.
pub fn median_and_mad_sigma(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() >= PARALLEL_MIN {
        return median_and_mad_sigma_by64(values.len(), |i| values[i]);
    }
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    median_and_mad_sigma_mut(&mut v)
}

/// As [`median_and_mad_sigma`] on finite values, reordering and overwriting them (no copy:
/// for callers that reuse one scratch buffer).
pub fn median_and_mad_sigma_mut(v: &mut [f64]) -> Option<(f64, f64)> {
    let med = median_mut(v)?;
    for x in v.iter_mut() {
        *x = (*x - med).abs();
    }
    let mad = median_mut(v)?;
    Some((med, 1.4826 * mad))
}

/// The (k-1)-th and k-th smallest (0-based) of `n` u64 keys, exactly, without copying
/// them all: parallel histograms of the next 16 key bits narrow the range holding the k-th
/// until at most 2^20 keys share its prefix; those are gathered and selected. The (k-1)-th
/// is among them too unless the k-th opens its range (then one pass takes the largest
/// key below it).
fn select_key(n: usize, key: impl Fn(usize) -> u64 + Sync, k: usize) -> (Option<u64>, u64) {
    use rayon::prelude::*;
    const STEP: u32 = 16;
    let (mut prefix, mut known, mut r, mut count) = (0u64, 0u32, k, n);
    let inside = |x: u64, prefix: u64, known: u32| known == 0 || x >> (64 - known) == prefix;
    while count > 1 << 20 && known < 64 {
        let shift = 64 - known - STEP;
        let hist = (0..n)
            .into_par_iter()
            .with_min_len(1 << 16)
            .fold(
                || vec![0usize; 1 << STEP],
                |mut h, i| {
                    let x = key(i);
                    if inside(x, prefix, known) {
                        h[((x >> shift) & 0xffff) as usize] += 1;
                    }
                    h
                },
            )
            .reduce(
                || vec![0usize; 1 << STEP],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        let mut bucket = 0;
        while r >= hist[bucket] {
            r -= hist[bucket];
            bucket += 1;
        }
        prefix = (prefix << STEP) | bucket as u64;
        known += STEP;
        count = hist[bucket];
    }
    let mut cand: Vec<u64> = (0..n)
        .into_par_iter()
        .map(&key)
        .filter(|&x| inside(x, prefix, known))
        .collect();
    let (below, kth, _) = cand.select_nth_unstable(r);
    let kth = *kth;
    let prev = match (r, k) {
        (0, 0) => None,
        (0, _) => (0..n).into_par_iter().map(&key).filter(|&x| x < kth).max(),
        _ => below.iter().max().copied(),
    };
    (prev, kth)
}

/// An order-preserving map of f64 onto u64 (negatives below positives).
fn f64_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

fn key_f64(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// As [`median_and_mad_sigma`] of the values as f64 (the same result, bit for bit), for
/// arrays of a whole group: parallel radix selection over the data in place instead of a
/// copy, a sort and a serial selection. Non-finite values are left out.
pub fn median_and_mad_sigma_par(values: &[f32]) -> Option<(f64, f64)> {
    median_and_mad_sigma_by(values.len(), |i| values[i])
}

/// As [`median_and_mad_sigma_par`] of `len` values given by `value(i)` (computed again on
/// each of the selection's few passes instead of stored: no array of a group's size).
pub fn median_and_mad_sigma_by(
    len: usize,
    value: impl Fn(usize) -> f32 + Sync,
) -> Option<(f64, f64)> {
    median_and_mad_sigma_by64(len, |i| value(i) as f64)
}

/// As [`median_and_mad_sigma_by`] of f64 values.
fn median_and_mad_sigma_by64(
    len: usize,
    value: impl Fn(usize) -> f64 + Sync,
) -> Option<(f64, f64)> {
    use rayon::prelude::*;
    let finite = |i: usize| value(i).is_finite();
    let n = (0..len).into_par_iter().filter(|&i| finite(i)).count();
    if n == 0 {
        return None;
    }
    // Non-finite values get the largest key, beyond every finite one, so the k-th
    // smallest for k < n is among the finite values.
    let median_of = |key: &(dyn Fn(usize) -> u64 + Sync)| {
        let (lower, m) = select_key(len, key, n / 2);
        match lower {
            Some(l) if n % 2 == 0 => 0.5 * (key_f64(l) + key_f64(m)),
            _ => key_f64(m),
        }
    };
    let med = median_of(&|i| {
        let x = value(i);
        if x.is_finite() {
            f64_key(x)
        } else {
            u64::MAX
        }
    });
    let mad = median_of(&|i| {
        let x = value(i);
        if x.is_finite() {
            f64_key((x - med).abs())
        } else {
            u64::MAX
        }
    });
    Some((med, 1.4826 * mad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_median_and_mad_equal_the_serial_ones_bit_for_bit() {
        // Ties, negatives, zeros of both signs, non-finite values, odd and even counts.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12345);
        let mut next = || rng.random::<f32>();
        for n in [
            1usize, 2, 3, 10, 1001, 200_000, 200_001, 3_000_000, 3_000_001,
        ] {
            let v: Vec<f32> = (0..n)
                .map(|i| match i % 97 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => -0.0,
                    3 => 0.0,
                    4 => 1.5,
                    _ => (next() - 0.3) * 10.0,
                })
                .collect();
            let mut as64: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            // f64 values that no f32 holds, on the large arrays' parallel path.
            let wide: Vec<f64> = as64.iter().map(|x| x * (1.0 + 1e-12)).collect();
            as64.retain(|x| x.is_finite());
            let serial = median_and_mad_sigma_mut(&mut as64.clone());
            let parallel = median_and_mad_sigma_par(&v);
            let mut wide_finite: Vec<f64> =
                wide.iter().copied().filter(|x| x.is_finite()).collect();
            let (wide_serial, wide_par) = (
                median_and_mad_sigma_mut(&mut wide_finite),
                median_and_mad_sigma(&wide),
            );
            assert_eq!(
                wide_serial.map(|(m, s)| (m.to_bits(), s.to_bits())),
                wide_par.map(|(m, s)| (m.to_bits(), s.to_bits())),
                "n {n}, f64 values"
            );
            match (serial, parallel) {
                (Some((m1, s1)), Some((m2, s2))) => {
                    assert_eq!(
                        (m1.to_bits(), s1.to_bits()),
                        (m2.to_bits(), s2.to_bits()),
                        "n {n}: {m1} {s1} vs {m2} {s2}"
                    );
                }
                (a, b) => assert_eq!(a.is_none(), b.is_none(), "n {n}"),
            }
        }
        assert!(median_and_mad_sigma_par(&[f32::NAN, f32::INFINITY]).is_none());
        // Beyond 2^20 keys of one value: the histograms run out of bits before the range
        // is small enough.
        let same = vec![2.5f32; 1 << 21];
        assert_eq!(median_and_mad_sigma_par(&same), Some((2.5, 0.0)));
    }

    #[test]
    fn median_and_mad() {
        let mut v = vec![3.0, 1.0, 2.0, 10.0];
        assert_eq!(median_mut(&mut v), Some(2.5));
        let (m, s) = median_and_mad_sigma(&[1.0, 2.0, 3.0, 4.0, 100.0, f64::NAN]).unwrap();
        assert_eq!(m, 3.0);
        assert!((s - 1.4826).abs() < 1e-12);
        assert!(median_and_mad_sigma(&[]).is_none());
    }
}
