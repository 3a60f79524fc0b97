//! Flagging algorithms on 2-D (time x frequency) planes, row-major `[t * nf + f]`:
//! masked Gaussian background, SumThreshold (Offringa et al. 2010) and the scale-invariant
//! rank (SIR) operator (Offringa et al. 2012).

pub use super::sir::{sir_line, sir_line_with, sir_plane_with, trim_sir_line};

/// Masked, separable Gaussian-weighted smoothing (local-constant): see `masked_smooth`.
///
/// Local-linear variant (sigmas in samples along
/// time and frequency): at each sample, the value at the centre of a weighted straight-line
/// fit to the unflagged neighbours. In the interior this is the weighted mean; at the edges
/// of the plane and of flagged gaps it follows slopes instead of being pulled toward the
/// inside (a plain Gaussian's edge bias, which the baseline average would turn into false
/// detections). Flagged samples get the smooth surface too.
pub fn masked_gaussian(
    values: &[f32],
    flags: &[bool],
    nt: usize,
    nf: usize,
    sigma_t: f64,
    sigma_f: f64,
) -> Vec<f32> {
    masked_smooth(values, flags, nt, nf, sigma_t, sigma_f, false)
}

/// As `masked_gaussian` with a choice of local-linear (true) or local-constant (false,
/// the plain masked Gaussian mean, lower variance for noise-dominated planes) fits.
pub fn masked_smooth(
    values: &[f32],
    flags: &[bool],
    nt: usize,
    nf: usize,
    sigma_t: f64,
    sigma_f: f64,
    linear: bool,
) -> Vec<f32> {
    // One compiled body per fit: the local-constant one has no slope sums to carry.
    if linear {
        masked_smooth_fit::<true>(values, flags, nt, nf, sigma_t, sigma_f)
    } else {
        masked_smooth_fit::<false>(values, flags, nt, nf, sigma_t, sigma_f)
    }
}

/// The eight-lane fits, compiled for AVX2 where the CPU has it (four f64 a vector instead of
/// two; no fused multiply-adds, so the same bits as the baseline build).
fn masked_smooth_fit<const LINEAR: bool>(
    values: &[f32],
    flags: &[bool],
    nt: usize,
    nf: usize,
    sigma_t: f64,
    sigma_f: f64,
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { masked_smooth_avx2::<LINEAR>(values, flags, nt, nf, sigma_t, sigma_f) };
    }
    masked_smooth_lines::<LINEAR>(values, flags, nt, nf, sigma_t, sigma_f, true)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn masked_smooth_avx2<const LINEAR: bool>(
    values: &[f32],
    flags: &[bool],
    nt: usize,
    nf: usize,
    sigma_t: f64,
    sigma_f: f64,
) -> Vec<f32> {
    masked_smooth_lines::<LINEAR>(values, flags, nt, nf, sigma_t, sigma_f, true)
}

/// The two passes; `lanes`: the lines eight outputs at a time — along time the same sums in
/// the same order per output as one at a time, so bit-for-bit the same; along frequency
/// (weights 0 or 1) `binary_fit_line`, whose weight sums near flags differ from the scalar
/// loop's by f64 rounding only (the f32 surfaces of the tests are identical).
#[inline(always)]
fn masked_smooth_lines<const LINEAR: bool>(
    values: &[f32],
    flags: &[bool],
    nt: usize,
    nf: usize,
    sigma_t: f64,
    sigma_f: f64,
    lanes: bool,
) -> Vec<f32> {
    let (kt, kf) = (gaussian_taps(sigma_t), gaussian_taps(sigma_f));
    let line = |v: &[f64], w: &[f64], n: usize, kern: &[f64], ov: &mut [f64], ow: &mut [f64]| {
        if lanes {
            local_fit_line_lanes::<LINEAR>(v, w, n, kern, ov, ow)
        } else {
            local_linear_line::<LINEAR>(v, w, 1, n, kern, ov, ow)
        }
    };
    // Pass 1 along frequency: smoothed values and the weight behind each. Flagged samples'
    // values are zeroed (they carry no weight; a NaN there must not reach the sums).
    let v0: Vec<f64> = values
        .iter()
        .zip(flags)
        .map(|(&v, &f)| if f { 0.0 } else { v as f64 })
        .collect();
    let mut v1 = vec![0.0f64; nt * nf];
    let mut w1 = vec![0.0f64; nt * nf];
    if lanes {
        // The weights here are 0 or 1: the weight sums from the kernel's, less the missing
        // taps (`binary_fit_line`).
        let mut scratch = BinaryScratch::default();
        let bk = BinaryKernel::new::<LINEAR>(&kf, nf);
        for t in 0..nt {
            let r = t * nf..(t + 1) * nf;
            let (ov, ow) = (&mut v1[r.clone()], &mut w1[r.clone()]);
            binary_fit_line::<LINEAR>(&v0[r.clone()], &flags[r], &bk, &mut scratch, ov, ow);
        }
    } else {
        let w0: Vec<f64> = flags.iter().map(|&f| if f { 0.0 } else { 1.0 }).collect();
        for t in 0..nt {
            let r = t * nf..(t + 1) * nf;
            local_linear_line::<LINEAR>(
                &v0[r.clone()],
                &w0[r.clone()],
                1,
                nf,
                &kf,
                &mut v1[r.clone()],
                &mut w1[r],
            );
        }
    }
    // Pass 2 along time on the pass-1 surface.
    let mut out = vec![0f32; nt * nf];
    let mut col_v = vec![0.0; nt];
    let mut col_w = vec![0.0; nt];
    let mut res_v = vec![0.0; nt];
    let mut res_w = vec![0.0; nt];
    // The fit eight columns at a time (their windows along time are the same),
    // bit-for-bit as one column at a time; the remaining columns one by one.
    let mut first = 0;
    if lanes {
        const L: usize = 8;
        let h = kt.len() / 2;
        first = nf - nf % L;
        // Where pass 1's windows were whole and unflagged its weight is the frequency
        // kernel's sum (`s_full`); a time window of only such weights has its weight sums
        // fixed per row (`fixed[t]`, the window truncated at the plane's edges) and only
        // the value sums are accumulated, with the same products in the same order.
        let s_full = kf.iter().fold(0.0, |a, &kw| a + kw * 1.0);
        let xs: Vec<f64> = (0..kt.len())
            .map(|k| (k as i64 - h as i64) as f64)
            .collect();
        let kw_s: Vec<f64> = kt.iter().map(|&kw| kw * s_full).collect();
        let kx_s: Vec<f64> = kw_s.iter().zip(&xs).map(|(a, x)| a * x).collect();
        let rows = |t: usize| t.saturating_sub(h)..(t + h + 1).min(nt);
        let fixed: Vec<Sums<1>> = (0..nt)
            .map(|t| {
                let mut c = Sums::<1>::default();
                for (k, (&kw, &x)) in kt.iter().zip(&xs).enumerate() {
                    if rows(t).contains(&(t + k).wrapping_sub(h)) {
                        c.add::<LINEAR>(kw, x, &[s_full], &[0.0]);
                    }
                }
                c
            })
            .collect();
        // Per column, the rows before each t whose weight is not s_full.
        let mut odd = vec![0u32; nf * (nt + 1)];
        for f in 0..nf {
            for t in 0..nt {
                odd[f * (nt + 1) + t + 1] =
                    odd[f * (nt + 1) + t] + u32::from(w1[t * nf + f] != s_full);
            }
        }
        for f in (0..first).step_by(L) {
            for t in 0..nt {
                let mut acc = Sums::<L>::default();
                let r = rows(t);
                if (f..f + L).all(|c| odd[c * (nt + 1) + r.end] == odd[c * (nt + 1) + r.start]) {
                    acc.s0 = [fixed[t].s0[0]; L];
                    acc.s1 = [fixed[t].s1[0]; L];
                    acc.s2 = [fixed[t].s2[0]; L];
                    for j in r {
                        let k = j + h - t;
                        acc.add_unit::<LINEAR>(kw_s[k], kx_s[k], lanes_at(&v1, j * nf + f));
                    }
                    for l in 0..L {
                        out[t * nf + f + l] = acc.fit::<LINEAR>(l) as f32;
                    }
                    continue;
                }
                for (k, &kw) in kt.iter().enumerate() {
                    let Some(j) = (t + k).checked_sub(h).filter(|&j| j < nt) else {
                        continue;
                    };
                    let (ws, vs) = (
                        &w1[j * nf + f..j * nf + f + L],
                        &v1[j * nf + f..j * nf + f + L],
                    );
                    acc.add::<LINEAR>(
                        kw,
                        (k as i64 - h as i64) as f64,
                        ws.try_into().expect("L lanes"),
                        vs.try_into().expect("L lanes"),
                    );
                }
                for l in 0..L {
                    out[t * nf + f + l] = acc.fit::<LINEAR>(l) as f32;
                }
            }
        }
    }
    for f in first..nf {
        for t in 0..nt {
            col_v[t] = v1[t * nf + f];
            col_w[t] = w1[t * nf + f];
        }
        line(&col_v, &col_w, nt, &kt, &mut res_v, &mut res_w);
        for t in 0..nt {
            out[t * nf + f] = res_v[t] as f32;
        }
    }
    out
}

/// The smoothing window: exp(-i^2 / 2 sigma^2) for |i| <= ceil(3 sigma) ([1] for sigma <= 0).
pub fn gaussian_taps(sigma: f64) -> Vec<f64> {
    if sigma <= 0.0 {
        return vec![1.0];
    }
    let half = (3.0 * sigma).ceil() as i64;
    (-half..=half)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect()
}

/// Weighted local-linear fit along one line; `out_w` gets the summed weight.
#[allow(clippy::too_many_arguments)]
fn local_linear_line<const LINEAR: bool>(
    v: &[f64],
    w: &[f64],
    stride: usize,
    n: usize,
    kern: &[f64],
    out_v: &mut [f64],
    out_w: &mut [f64],
) {
    for i in 0..n {
        let (fv, fw) = local_fit_at::<LINEAR>(v, w, stride, n, kern, i);
        out_v[i * stride] = fv;
        out_w[i * stride] = fw;
    }
}

/// `local_linear_line`'s output i: the fit and the summed weight.
#[inline(always)]
fn local_fit_at<const LINEAR: bool>(
    v: &[f64],
    w: &[f64],
    stride: usize,
    n: usize,
    kern: &[f64],
    i: usize,
) -> (f64, f64) {
    let h = (kern.len() / 2) as i64;
    let (mut s0, mut s1, mut s2, mut t0, mut t1) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (k, &kw) in kern.iter().enumerate() {
        let j = i as i64 + k as i64 - h;
        if j < 0 || j >= n as i64 {
            continue;
        }
        let ww = kw * w[j as usize * stride];
        if ww == 0.0 {
            continue;
        }
        let x = (k as i64 - h) as f64;
        let y = v[j as usize * stride];
        s0 += ww;
        t0 += ww * y;
        if LINEAR {
            s1 += ww * x;
            s2 += ww * x * x;
            t1 += ww * x * y;
        }
    }
    (fit::<LINEAR>(s0, s1, s2, t0, t1), s0)
}

/// The local fit at the window's centre from its weighted sums: s0..s2 of w x^k, t0, t1 of
/// w y x^k (no weight: 0; a degenerate linear fit falls back to the constant one).
#[inline(always)]
fn fit<const LINEAR: bool>(s0: f64, s1: f64, s2: f64, t0: f64, t1: f64) -> f64 {
    let det = s0 * s2 - s1 * s1;
    if s0 <= 0.0 {
        0.0
    } else if LINEAR && det > 1e-9 * s0 * s2.max(1e-300) && s2 > 0.0 {
        (s2 * t0 - s1 * t1) / det
    } else {
        t0 / s0
    }
}

/// The L values of `x` from `at` on.
#[inline(always)]
fn lanes_at<const L: usize>(x: &[f64], at: usize) -> &[f64; L] {
    x[at..at + L].try_into().expect("L values")
}

/// The sums of L neighbouring outputs of a local fit (the slope sums only when LINEAR).
struct Sums<const L: usize> {
    s0: [f64; L],
    s1: [f64; L],
    s2: [f64; L],
    t0: [f64; L],
    t1: [f64; L],
}

impl<const L: usize> Default for Sums<L> {
    fn default() -> Self {
        Sums {
            s0: [0.0; L],
            s1: [0.0; L],
            s2: [0.0; L],
            t0: [0.0; L],
            t1: [0.0; L],
        }
    }
}

impl<const L: usize> Sums<L> {
    /// Adds one kernel tap (weight kw at offset x) to every lane: lane l's sample has
    /// weight ws[l] and value vs[l] (zeroed where the weight is 0, so that the term adds an
    /// exact zero where the scalar loop skips it).
    #[inline(always)]
    fn add<const LINEAR: bool>(&mut self, kw: f64, x: f64, ws: &[f64; L], vs: &[f64; L]) {
        for l in 0..L {
            let ww = kw * ws[l];
            self.s0[l] += ww;
            self.t0[l] += ww * vs[l];
            if LINEAR {
                self.s1[l] += ww * x;
                self.s2[l] += ww * x * x;
                self.t1[l] += ww * x * vs[l];
            }
        }
    }

    /// `add` where every lane's weight is exactly 1 (no flag under the window): only the
    /// value sums change (kx = kw x); the weight sums are the window's constants.
    #[inline(always)]
    fn add_unit<const LINEAR: bool>(&mut self, kw: f64, kx: f64, vs: &[f64; L]) {
        for l in 0..L {
            self.t0[l] += kw * vs[l];
            if LINEAR {
                self.t1[l] += kx * vs[l];
            }
        }
    }

    #[inline(always)]
    fn fit<const LINEAR: bool>(&self, l: usize) -> f64 {
        fit::<LINEAR>(self.s0[l], self.s1[l], self.s2[l], self.t0[l], self.t1[l])
    }
}

/// `local_linear_line` (stride 1) with eight neighbouring outputs summed together where
/// their windows lie inside the line, so the sums vectorise; each output's terms are added
/// in the same order as one at a time, and a zero-weight term (whose value the caller
/// zeroed) adds an exact zero where the scalar loop skips it: the results are bit-for-bit
/// the same.
#[inline(always)]
fn local_fit_line_lanes<const LINEAR: bool>(
    v: &[f64],
    w: &[f64],
    n: usize,
    kern: &[f64],
    out_v: &mut [f64],
    out_w: &mut [f64],
) {
    const L: usize = 8;
    let h = kern.len() / 2;
    // Samples of weight other than exactly 1 before each index: a window without any has
    // the kernel's own weight sums (the same additions in the same order, so the same
    // bits), and only the value sums are accumulated (the flagger's first pass: weights
    // are 0 or 1, most windows unflagged).
    let mut not_unit = Vec::with_capacity(n + 1);
    not_unit.push(0u32);
    for &x in &w[..n] {
        let last = *not_unit.last().expect("starts with 0");
        not_unit.push(last + u32::from(x != 1.0));
    }
    let xs: Vec<f64> = (0..kern.len())
        .map(|k| (k as i64 - h as i64) as f64)
        .collect();
    let kx: Vec<f64> = kern.iter().zip(&xs).map(|(kw, x)| kw * x).collect();
    let mut unit = Sums::<1>::default();
    for (&kw, &x) in kern.iter().zip(&xs) {
        unit.add::<LINEAR>(kw, x, &[1.0], &[0.0]);
    }
    let mut i = 0;
    while i < n {
        if i >= h && i + L + h <= n {
            let mut acc = Sums::<L>::default();
            if not_unit[i + L + h] == not_unit[i - h] {
                acc.s0 = [unit.s0[0]; L];
                acc.s1 = [unit.s1[0]; L];
                acc.s2 = [unit.s2[0]; L];
                for (k, (&kw, &kx)) in kern.iter().zip(&kx).enumerate() {
                    let b = i + k - h;
                    acc.add_unit::<LINEAR>(kw, kx, lanes_at(v, b));
                }
            } else {
                for (k, (&kw, &x)) in kern.iter().zip(&xs).enumerate() {
                    let b = i + k - h;
                    acc.add::<LINEAR>(kw, x, lanes_at(w, b), lanes_at(v, b));
                }
            }
            for l in 0..L {
                out_v[i + l] = acc.fit::<LINEAR>(l);
                out_w[i + l] = acc.s0[l];
            }
            i += L;
        } else {
            (out_v[i], out_w[i]) = local_fit_at::<LINEAR>(v, w, 1, n, kern, i);
            i += 1;
        }
    }
}

/// What `binary_fit_line` needs of a kernel on lines of n samples, made once per plane.
struct BinaryKernel {
    kern: Vec<f64>,
    /// kern[k] x_k, x_k = k - h.
    kx: Vec<f64>,
    /// The weight sums' terms in reverse tap order (rev[m] = term of tap 2h - m): a
    /// missing sample j leaves output i's window with tap j - i + h, i.e. rev[i - j + h].
    rev: [Vec<f64>; 3],
    /// Each output's weight sums with every in-line sample present: the whole kernel's
    /// less the taps past the line's ends.
    base: [Vec<f64>; 3],
}

impl BinaryKernel {
    fn new<const LINEAR: bool>(kern: &[f64], n: usize) -> Self {
        let h = kern.len() / 2;
        let xs = |k: usize| (k as i64 - h as i64) as f64;
        let kx: Vec<f64> = kern.iter().enumerate().map(|(k, &kw)| kw * xs(k)).collect();
        // The scalar loop's terms for a weight of 1: kw, kw x, (kw x) x.
        let term = |c: usize, k: usize| match c {
            0 => kern[k],
            1 if LINEAR => kx[k],
            2 if LINEAR => kx[k] * xs(k),
            _ => 0.0,
        };
        let rev = std::array::from_fn(|c| (0..kern.len()).rev().map(|k| term(c, k)).collect());
        let mut unit = [0.0f64; 3];
        for k in 0..kern.len() {
            for (c, u) in unit.iter_mut().enumerate() {
                *u += term(c, k);
            }
        }
        let mut base: [Vec<f64>; 3] = std::array::from_fn(|c| vec![unit[c]; n]);
        let mut k = BinaryKernel {
            kern: kern.to_vec(),
            kx,
            rev,
            base: Default::default(),
        };
        for j in (-(h as i64)..0).chain(n as i64..(n + h) as i64) {
            k.remove(&mut base, j, n);
        }
        k.base = base;
        k
    }

    /// Takes sample j's terms out of the weight sums of every output whose window holds it.
    #[inline(always)]
    fn remove(&self, sums: &mut [Vec<f64>; 3], j: i64, n: usize) {
        let h = (self.kern.len() / 2) as i64;
        let lo = (j - h).max(0) as usize;
        let hi = (j + h + 1).min(n as i64) as usize;
        if lo >= hi {
            return;
        }
        let r0 = (lo as i64 - j + h) as usize;
        for (s, r) in sums.iter_mut().zip(&self.rev) {
            s[lo..hi]
                .iter_mut()
                .zip(&r[r0..r0 + (hi - lo)])
                .for_each(|(s, t)| *s -= t);
        }
    }
}

/// Buffers of `binary_fit_line`, kept across the lines of a plane.
#[derive(Default)]
struct BinaryScratch {
    padded: Vec<f64>,
    sums: [Vec<f64>; 3],
    valid: Vec<u32>,
}

/// `local_linear_line` (stride 1) for weights of 0 (`flagged`) or 1, `v` zeroed where
/// flagged. The value sums run over every tap of a zero-padded copy of the line, eight
/// outputs at a time (a missing tap adds an exact zero: the same bits as the scalar loop,
/// which skips it). The weight sums start from the whole kernel's and lose each missing
/// tap's term (past the line's ends: `BinaryKernel::base`; flagged: here), which costs work
/// only near flags instead of three more sums over every tap; they differ from the scalar
/// loop's only by rounding (f64), and are the kernel's own, bit for bit, where no tap is
/// missing. Where fewer than a quarter of the taps are present, the subtraction would
/// cancel (and could make a one-tap window's zero determinant look like a slope), so those
/// windows sum their present taps as the scalar loop does. A window without any unflagged
/// tap gives 0 and weight 0.
#[inline(always)]
fn binary_fit_line<const LINEAR: bool>(
    v: &[f64],
    flagged: &[bool],
    bk: &BinaryKernel,
    scratch: &mut BinaryScratch,
    out_v: &mut [f64],
    out_w: &mut [f64],
) {
    const L: usize = 8;
    let n = v.len();
    let kern = &bk.kern;
    let h = kern.len() / 2;
    // Value sums over the padded line (h zeros each side, and up to a whole lane group).
    let len = n.div_ceil(L) * L;
    let padded = &mut scratch.padded;
    padded.clear();
    padded.resize(len + 2 * h, 0.0);
    padded[h..h + n].copy_from_slice(v);
    let sums = &mut scratch.sums;
    for (s, b) in sums.iter_mut().zip(&bk.base) {
        s.clear();
        s.extend_from_slice(b);
    }
    // Unflagged samples before each index, for the windows with none.
    let valid = &mut scratch.valid;
    valid.clear();
    valid.push(0);
    for &f in flagged {
        let last = *valid.last().expect("starts with 0");
        valid.push(last + u32::from(!f));
    }
    for (j, _) in flagged.iter().enumerate().filter(|(_, &f)| f) {
        bk.remove(sums, j as i64, n);
    }
    for i0 in (0..n).step_by(L) {
        let mut t0 = [0.0f64; L];
        let mut t1 = [0.0f64; L];
        for (k, (&kw, &kx)) in kern.iter().zip(&bk.kx).enumerate() {
            let vs = lanes_at::<L>(padded, i0 + k);
            for l in 0..L {
                t0[l] += kw * vs[l];
                if LINEAR {
                    t1[l] += kx * vs[l];
                }
            }
        }
        for l in 0..L.min(n - i0) {
            let i = i0 + l;
            let window = i.saturating_sub(h)..(i + h + 1).min(n);
            let present = (valid[window.end] - valid[window.start]) as usize;
            let s = if present == 0 {
                [0.0; 3]
            } else if 4 * present < kern.len() {
                // Mostly flagged: the few present taps summed as the scalar loop does (the
                // same bits), not the large sums less the many missing ones.
                let mut s = [0.0; 3];
                for j in window {
                    if !flagged[j] {
                        let k = j + h - i;
                        s[0] += kern[k];
                        if LINEAR {
                            s[1] += bk.kx[k];
                            s[2] += bk.kx[k] * (k as f64 - h as f64);
                        }
                    }
                }
                s
            } else {
                [sums[0][i], sums[1][i], sums[2][i]]
            };
            out_v[i] = fit::<LINEAR>(s[0], s[1], s[2], t0[l], t1[l]);
            out_w[i] = s[0];
        }
    }
}

/// SumThreshold along one line (`stride` apart, `n` samples): flags every window of
/// length `m` whose mean exceeds `threshold`, counting already-flagged samples at the
/// threshold value (so they neither hide nor create detections). `new_flags` receives the
/// detections (it may alias nothing; `flags` is read only).
// The CPU twin of a CUDA kernel: its arguments are the kernel's, one for one.
#[allow(clippy::too_many_arguments)]
pub fn sumthreshold_line(
    values: &[f32],
    flags: &[bool],
    start: usize,
    stride: usize,
    n: usize,
    m: usize,
    threshold: f32,
    new_flags: &mut [bool],
) {
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
// The CPU twin of a CUDA kernel: its arguments are the kernel's, one for one.
#[allow(clippy::too_many_arguments)]
pub fn sumthreshold_plane(
    values: &[f32],
    flags: &[bool],
    nt: usize,
    nf: usize,
    chi1: f32,
    rho: f32,
    max_m_time: usize,
    max_m_freq: usize,
) -> Vec<bool> {
    let mut cur = flags.to_vec();
    let schedule = crate::compute::Schedule {
        chi1,
        rho,
        max_m_time,
        max_m_freq,
    };
    for (m, thr) in schedule.windows() {
        let mut new = cur.clone();
        if m <= max_m_freq {
            for t in 0..nt {
                sumthreshold_line(values, &cur, t * nf, 1, nf, m, thr, &mut new);
            }
        }
        if m <= max_m_time {
            sumthreshold_columns(values, &cur, nt, nf, m, thr, &mut new);
        }
        cur = new;
    }
    cur
}

/// `sumthreshold_line` along time on every column of an nt x nf plane at once (row by row,
/// so the sums run in the cache and vectorise): per column the same sums in the same
/// order, so the same flags.
pub fn sumthreshold_columns(
    values: &[f32],
    flags: &[bool],
    nt: usize,
    nf: usize,
    m: usize,
    threshold: f32,
    new_flags: &mut [bool],
) {
    if m == 0 || m > nt {
        return;
    }
    let row = |t: usize| {
        let (v, f) = (&values[t * nf..(t + 1) * nf], &flags[t * nf..(t + 1) * nf]);
        v.iter()
            .zip(f)
            .map(move |(&v, &f)| if f { threshold } else { v })
    };
    let mut sum = vec![0f32; nf];
    for t in 0..m {
        sum.iter_mut().zip(row(t)).for_each(|(s, v)| *s += v);
    }
    let limit = threshold * m as f32;
    for s in 0..=(nt - m) {
        if s > 0 {
            sum.iter_mut()
                .zip(row(s + m - 1).zip(row(s - 1)))
                .for_each(|(x, (a, b))| *x += a - b);
        }
        for (f, _) in sum.iter().enumerate().filter(|(_, &x)| x > limit) {
            for i in s..s + m {
                new_flags[i * nf + f] = true;
            }
        }
    }
}

#[cfg(test)]
#[path = "flagging_tests.rs"]
mod tests;
