//! The array-wide pass: interference that every baseline sees (broadband bursts, weak
//! narrowband channels) is far below one visibility's noise but adds power on all of them.
//!
//! 1. Per cross-correlation and polarization, in one streaming pass (rayon over baselines):
//!    the power |V|^2; a level per channel that ignores interference — the median over time
//!    of each channel, then a running median of those over `level_width_mhz` (so a channel
//!    with persistent interference stands above its neighbours' level instead of setting its
//!    own); the relative excess x = |V|^2 / level - 1; its robust scale per channel (MAD over
//!    time, running median over channels); z = x / scale clipped to +-`clip` (one baseline's
//!    own interference cannot make a cell significant for the whole array).
//! 2. Per (time, channel): Z = sum_b z / sqrt(N_b) per polarization, the polarizations summed
//!    (/ sqrt 2). Powers need no phase coherence: interference with a random phase per
//!    baseline, which a complex sum cancels, adds power on each.
//! 3. On that one time x channel plane: a masked smooth background (local-linear along
//!    frequency, local-quadratic along time: the calibrator's transit and the bandpass are
//!    smooth and common to all baselines), the plane's robust noise, and SumThreshold at
//!    decreasing sensitivity, the detections masked from the next background.
//!
//! The detected cells are flagged on every cross-correlation and polarization. Runs on the
//! CPU (the plane is small; the streaming pass is memory-bound).

use super::settings::ArrayFlagConfig;
use crate::core::GroupVis;
use crate::primitives::stats::median_and_mad_sigma_mut;
use rayon::prelude::*;

/// Per (time, channel, pol) sum of clipped normalised excess powers over baselines and the
/// number of baselines behind each. Cells in `known` (time x channel: a previous round's
/// detections) are left out of the levels and scales but get their excess like any other.
fn excess_sums(
    g: &GroupVis,
    cross: &[usize],
    half: usize,
    clip: f32,
    known: &[bool],
) -> (Vec<f64>, Vec<u32>) {
    let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
    let plane = nt * nf * np;
    let n = nt * nf * np;
    let zero = || (vec![0f64; n], vec![0u32; n]);
    struct Scratch {
        pw: Vec<f32>,
        col: Vec<f32>,
        level: Vec<f32>,
        scale: Vec<f32>,
        per_chan: Vec<f32>,
        win: Vec<f32>,
    }
    let scratch = || Scratch {
        pw: vec![0.0; nt * nf],
        col: Vec::with_capacity(nt),
        level: vec![f32::NAN; nf],
        scale: vec![f32::NAN; nf],
        per_chan: vec![f32::NAN; nf],
        win: Vec::with_capacity(2 * half + 1),
    };
    cross
        .par_iter()
        .fold(
            || (zero(), scratch()),
            |((mut sum, mut cnt), mut s), &b| {
                let (v, w) = (
                    &g.vis[b * plane..(b + 1) * plane],
                    &g.weight[b * plane..(b + 1) * plane],
                );
                for p in 0..np {
                    for i in 0..nt * nf {
                        let k = i * np + p;
                        let x = v[k].norm_sqr();
                        s.pw[i] = if w[k] > 0.0 && x.is_finite() {
                            x
                        } else {
                            f32::NAN
                        };
                    }
                    // Level: per-channel median over time, then a running median over channels.
                    for c in 0..nf {
                        s.col.clear();
                        s.col.extend(
                            (0..nt)
                                .filter(|&t| !known[t * nf + c])
                                .map(|t| s.pw[t * nf + c])
                                .filter(|x| !x.is_nan()),
                        );
                        s.per_chan[c] = median_f32(&mut s.col).unwrap_or(f32::NAN);
                    }
                    running_median(&s.per_chan, half, &mut s.win, &mut s.level);
                    // Scale of x = pw / level - 1 per channel (MAD over time about the channel's
                    // median), then a running median over channels.
                    for c in 0..nf {
                        let l = s.level[c];
                        s.per_chan[c] = f32::NAN;
                        if !(l > 0.0) {
                            continue;
                        }
                        s.col.clear();
                        s.col.extend(
                            (0..nt)
                                .filter(|&t| !known[t * nf + c])
                                .map(|t| s.pw[t * nf + c] / l - 1.0)
                                .filter(|x| !x.is_nan()),
                        );
                        if s.col.len() < 3 {
                            continue;
                        }
                        let med = median_f32(&mut s.col).unwrap_or(0.0);
                        s.col.iter_mut().for_each(|x| *x = (*x - med).abs());
                        s.per_chan[c] = 1.4826 * median_f32(&mut s.col).unwrap_or(f32::NAN);
                    }
                    running_median(&s.per_chan, half, &mut s.win, &mut s.scale);
                    for t in 0..nt {
                        for c in 0..nf {
                            let (x, l, sc) = (s.pw[t * nf + c], s.level[c], s.scale[c]);
                            if x.is_nan() || !(l > 0.0) || !(sc > 0.0) {
                                continue;
                            }
                            let z = ((x / l - 1.0) / sc).clamp(-clip, clip);
                            let k = (t * nf + c) * np + p;
                            sum[k] += z as f64;
                            cnt[k] += 1;
                        }
                    }
                }
                ((sum, cnt), s)
            },
        )
        .map(|(acc, _)| acc)
        .reduce(zero, |(mut s1, mut c1), (s2, c2)| {
            s1.iter_mut().zip(&s2).for_each(|(a, b)| *a += b);
            c1.iter_mut().zip(&c2).for_each(|(a, b)| *a += b);
            (s1, c1)
        })
}

/// Median of finite values (reorders them); None when empty.
fn median_f32(v: &mut [f32]) -> Option<f32> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (lo, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    let m = *m;
    if n % 2 == 1 {
        Some(m)
    } else {
        Some(0.5 * (m + lo.iter().copied().fold(f32::NEG_INFINITY, f32::max)))
    }
}

/// Running median over +-`half` of the non-NaN values (NaN where a window has none).
fn running_median(x: &[f32], half: usize, win: &mut Vec<f32>, out: &mut [f32]) {
    let n = x.len();
    for c in 0..n {
        win.clear();
        win.extend(
            x[c.saturating_sub(half)..(c + half + 1).min(n)]
                .iter()
                .copied()
                .filter(|v| !v.is_nan()),
        );
        out[c] = median_f32(win).unwrap_or(f32::NAN);
    }
}

/// Weighted local polynomial fits along one line (Gaussian `kern`, weights `w`): degree
/// `deg` (1 or 2) at each sample, falling back to lower degrees where the window cannot
/// carry the fit. `out_w` gets the summed weight.
fn local_poly_line(
    v: &[f64],
    w: &[f64],
    kern: &[f64],
    deg: usize,
    out_v: &mut [f64],
    out_w: &mut [f64],
) {
    let n = v.len();
    let h = (kern.len() / 2) as i64;
    for i in 0..n {
        // Moments s_k = sum ww x^k (k <= 4), t_k = sum ww x^k y (k <= 2).
        let (mut s, mut t) = ([0f64; 5], [0f64; 3]);
        for (k, &kw) in kern.iter().enumerate() {
            let j = i as i64 + k as i64 - h;
            if j < 0 || j >= n as i64 {
                continue;
            }
            let ww = kw * w[j as usize];
            if ww == 0.0 {
                continue;
            }
            let x = (k as i64 - h) as f64;
            let y = v[j as usize];
            let mut xp = ww;
            for sk in s.iter_mut() {
                *sk += xp;
                xp *= x;
            }
            t[0] += ww * y;
            t[1] += ww * x * y;
            t[2] += ww * x * x * y;
        }
        out_w[i] = s[0];
        out_v[i] = if s[0] <= 0.0 {
            0.0
        } else {
            let quad = if deg >= 2 {
                // Value at x = 0 of the weighted quadratic fit (Cramer's rule on the 3x3).
                let det = s[0] * (s[2] * s[4] - s[3] * s[3]) - s[1] * (s[1] * s[4] - s[3] * s[2])
                    + s[2] * (s[1] * s[3] - s[2] * s[2]);
                let num = t[0] * (s[2] * s[4] - s[3] * s[3]) - s[1] * (t[1] * s[4] - s[3] * t[2])
                    + s[2] * (t[1] * s[3] - s[2] * t[2]);
                (det > 1e-9 * s[0] * s[4].max(1e-300)).then(|| num / det)
            } else {
                None
            };
            let det1 = s[0] * s[2] - s[1] * s[1];
            quad.unwrap_or_else(|| {
                if deg >= 1 && det1 > 1e-9 * s[0] * s[2].max(1e-300) {
                    (s[2] * t[0] - s[1] * t[1]) / det1
                } else {
                    t[0] / s[0]
                }
            })
        };
    }
}

/// The array plane's smooth background: local-linear along frequency, then local-quadratic
/// along time on that, unmasked samples only.
fn plane_background(
    z: &[f64],
    mask: &[bool],
    nt: usize,
    nf: usize,
    sigma_t: f64,
    sigma_f: f64,
) -> Vec<f64> {
    let (kt, kf) = (
        super::algorithms::gaussian_taps(sigma_t),
        super::algorithms::gaussian_taps(sigma_f),
    );
    let w0: Vec<f64> = mask.iter().map(|&m| if m { 0.0 } else { 1.0 }).collect();
    let v0: Vec<f64> = z
        .iter()
        .zip(mask)
        .map(|(&v, &m)| if m || !v.is_finite() { 0.0 } else { v })
        .collect();
    let (mut v1, mut w1) = (vec![0f64; nt * nf], vec![0f64; nt * nf]);
    for t in 0..nt {
        let r = t * nf..(t + 1) * nf;
        local_poly_line(
            &v0[r.clone()],
            &w0[r.clone()],
            &kf,
            1,
            &mut v1[r.clone()],
            &mut w1[r],
        );
    }
    let mut out = vec![0f64; nt * nf];
    let (mut cv, mut cw, mut ov, mut ow) = (
        vec![0f64; nt],
        vec![0f64; nt],
        vec![0f64; nt],
        vec![0f64; nt],
    );
    for c in 0..nf {
        for t in 0..nt {
            cv[t] = v1[t * nf + c];
            cw[t] = w1[t * nf + c];
        }
        local_poly_line(&cv, &cw, &kt, 2, &mut ov, &mut ow);
        for t in 0..nt {
            out[t * nf + c] = ov[t];
        }
    }
    out
}

/// SumThreshold (AOFlagger's schedule) whose windows run over M consecutive *unflagged*
/// samples of a line, stepping over flagged ones. Counting a flagged sample at the threshold
/// instead (algorithms::sumthreshold_plane) lets a window that overlaps a long flagged run
/// (a burst over hundreds of channels) flag the few unflagged samples beside it at that
/// window's low threshold, window after window: the run creeps into clean cells. Here a
/// window is judged on M real samples whatever lies between them; of a window over the
/// threshold, the samples from the first to the last above it are flagged.
#[allow(clippy::too_many_arguments)]
fn sumthreshold_unflagged(
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
    let mut idx = Vec::with_capacity(nt.max(nf));
    let line = |idx: &[usize], m: usize, thr: f32, new: &mut [bool]| {
        if m == 0 || idx.len() < m {
            return;
        }
        let mut sum: f64 = idx[..m].iter().map(|&k| values[k] as f64).sum();
        let limit = thr as f64 * m as f64;
        for s in 0..=(idx.len() - m) {
            if s > 0 {
                sum += values[idx[s + m - 1]] as f64 - values[idx[s - 1]] as f64;
            }
            if sum > limit {
                // From the first to the last sample above the window's threshold: a window
                // reaching past the edge of a strong event flags the event, not the clean
                // samples beyond it.
                let w = &idx[s..s + m];
                if let (Some(a), Some(b)) = (
                    w.iter().position(|&k| values[k] > thr),
                    w.iter().rposition(|&k| values[k] > thr),
                ) {
                    w[a..=b].iter().for_each(|&k| new[k] = true);
                }
            }
        }
    };
    for (m, thr) in schedule.windows() {
        let mut new = cur.clone();
        if m <= max_m_freq {
            for t in 0..nt {
                idx.clear();
                idx.extend((t * nf..(t + 1) * nf).filter(|&k| !cur[k]));
                line(&idx, m, thr, &mut new);
            }
        }
        if m <= max_m_time {
            for c in 0..nf {
                idx.clear();
                idx.extend((0..nt).map(|t| t * nf + c).filter(|&k| !cur[k]));
                line(&idx, m, thr, &mut new);
            }
        }
        cur = new;
    }
    cur
}

/// What the pass found: the (time, channel) cells flagged on every baseline, and the
/// plane's statistics for the log.
pub struct ArrayDetections {
    pub cells: Vec<bool>,
    /// Baselines behind the plane (the most at any cell).
    pub n_baselines: u32,
}

/// Runs the pass and returns the cells to flag (nothing is applied here). Two rounds: the
/// second computes each baseline's levels and scales without the first round's detections
/// (a line beside a channel pulls its running-median level up a little on every baseline:
/// a bias that the sum over baselines would make significant) and decides alone.
pub fn detect(g: &GroupVis, cross: &[usize], cfg: &ArrayFlagConfig) -> ArrayDetections {
    let (nt, nf) = (g.n_times(), g.n_chan());
    let tf = nt * nf;
    let df_mhz = g.channel_width_hz.abs().max(1.0) / 1e6;
    // At least 3 channels either side, so a one- or two-channel line cannot set the level.
    let half = ((0.5 * cfg.level_width_mhz / df_mhz).round() as usize).max(3);
    let mut known = vec![false; tf];
    let mut out = ArrayDetections {
        cells: vec![false; tf],
        n_baselines: 0,
    };
    if cross.len() < cfg.min_baselines {
        return out;
    }
    for round in 0..2 {
        let (sum, cnt) = excess_sums(g, cross, half, cfg.clip, &known);
        out = find_cells(g, &sum, &cnt, cfg);
        log::debug!(
            "array pass round {round}: {} cells of {tf}",
            out.cells.iter().filter(|&&c| c).count()
        );
        if !out.cells.iter().any(|&c| c) {
            break;
        }
        known.clone_from(&out.cells);
    }
    out
}

/// The array plane from the sums, its background, noise and SumThreshold iterations.
fn find_cells(g: &GroupVis, sum: &[f64], cnt: &[u32], cfg: &ArrayFlagConfig) -> ArrayDetections {
    let (nt, nf, np) = (g.n_times(), g.n_chan(), g.npol);
    let tf = nt * nf;
    let df_mhz = g.channel_width_hz.abs().max(1.0) / 1e6;
    let dt_s = if g.times_jd.len() > 1 {
        (g.times_jd[1] - g.times_jd[0]) * 86_400.0
    } else {
        12.884_901_888
    };
    // Per cell: the polarizations' normalised sums, combined.
    let mut z = vec![0f64; tf];
    let mut mask = vec![false; tf];
    let mut n_baselines = 0;
    for i in 0..tf {
        let (mut acc, mut k) = (0.0, 0usize);
        for p in 0..np {
            let c = cnt[i * np + p];
            n_baselines = n_baselines.max(c);
            if c > 0 {
                acc += sum[i * np + p] / (c as f64).sqrt();
                k += 1;
            }
        }
        if k == 0 {
            mask[i] = true;
        } else {
            z[i] = acc / (k as f64).sqrt();
        }
    }
    let base = mask.clone();
    if n_baselines < cfg.min_baselines as u32 || nt * nf < 16 {
        return ArrayDetections {
            cells: vec![false; tf],
            n_baselines,
        };
    }
    // At least 2 channels: narrower, the local-linear fit along frequency follows single
    // channels (coarse channelisations).
    let (sig_t, sig_f) = (
        cfg.background_sigma_s / dt_s,
        (cfg.background_sigma_mhz / df_mhz).max(2.0),
    );
    let iterations = cfg.iterations.max(1);
    let mut scratch = Vec::with_capacity(tf);
    let mut last: Option<Vec<f32>> = None;
    for it in 0..iterations {
        let sens = 2f32.powi((iterations - 1 - it) as i32);
        let bg = plane_background(&z, &mask, nt, nf, sig_t, sig_f);
        let r: Vec<f64> = z.iter().zip(&bg).map(|(a, b)| a - b).collect();
        scratch.clear();
        scratch.extend(
            r.iter()
                .zip(&mask)
                .filter(|(x, &m)| !m && x.is_finite())
                .map(|(&x, _)| x),
        );
        let Some((med, sigma)) = median_and_mad_sigma_mut(&mut scratch) else {
            break;
        };
        if !(sigma > 0.0) {
            break;
        }
        let zn: Vec<f32> = r.iter().map(|&x| ((x - med) / sigma) as f32).collect();
        log::debug!("array pass iteration {it}: {n_baselines} baselines, plane noise {sigma:.3} (1 for independent unit-noise baselines)");
        mask = sumthreshold_unflagged(
            &zn,
            &mask,
            nt,
            nf,
            cfg.chi1 * sens,
            cfg.rho,
            cfg.max_window_time.min(nt),
            cfg.max_window_chan.min(nf),
        );
        last = Some(zn);
    }
    // A channel flagged over at least half of its times carries a line: its other cells
    // above `line_sigma` belong to it (the weak end of a ramp, a dip of a persistent line),
    // which windows over the few unflagged cells left cannot reach.
    if let Some(zn) = last.filter(|_| cfg.line_sigma > 0.0) {
        for c in 0..nf {
            let open = (0..nt).filter(|&t| !base[t * nf + c]).count();
            let found = (0..nt)
                .filter(|&t| mask[t * nf + c] && !base[t * nf + c])
                .count();
            if open > 0 && 2 * found >= open {
                (0..nt)
                    .map(|t| t * nf + c)
                    .filter(|&i| !base[i] && zn[i] > cfg.line_sigma)
                    .for_each(|i| mask[i] = true);
            }
        }
    }
    let cells: Vec<bool> = mask.iter().zip(&base).map(|(&m, &b)| m && !b).collect();
    ArrayDetections { cells, n_baselines }
}
