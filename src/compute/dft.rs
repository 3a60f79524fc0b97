//! Direct prediction of point components (a direct Fourier transform), the exact
//! alternative to degridding a model image when the model has few pixels with flux.
//!
//! Row r of a block is integration `r % n_times` of baseline `r / n_times`, with its (u, v,
//! w) in metres for the image centre and `dw` the rephasing delay (metres), as the gridder
//! takes them. A component at (l, m), with n - 1 = sqrt(1 - l^2 - m^2) - 1, contributes
//!
//!   amp(k, c, t) exp(+2 pi i nu_c tau) sinc(dnu tau),  tau = (u l + v m + w (n - 1) + dw) / c,
//!
//! to channel c of the row: the degridder's convention (its visibilities in the data's own
//! phasing), the sinc (sin(pi x) / (pi x)) being the correlator's average over a channel of
//! width dnu (exact for a flat spectrum across the channel). The amplitude is free per
//! component, channel and integration, so a drifting primary beam, any spectrum and the
//! beam's change over the band enter exactly.
//!
//! Cost: a few floating-point operations per component and sample (the phasor advances by
//! one complex multiplication per channel where the channels are equally spaced, in f32
//! between f64 anchors every `ANCHOR` channels; the integrations of a baseline side by side
//! so the loop vectorizes), against the degridder's per-image w-plane transforms and
//! support^3 taps per sample. Accuracy: ~1e-6 of the components' summed amplitude (f32
//! phasors and accumulators; tests below).

use crate::primitives::turns::sincos_turns;
use crate::primitives::C_M_S;
use num_complex::Complex32;
use rayon::prelude::*;
use std::f64::consts::PI;

/// The rows a direct prediction fills (see the module documentation for the layout).
pub struct DftBlock<'a> {
    pub uvw_m: &'a [[f64; 3]],
    pub dw_m: &'a [f64],
    /// Rows predicted (the others are left as they are).
    pub use_row: &'a [bool],
    pub n_times: usize,
    pub freqs: &'a [f64],
    /// Channel width (Hz) the correlator averaged over; 0: the channel centres.
    pub dnu: f64,
}

/// A component's direction cosines relative to the image centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub l: f64,
    pub m: f64,
}

impl Point {
    pub(crate) fn nm1(&self) -> f64 {
        let r2 = self.l * self.l + self.m * self.m;
        if r2 >= 1.0 {
            -1.0
        } else {
            -r2 / (1.0 + (1.0 - r2).sqrt())
        }
    }
}

/// sin(pi x) / (pi x) (the tests' reference).
#[cfg(test)]
fn sinc(x: f64) -> f64 {
    let a = PI * x;
    if a.abs() < 1e-4 {
        1.0 - a * a / 6.0
    } else {
        a.sin() / a
    }
}

/// Adds the components' visibilities to `out` (`out[r * nchan + c]`, Stokes I): `amp` holds
/// each component's amplitude per channel and integration, `amp[(k * nchan + c) * n_times
/// + t]`. Parallel over baselines.
pub fn predict_points(b: &DftBlock, points: &[Point], amp: &[f32], out: &mut [Complex32]) {
    let (nt, nc) = (b.n_times.max(1), b.freqs.len());
    assert_eq!(amp.len(), points.len() * nc * nt, "amplitude table size");
    assert_eq!(out.len(), b.uvw_m.len() * nc, "output size");
    if points.is_empty() || nc == 0 {
        return;
    }
    // Channels reached from the previous one by the common step (the rest start afresh).
    let step = if nc > 1 { b.freqs[1] - b.freqs[0] } else { 0.0 };
    let fresh: Vec<bool> = (0..nc)
        .map(|c| c == 0 || ((b.freqs[c] - b.freqs[c - 1]) - step).abs() > 1e-9 * b.freqs[c].abs())
        .collect();
    // Anchors: the phasors restart from an f64 value every ANCHOR channels (see below).
    let anchor: Vec<bool> = {
        let mut since = 0;
        (0..nc)
            .map(|c| {
                since = if fresh[c] { 0 } else { since + 1 };
                !fresh[c] && since % ANCHOR == 0
            })
            .collect()
    };
    #[cfg(target_arch = "x86_64")]
    let wide = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let wide = false;
    let job = Job {
        b,
        points,
        amp,
        fresh: &fresh,
        anchor: &anchor,
        step,
        nt,
        nc,
        fma: wide,
    };
    out.par_chunks_mut(GROUP * nt * nc)
        .enumerate()
        .for_each(|(g, rows)| {
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time above).
                unsafe { job.baselines_avx2(g * GROUP, rows) };
                return;
            }
            let _ = wide;
            job.baselines(g * GROUP, rows);
        });
}

/// Baselines predicted together: each component's amplitudes (channels x integrations,
/// 74 kB for 768 channels and 24 integrations) are read from memory once for all of them
/// and from the core's cache for the rest, while their accumulators (147 kB each) stay
/// in the core's L2 cache.
const GROUP: usize = 4;

/// One call's shared inputs (`predict_points`).
struct Job<'a> {
    b: &'a DftBlock<'a>,
    points: &'a [Point],
    amp: &'a [f32],
    fresh: &'a [bool],
    anchor: &'a [bool],
    step: f64,
    nt: usize,
    nc: usize,
    /// The CPU has fused multiply-adds (used in the AVX2 build only).
    fma: bool,
}

impl Job<'_> {
    /// `baselines` compiled for AVX2 and FMA (8 f32 lanes: the integrations' loops vectorize
    /// twice as wide; with 8, 16, 24 or 32 integrations the phasors stay in registers and
    /// advance by fused multiply-adds, which round differently from the portable build by
    /// ~1e-7 of a component's amplitude).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn baselines_avx2(&self, bl0: usize, rows: &mut [Complex32]) {
        self.baselines(bl0, rows);
    }

    /// Adds the components' visibilities on baselines `bl0..` (`rows`: their integrations'
    /// rows, up to GROUP baselines), component by component.
    #[inline(always)]
    fn baselines(&self, bl0: usize, rows: &mut [Complex32]) {
        let Job {
            b,
            points,
            amp,
            step,
            nt,
            nc,
            ..
        } = *self;
        let per = nt * nc;
        let nb = rows.len() / per;
        let used: Vec<bool> = (0..nb * nt)
            .map(|i| b.use_row.get(bl0 * nt + i) == Some(&true))
            .collect();
        // Baselines with a row in use.
        let active: Vec<usize> = (0..nb)
            .filter(|&j| used[j * nt..(j + 1) * nt].iter().any(|&u| u))
            .collect();
        if active.is_empty() {
            return;
        }
        // Accumulators per baseline [c][t] (the integrations side by side: the loops
        // vectorize).
        let (mut acc_re, mut acc_im) = (vec![0.0f32; nb * per], vec![0.0f32; nb * per]);
        let mut tau = vec![0.0f64; nt];
        let mut s = vec![0.0f64; nt];
        // Per integration: the phasor in f64 at the last fresh channel or anchor and its
        // step per ANCHOR channels (f64), and the running phasor and its step per channel
        // (f32).
        let (mut p_re, mut p_im) = (vec![0.0f64; nt], vec![0.0f64; nt]);
        let (mut sa_re, mut sa_im) = (vec![0.0f64; nt], vec![0.0f64; nt]);
        let (mut ph_re, mut ph_im) = (vec![0.0f32; nt], vec![0.0f32; nt]);
        let (mut s32_re, mut s32_im) = (vec![0.0f32; nt], vec![0.0f32; nt]);
        for (k, p) in points.iter().enumerate() {
            let nm1 = p.nm1();
            let a = &amp[k * per..(k + 1) * per];
            for &j in &active {
                let r0 = (bl0 + j) * nt;
                let used = &used[j * nt..(j + 1) * nt];
                for t in 0..nt {
                    tau[t] = if used[t] {
                        let [u, v, w] = b.uvw_m[r0 + t];
                        (u * p.l + v * p.m + w * nm1 + b.dw_m[r0 + t]) / C_M_S
                    } else {
                        0.0
                    };
                }
                // Branch-free (it vectorizes): phases in turns, the sinc's sine from the
                // half turn.
                let outs = s
                    .iter_mut()
                    .zip(s32_re.iter_mut().zip(s32_im.iter_mut()))
                    .zip(sa_re.iter_mut().zip(sa_im.iter_mut()));
                for (&tau, ((s, (s32r, s32i)), (sar, sai))) in tau.iter().zip(outs) {
                    let x = b.dnu * tau;
                    let a = PI * x;
                    let (sh, _) = sincos_turns(0.5 * x);
                    *s = if a.abs() < 1e-4 {
                        1.0 - a * a / 6.0
                    } else {
                        sh / a
                    };
                    let (si, co) = sincos_turns(step * tau);
                    (*s32r, *s32i) = (co as f32, si as f32);
                    (*sar, *sai) = sincos_turns(step * ANCHOR as f64 * tau);
                    std::mem::swap(sar, sai);
                }
                let mut st = Phasors {
                    tau: &tau,
                    s: &s,
                    p_re: &mut p_re,
                    p_im: &mut p_im,
                    sa_re: &sa_re,
                    sa_im: &sa_im,
                };
                let (s32r, s32i) = (&s32_re[..], &s32_im[..]);
                let are = &mut acc_re[j * per..(j + 1) * per];
                let aim = &mut acc_im[j * per..(j + 1) * per];
                match (self.fma, nt) {
                    (true, 8) => self.channels_blocked::<1>(a, &mut st, s32r, s32i, are, aim),
                    (true, 16) => self.channels_blocked::<2>(a, &mut st, s32r, s32i, are, aim),
                    (true, 24) => self.channels_blocked::<3>(a, &mut st, s32r, s32i, are, aim),
                    (true, 32) => self.channels_blocked::<4>(a, &mut st, s32r, s32i, are, aim),
                    _ => self.channels(a, &mut st, &mut ph_re, &mut ph_im, s32r, s32i, are, aim),
                }
            }
        }
        for &j in &active {
            let rows = &mut rows[j * per..(j + 1) * per];
            let (are, aim) = (&acc_re[j * per..], &acc_im[j * per..]);
            for t in (0..nt).filter(|&t| used[j * nt + t]) {
                for c in 0..nc {
                    let o = &mut rows[t * nc + c];
                    o.re += are[c * nt + t];
                    o.im += aim[c * nt + t];
                }
            }
        }
    }
}

/// One component's phasor state on a baseline: per integration its delay tau (s), the
/// channel average's sinc, the f64 phasor at the last fresh channel or anchor and its step
/// per ANCHOR channels.
struct Phasors<'a> {
    tau: &'a [f64],
    s: &'a [f64],
    p_re: &'a mut [f64],
    p_im: &'a mut [f64],
    sa_re: &'a [f64],
    sa_im: &'a [f64],
}

impl Phasors<'_> {
    /// Advances the f64 phasors to channel c where it starts afresh or is an anchor;
    /// false elsewhere (the f32 recurrence carries on).
    #[inline(always)]
    fn renew(&mut self, j: &Job, c: usize) -> bool {
        if j.fresh[c] {
            for t in 0..self.tau.len() {
                let (si, co) = sincos_turns(j.b.freqs[c] * self.tau[t]);
                self.p_re[t] = self.s[t] * co;
                self.p_im[t] = self.s[t] * si;
            }
            true
        } else if j.anchor[c] {
            for t in 0..self.tau.len() {
                let (pr, pi) = (self.p_re[t], self.p_im[t]);
                self.p_re[t] = pr * self.sa_re[t] - pi * self.sa_im[t];
                self.p_im[t] = pr * self.sa_im[t] + pi * self.sa_re[t];
            }
            true
        } else {
            false
        }
    }
}

impl Job<'_> {
    /// One component's sum over a baseline's channels, any number of integrations: the
    /// running f32 phasors `ph` in memory.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn channels(
        &self,
        a: &[f32],
        st: &mut Phasors,
        ph_re: &mut [f32],
        ph_im: &mut [f32],
        s32_re: &[f32],
        s32_im: &[f32],
        acc_re: &mut [f32],
        acc_im: &mut [f32],
    ) {
        let nt = self.nt;
        for c in 0..self.nc {
            if st.renew(self, c) {
                for t in 0..nt {
                    ph_re[t] = st.p_re[t] as f32;
                    ph_im[t] = st.p_im[t] as f32;
                }
            }
            let ac = &a[c * nt..(c + 1) * nt];
            let (are, aim) = (
                &mut acc_re[c * nt..(c + 1) * nt],
                &mut acc_im[c * nt..(c + 1) * nt],
            );
            // All of one length (no bounds checks in the loop: it vectorizes).
            let (phr, phi) = (&mut ph_re[..nt], &mut ph_im[..nt]);
            let (sr, si) = (&s32_re[..nt], &s32_im[..nt]);
            for t in 0..nt {
                let x = ac[t];
                let (pr, pi) = (phr[t], phi[t]);
                are[t] += x * pr;
                aim[t] += x * pi;
                phr[t] = pr * sr[t] - pi * si[t];
                phi[t] = pr * si[t] + pi * sr[t];
            }
        }
    }

    /// `channels` for 8 NB integrations: the phasors of every integration in registers
    /// (NB vectors of 8) through the channels, so that the recurrence's chains do not pass
    /// through memory; with fused multiply-adds.
    #[allow(clippy::needless_range_loop)] // const-size blocks indexed with the integrations
    #[inline(always)]
    fn channels_blocked<const NB: usize>(
        &self,
        a: &[f32],
        st: &mut Phasors,
        s32_re: &[f32],
        s32_im: &[f32],
        acc_re: &mut [f32],
        acc_im: &mut [f32],
    ) {
        let nt = 8 * NB;
        // Fused (called only where the CPU has FMA, from the AVX2 + FMA build).
        let madd = |x: f32, y: f32, z: f32| x.mul_add(y, z);
        let (mut phr, mut phi) = ([[0f32; 8]; NB], [[0f32; 8]; NB]);
        let (mut sr, mut si) = ([[0f32; 8]; NB], [[0f32; 8]; NB]);
        for b in 0..NB {
            sr[b].copy_from_slice(&s32_re[8 * b..8 * b + 8]);
            si[b].copy_from_slice(&s32_im[8 * b..8 * b + 8]);
        }
        for c in 0..self.nc {
            if st.renew(self, c) {
                for b in 0..NB {
                    for j in 0..8 {
                        phr[b][j] = st.p_re[8 * b + j] as f32;
                        phi[b][j] = st.p_im[8 * b + j] as f32;
                    }
                }
            }
            let ac: &[f32] = &a[c * nt..(c + 1) * nt];
            let are: &mut [f32] = &mut acc_re[c * nt..(c + 1) * nt];
            let aim: &mut [f32] = &mut acc_im[c * nt..(c + 1) * nt];
            for b in 0..NB {
                for j in 0..8 {
                    let t = 8 * b + j;
                    let (x, pr, pi) = (ac[t], phr[b][j], phi[b][j]);
                    are[t] = madd(x, pr, are[t]);
                    aim[t] = madd(x, pi, aim[t]);
                    phr[b][j] = madd(pr, sr[b][j], -(pi * si[b][j]));
                    phi[b][j] = madd(pr, si[b][j], pi * sr[b][j]);
                }
            }
        }
    }
}

/// Channels between the f64 anchors of the phasor recurrence: within them the phasors
/// advance in f32 (8 lanes a vector), whose rounding grows ~ 6e-8 per step, so the drift
/// stays below ~2e-6 of a component's amplitude; the anchors themselves advance in f64.
const ANCHOR: usize = 32;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compute::stack::tests::block;
    use num_complex::Complex64;
    use std::f64::consts::TAU;

    /// The formula sample by sample, the channel average as the mean of 64 frequencies
    /// across the channel (no recursion, no sinc).
    fn brute(b: &DftBlock, points: &[Point], amp: &[f32]) -> Vec<Complex64> {
        let (nt, nc) = (b.n_times, b.freqs.len());
        let mut out = vec![Complex64::new(0.0, 0.0); b.uvw_m.len() * nc];
        for (r, o) in out.chunks_mut(nc).enumerate() {
            if !b.use_row[r] {
                continue;
            }
            let [u, v, w] = b.uvw_m[r];
            for (k, p) in points.iter().enumerate() {
                let n = (1.0 - p.l * p.l - p.m * p.m).sqrt();
                let d = u * p.l + v * p.m + w * (n - 1.0) + b.dw_m[r];
                for c in 0..nc {
                    let a = amp[(k * nc + c) * nt + r % nt] as f64;
                    let sub = 64;
                    let mean: Complex64 = (0..sub)
                        .map(|j| {
                            let f = b.freqs[c] + ((j as f64 + 0.5) / sub as f64 - 0.5) * b.dnu;
                            Complex64::from_polar(1.0, TAU * f * d / C_M_S)
                        })
                        .sum::<Complex64>()
                        / sub as f64;
                    o[c] += a * mean;
                }
            }
        }
        out
    }

    /// Channels in two runs of equal spacing with a gap between them (the block's from the
    /// fourth on moved up 7.1 MHz), three components and their amplitudes (3 integrations).
    pub(crate) fn uneven_case(
        blk: &crate::compute::stack::tests::Block,
    ) -> (Vec<f64>, Vec<Point>, Vec<f32>) {
        let mut freqs = blk.freqs.clone();
        for f in freqs.iter_mut().skip(3) {
            *f += 7.1e6;
        }
        let points = vec![
            Point { l: 0.0, m: 0.0 },
            Point {
                l: 0.012,
                m: -0.007,
            },
            Point { l: -0.03, m: 0.021 },
        ];
        let amp = (0..points.len() * freqs.len() * 3)
            .map(|i| 0.5 + (i % 7) as f32 * 0.1)
            .collect();
        (freqs, points, amp)
    }

    /// Against the brute-force sum, with the channels in two runs of equal spacing (a gap
    /// between them, as between subbands that do not abut), rows excluded, a wide channel.
    #[test]
    fn direct_prediction_is_the_channel_averaged_sum() {
        let blk = block();
        let (freqs, points, amp) = uneven_case(&blk);
        let b = DftBlock {
            freqs: &freqs,
            ..blk.dft_block(3, 2.0e6)
        };
        let nc = freqs.len();
        let mut out = vec![Complex32::new(0.0, 0.0); blk.uvw.len() * nc];
        predict_points(&b, &points, &amp, &mut out);
        let want = brute(&b, &points, &amp);
        let scale = want.iter().map(|v| v.norm()).fold(0.0, f64::max);
        let err = out
            .iter()
            .zip(&want)
            .map(|(a, w)| (Complex64::new(a.re as f64, a.im as f64) - w).norm())
            .fold(0.0, f64::max);
        // f32 output of sums of ~1; the 64-point mean differs from the sinc by ~1e-5
        // (midpoint rule) on the widest fringes: measured 9.6e-6 of the largest.
        assert!(err < 2e-5 * scale, "max difference {err:e} of {scale}");
        for (r, &u) in blk.use_row.iter().enumerate() {
            if !u {
                assert!(out[r * nc..(r + 1) * nc].iter().all(|v| v.norm() == 0.0));
            }
        }
    }

    /// The same visibilities as the degridder (the gridder's conventions: pixel to (l, m),
    /// w-term, rephasing delay) for pixel components, at epsilon 1e-7 and no channel width.
    #[test]
    fn direct_prediction_agrees_with_the_degridder() {
        let blk = block();
        let b = blk.vis_block();
        let spec = crate::compute::stack::tests::spec();
        let n = spec.n_image;
        let mut model = vec![0.0; n * n];
        let pix = [
            (10usize, 20usize, 1.5f64),
            (48, 48, 2.0),
            (80, 71, -0.7),
            (3, 90, 0.4),
        ];
        for &(x, y, f) in &pix {
            model[y * n + x] = f;
        }
        let want = crate::compute::degridder::degrid(&spec, &model, &b);
        let c = (n / 2) as f64;
        let points: Vec<Point> = pix
            .iter()
            .map(|&(x, y, _)| Point {
                l: (c - x as f64) * spec.cell_rad,
                m: (y as f64 - c) * spec.cell_rad,
            })
            .collect();
        let (nt, nc) = (3, blk.freqs.len());
        let amp: Vec<f32> = pix
            .iter()
            .flat_map(|&(_, _, f)| std::iter::repeat_n(f as f32, nc * nt))
            .collect();
        let d = DftBlock {
            uvw_m: &blk.uvw,
            dw_m: &blk.dw,
            use_row: &blk.use_row,
            n_times: nt,
            freqs: &blk.freqs,
            dnu: 0.0,
        };
        let mut got = vec![Complex32::new(0.0, 0.0); blk.uvw.len() * nc];
        predict_points(&d, &points, &amp, &mut got);
        let scale = want.iter().map(|v| v.norm()).fold(0f32, f32::max);
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, w)| (a - w).norm())
            .fold(0f32, f32::max);
        assert!(scale > 1.0);
        // The degridder at epsilon 1e-7, both in f32: measured 3.4e-7 of the largest.
        assert!(err <= 1e-6 * scale, "max difference {err} of {scale}");
    }

    /// A full DSA-110 band (768 channels 244 kHz apart) on baselines up to 2.8 km, components
    /// up to 2.5 deg out: the f32 phasors between f64 anchors stay on the exact formula in
    /// f64 (sinc included) to 7.6e-7 of the largest visibility (measured 2026-12-03).
    #[test]
    fn long_band_stays_on_the_exact_formula() {
        // 5 integrations: the general loop; 24 (DSA-110's): the phasors in registers where
        // the CPU has AVX2 and FMA.
        for nt in [5, 24] {
            long_band(nt);
        }
    }

    /// A full DSA-110 band on six baselines (a full group of GROUP and a partial one;
    /// baseline 4 and one row of baseline 1 not in use), three components up to 2.5 deg out.
    pub(crate) struct LongBand {
        pub uvw_m: Vec<[f64; 3]>,
        pub dw_m: Vec<f64>,
        pub use_row: Vec<bool>,
        pub freqs: Vec<f64>,
        pub nt: usize,
        pub points: Vec<Point>,
        pub amp: Vec<f32>,
    }

    /// The channel width of `LongBand` (Hz).
    pub(crate) const LONG_BAND_DNU: f64 = 244.140625e3;

    impl LongBand {
        pub(crate) fn new(nt: usize) -> Self {
            let (nc, nbl) = (768, 6);
            let freqs: Vec<f64> = (0..nc)
                .map(|c| 1.311e9 + LONG_BAND_DNU * c as f64)
                .collect();
            let mut uvw_m = Vec::new();
            let mut dw_m = Vec::new();
            for bl in 0..nbl {
                for t in 0..nt {
                    let f = (bl * nt + t) as f64;
                    uvw_m.push([
                        2600.0 - 300.0 * f / 7.0,
                        -1200.0 + 90.0 * f,
                        15.0 * f - 40.0,
                    ]);
                    dw_m.push(0.3 * f - 1.0);
                }
            }
            let use_row = (0..nbl * nt).map(|r| r / nt != 4 && r != nt + 2).collect();
            let deg = std::f64::consts::PI / 180.0;
            let points = vec![
                Point {
                    l: 2.5 * deg,
                    m: -0.4 * deg,
                },
                Point {
                    l: -0.3 * deg,
                    m: 1.7 * deg,
                },
                Point {
                    l: 0.01 * deg,
                    m: 0.02 * deg,
                },
            ];
            let amp = (0..points.len() * nc * nt)
                .map(|i| 1.0 + 0.3 * ((i % 97) as f32 / 97.0))
                .collect();
            LongBand {
                uvw_m,
                dw_m,
                use_row,
                freqs,
                nt,
                points,
                amp,
            }
        }

        pub(crate) fn block(&self) -> DftBlock<'_> {
            DftBlock {
                uvw_m: &self.uvw_m,
                dw_m: &self.dw_m,
                use_row: &self.use_row,
                n_times: self.nt,
                freqs: &self.freqs,
                dnu: LONG_BAND_DNU,
            }
        }

        /// The formula in f64, sample by sample (zero on the rows not in use).
        pub(crate) fn exact(&self) -> Vec<Complex64> {
            exact(&self.block(), &self.points, &self.amp)
        }
    }

    /// The formula in f64, sample by sample, the channel average as the sinc (zero on the
    /// rows not in use).
    pub(crate) fn exact(b: &DftBlock, points: &[Point], amp: &[f32]) -> Vec<Complex64> {
        let (nt, nc) = (b.n_times, b.freqs.len());
        let mut out = vec![Complex64::new(0.0, 0.0); b.uvw_m.len() * nc];
        for (r, o) in out.chunks_mut(nc).enumerate() {
            if !b.use_row[r] {
                continue;
            }
            let [u, v, w] = b.uvw_m[r];
            for (c, o) in o.iter_mut().enumerate() {
                for (k, p) in points.iter().enumerate() {
                    let tau = (u * p.l + v * p.m + w * p.nm1() + b.dw_m[r]) / C_M_S;
                    let x = amp[(k * nc + c) * nt + r % nt] as f64 * sinc(b.dnu * tau);
                    *o += Complex64::from_polar(x, TAU * b.freqs[c] * tau);
                }
            }
        }
        out
    }

    /// The largest difference of `got` from `want` and the largest |want|.
    pub(crate) fn max_difference(got: &[Complex32], want: &[Complex64]) -> (f64, f64) {
        got.iter()
            .zip(want)
            .fold((0.0f64, 0.0f64), |(e, s), (g, w)| {
                let g = Complex64::new(g.re as f64, g.im as f64);
                (e.max((g - w).norm()), s.max(w.norm()))
            })
    }

    fn long_band(nt: usize) {
        let case = LongBand::new(nt);
        let nc = case.freqs.len();
        let mut got = vec![Complex32::new(0.0, 0.0); case.uvw_m.len() * nc];
        predict_points(&case.block(), &case.points, &case.amp, &mut got);
        for (r, &u) in case.use_row.iter().enumerate() {
            if !u {
                assert!(got[r * nc..(r + 1) * nc].iter().all(|g| g.norm() == 0.0));
            }
        }
        let (err, scale) = max_difference(&got, &case.exact());
        println!("768 channels, {nt} integrations: max difference {err:.2e} of {scale:.2}");
        assert!(err <= 2.5e-6 * scale, "max difference {err:e} of {scale}");
    }
}
