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

/// Median and the normalised median absolute deviation (1.4826 x MAD: sigma for Gaussians).
pub fn median_and_mad_sigma(values: &[f64]) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let med = median_mut(&mut v)?;
    for x in v.iter_mut() {
        *x = (*x - med).abs();
    }
    let mad = median_mut(&mut v)?;
    Some((med, 1.4826 * mad))
}

#[cfg(test)]
mod tests {
    use super::*;

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
