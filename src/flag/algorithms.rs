//! Flagging algorithms on 2-D (time x frequency) planes, row-major `[t * nf + f]`:
//! masked Gaussian background, SumThreshold (Offringa et al. 2010) and the scale-invariant
//! rank (SIR) operator (Offringa et al. 2012).

/// Masked, separable Gaussian smoothing: the local weighted mean of unflagged samples
/// (sigmas in samples along time and frequency). Flagged samples get the smooth surface too.
pub fn masked_gaussian(values: &[f32], flags: &[bool], nt: usize, nf: usize, sigma_t: f64, sigma_f: f64) -> Vec<f32> {
    let kern = |sigma: f64| -> Vec<f64> {
        if sigma <= 0.0 {
            return vec![1.0];
        }
        let half = (3.0 * sigma).ceil() as i64;
        (-half..=half).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect()
    };
    let (kt, kf) = (kern(sigma_t), kern(sigma_f));
    let (ht, hf) = ((kt.len() / 2) as i64, (kf.len() / 2) as i64);
    // Along frequency: weighted sums of values and of weights.
    let mut sv = vec![0.0f64; nt * nf];
    let mut sw = vec![0.0f64; nt * nf];
    for t in 0..nt {
        for f in 0..nf {
            let (mut a, mut b) = (0.0, 0.0);
            for (k, &w) in kf.iter().enumerate() {
                let ff = f as i64 + k as i64 - hf;
                if ff < 0 || ff >= nf as i64 {
                    continue;
                }
                let i = t * nf + ff as usize;
                if !flags[i] {
                    a += w * values[i] as f64;
                    b += w;
                }
            }
            sv[t * nf + f] = a;
            sw[t * nf + f] = b;
        }
    }
    // Along time on both sums, then divide.
    let mut out = vec![0f32; nt * nf];
    for t in 0..nt {
        for f in 0..nf {
            let (mut a, mut b) = (0.0, 0.0);
            for (k, &w) in kt.iter().enumerate() {
                let tt = t as i64 + k as i64 - ht;
                if tt < 0 || tt >= nt as i64 {
                    continue;
                }
                a += w * sv[tt as usize * nf + f];
                b += w * sw[tt as usize * nf + f];
            }
            out[t * nf + f] = if b > 0.0 { (a / b) as f32 } else { 0.0 };
        }
    }
    out
}

/// SumThreshold along one line (`stride` apart, `n` samples): flags every window of
/// length `m` whose mean exceeds `threshold`, counting already-flagged samples at the
/// threshold value (so they neither hide nor create detections). `new_flags` receives the
/// detections (it may alias nothing; `flags` is read only).
pub fn sumthreshold_line(values: &[f32], flags: &[bool], start: usize, stride: usize, n: usize, m: usize, threshold: f32, new_flags: &mut [bool]) {
    if m == 0 || m > n {
        return;
    }
    let val = |i: usize| {
        let k = start + i * stride;
        if flags[k] {
            threshold
        } else {
            values[k]
        }
    };
    let mut sum: f32 = (0..m).map(val).sum();
    let limit = threshold * m as f32;
    for s in 0..=(n - m) {
        if s > 0 {
            sum += val(s + m - 1) - val(s - 1);
        }
        if sum > limit {
            for i in s..s + m {
                new_flags[start + i * stride] = true;
            }
        }
    }
}

/// SumThreshold over a plane along both axes for window lengths 1, 2, 4, ... up to the
/// limits, thresholds chi_1 / rho^log2(M) (AOFlagger's schedule), in units of `values`.
/// Returns the combined flags (existing flags included).
pub fn sumthreshold_plane(values: &[f32], flags: &[bool], nt: usize, nf: usize, chi1: f32, rho: f32, max_m_time: usize, max_m_freq: usize) -> Vec<bool> {
    let mut cur = flags.to_vec();
    let mut m = 1usize;
    while m <= max_m_time.max(max_m_freq) {
        let thr = chi1 / rho.powf((m as f32).log2());
        let mut new = cur.clone();
        if m <= max_m_freq {
            for t in 0..nt {
                sumthreshold_line(values, &cur, t * nf, 1, nf, m, thr, &mut new);
            }
        }
        if m <= max_m_time {
            for f in 0..nf {
                sumthreshold_line(values, &cur, f, nf, nt, m, thr, &mut new);
            }
        }
        cur = new;
        m *= 2;
    }
    cur
}

/// Scale-invariant rank operator along one line: a sample is flagged when some window
/// containing it has at least a fraction (1 - eta) flagged. Linear time via prefix sums.
pub fn sir_line(flags: &mut [bool], start: usize, stride: usize, n: usize, eta: f64) {
    if n == 0 {
        return;
    }
    // y_i = f_i - (1 - eta); position j is flagged iff max_{b>=j} P(b+1) - min_{a<=j} P(a) >= 0.
    let mut p = vec![0.0f64; n + 1];
    for i in 0..n {
        let f = if flags[start + i * stride] { 1.0 } else { 0.0 };
        p[i + 1] = p[i] + f - (1.0 - eta);
    }
    let mut min_left = vec![0.0f64; n];
    let mut m = f64::INFINITY;
    for j in 0..n {
        m = m.min(p[j]);
        min_left[j] = m;
    }
    let mut max_right = f64::NEG_INFINITY;
    for j in (0..n).rev() {
        max_right = max_right.max(p[j + 1]);
        if max_right - min_left[j] >= -1e-12 {
            flags[start + j * stride] = true;
        }
    }
}

/// SIR along both axes of a plane.
pub fn sir_plane(flags: &mut [bool], nt: usize, nf: usize, eta: f64) {
    if eta <= 0.0 {
        return;
    }
    let before = flags.to_vec();
    let mut by_time = before.clone();
    for t in 0..nt {
        sir_line(flags, t * nf, 1, nf, eta);
    }
    for f in 0..nf {
        sir_line(&mut by_time, f, nf, nt, eta);
    }
    for (a, b) in flags.iter_mut().zip(by_time) {
        *a |= b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let false_flags = out.iter().enumerate().filter(|(i, &f)| f && i % nf != 20).count();
        assert_eq!(false_flags, 0);
    }

    #[test]
    fn sir_fills_gaps_and_extends_edges() {
        // eta = 0.2: a window of 5 with 4 flagged is flagged entirely.
        let mut f = vec![false, true, true, false, true, true, false, false, false, false];
        sir_line(&mut f, 0, 1, 10, 0.2);
        assert_eq!(&f[..7], &[false, true, true, true, true, true, false]);
        assert!(!f[9]);
        let mut none = vec![false; 10];
        sir_line(&mut none, 0, 1, 10, 0.2);
        assert!(none.iter().all(|&x| !x));
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
}
