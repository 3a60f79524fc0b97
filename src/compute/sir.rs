//! SIR dilation (the scale-invariant rank operator, Offringa et al. 2012) of flag planes,
//! along both axes: the CPU twin of `kernels/sir.cu`.

/// Scale-invariant rank operator along one line: a sample is flagged when some window
/// containing it has at least a fraction (1 - eta) flagged. Linear time via prefix sums.
pub fn sir_line(flags: &mut [bool], start: usize, stride: usize, n: usize, eta: f64) {
    sir_line_with(flags, start, stride, n, eta, &mut Vec::new());
}

/// `sir_line` with a scratch buffer the caller reuses from line to line (sir.cu's order of
/// operations: the same prefix sums, so the same flags).
pub fn sir_line_with(
    flags: &mut [bool],
    start: usize,
    stride: usize,
    n: usize,
    eta: f64,
    top: &mut Vec<f64>,
) {
    if n == 0 {
        return;
    }
    // y_i = f_i - (1 - eta), P(0) = 0, P(j + 1) = P(j) + y_j; position j is flagged iff
    // max_{b>j} P(b) - min_{a<=j} P(a) >= 0. top[j] = P(j + 1), then its suffix maxima.
    let keep = 1.0 - eta;
    let at = |j: usize| start + j * stride;
    top.clear();
    let mut p = 0.0f64;
    for j in 0..n {
        p = p + if flags[at(j)] { 1.0 } else { 0.0 } - keep;
        top.push(p);
    }
    let mut mx = f64::NEG_INFINITY;
    for t in top.iter_mut().rev() {
        mx = mx.max(*t);
        *t = mx;
    }
    let (mut mn, mut p) = (f64::INFINITY, 0.0f64);
    for (j, &t) in top.iter().enumerate() {
        mn = mn.min(p);
        let f = flags[at(j)];
        p = p + if f { 1.0 } else { 0.0 } - keep;
        if t - mn >= -1e-12 {
            flags[at(j)] = true;
        }
    }
}

/// Limits SIR's additions along one line to the gaps between the original flags: each run
/// of flagged samples is cut back to the span from its first to its last originally flagged
/// sample (SIR otherwise extends a run of length L by up to eta L / (1 - eta) beyond each
/// end, whatever lies there).
pub fn trim_sir_line(flags: &mut [bool], orig: &[bool], start: usize, stride: usize, n: usize) {
    let at = |i: usize| start + i * stride;
    let mut i = 0;
    while i < n {
        if !flags[at(i)] {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < n && flags[at(j)] {
            j += 1;
        }
        // Run [i, j): keep [first, last] original flags.
        let first = (i..j).find(|&k| orig[at(k)]);
        let last = (i..j).rev().find(|&k| orig[at(k)]);
        if let (Some(a), Some(b)) = (first, last) {
            (i..a).chain(b + 1..j).for_each(|k| flags[at(k)] = false);
        }
        i = j;
    }
}

/// SIR along both axes of a plane; `extend`: false limits it to filling the gaps between
/// flags of each line (`trim_sir_line`).
pub fn sir_plane_with(flags: &mut [bool], nt: usize, nf: usize, eta: f64, extend: bool) {
    if eta <= 0.0 {
        return;
    }
    let before = flags.to_vec();
    let mut by_time = before.clone();
    let mut scratch = Vec::with_capacity(nt.max(nf));
    for t in 0..nt {
        sir_line_with(flags, t * nf, 1, nf, eta, &mut scratch);
        if !extend {
            trim_sir_line(flags, &before, t * nf, 1, nf);
        }
    }
    for f in 0..nf {
        sir_line_with(&mut by_time, f, nf, nt, eta, &mut scratch);
        if !extend {
            trim_sir_line(&mut by_time, &before, f, nf, nt);
        }
    }
    for (a, b) in flags.iter_mut().zip(by_time) {
        *a |= b;
    }
}
