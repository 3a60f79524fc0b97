//! Stokes I formed baseline by baseline with a correction of each baseline's samples first
//! (calibration: `calibrate::apply::stokes_i_calibrated`), in one pass over the group as
//! read: each baseline's visibilities and weights are copied into a per-thread scratch
//! (a baseline's time x frequency plane, a few hundred kB), corrected there, and combined
//! into the Stokes I buffers, so the corrected polarizations never go back to memory and
//! their weights are never rounded to half floats. Without a correction it gives
//! `GroupVis::into_stokes_i`'s values bit for bit.

use super::{GroupVis, RawBuffers, StokesBuffers, StokesGroup};
use half::f16;
use num_complex::{Complex32, Complex64};
use rayon::prelude::*;

/// A correction of one baseline's samples before their polarizations are combined: called
/// with the baseline's index and its visibilities (`[t][chan][pol]`) and weights as f32
/// (0 = flagged), which it rewrites in place.
pub type BaselineHook<'a> = &'a (dyn Fn(usize, &mut [Complex32], &mut [f32]) + Sync);

/// One thread's copy of one baseline's samples.
#[derive(Default)]
struct Scratch {
    vis: Vec<Complex32>,
    weight: Vec<f32>,
}

impl Scratch {
    /// Baseline `b`'s samples (`vis`, weights `w` stored with `scale`) as they are to be
    /// combined: the weights as f32, corrected with the visibilities by `hook` in copies
    /// where there is one (without one the visibilities are read where they are).
    fn load<'s>(
        &'s mut self,
        b: usize,
        vis: &'s [Complex32],
        w: &[f16],
        scale: f32,
        hook: Option<BaselineHook>,
    ) -> (&'s [Complex32], &'s [f32]) {
        match hook {
            Some(h) => self.load_copy(b, vis, w, scale, h),
            None => {
                self.weight.clear();
                self.weight.extend(w.iter().map(|x| x.to_f32() * scale));
                (vis, &self.weight)
            }
        }
    }

    /// `load` with a hook: copies of the samples, corrected (they may then be
    /// overwritten where they were).
    fn load_copy(
        &mut self,
        b: usize,
        vis: &[Complex32],
        w: &[f16],
        scale: f32,
        hook: BaselineHook,
    ) -> (&[Complex32], &[f32]) {
        self.weight.clear();
        self.weight.extend(w.iter().map(|x| x.to_f32() * scale));
        self.vis.clear();
        self.vis.extend_from_slice(vis);
        hook(b, &mut self.vis, &mut self.weight);
        (&self.vis, &self.weight)
    }
}

/// Samples' polarizations (`vis`, `weight`) combined into `out_v`, `out_w` (sum(w V) /
/// sum(w) over the unflagged ones, as `GroupVis::into_stokes_i`; a single polarization is
/// kept as it is); returns how many of the samples are flagged.
fn combine(
    np: usize,
    (vis, weight): (&[Complex32], &[f32]),
    out_v: &mut [Complex32],
    out_w: &mut [f32],
) -> usize {
    let mut flagged = 0;
    let pols = vis.chunks_exact(np).zip(weight.chunks_exact(np));
    for ((v, w), (x, xw)) in out_v.iter_mut().zip(out_w.iter_mut()).zip(pols) {
        let mut sv = Complex64::new(0.0, 0.0);
        let mut sw = 0.0f64;
        for (s, &ws) in x.iter().zip(xw) {
            if ws > 0.0 {
                sv += Complex64::new(s.re as f64, s.im as f64) * ws as f64;
                sw += ws as f64;
            } else {
                flagged += 1;
            }
        }
        *v = if np == 1 {
            x[0] // (one polarization: kept as it is, as `into_stokes_i` keeps it)
        } else {
            let c = if sw > 0.0 { sv / sw } else { sv };
            Complex32::new(c.re as f32, c.im as f32)
        };
        *w = sw as f32;
    }
    flagged
}

/// A Stokes I group formed with a correction: the group, and how many of the samples as
/// read (each polarization) are flagged once corrected.
pub struct Corrected {
    pub stokes: StokesGroup,
    pub flagged: usize,
}

impl GroupVis {
    /// Samples per baseline as read and combined: (n_times n_chan npol, n_times n_chan).
    fn planes(&self) -> (usize, usize) {
        let p = self.n_times() * self.n_chan();
        (p * self.npol.max(1), p)
    }

    /// As `into_stokes_i_reusing` (bit for bit without a hook), each baseline corrected by
    /// `hook` before its polarizations are combined. The group's own buffers come back as
    /// they were read.
    pub fn into_stokes_i_corrected_reusing(
        mut self,
        dest: Option<StokesBuffers>,
        hook: Option<BaselineHook>,
    ) -> (Corrected, RawBuffers) {
        let np = self.npol.max(1);
        let (r, p) = self.planes();
        let src = std::mem::take(&mut self.vis);
        let n = src.len() / np;
        let (mut vis, mut w) = match dest {
            Some((v, w)) if v.len() == n && w.len() == n => (v, w),
            _ => (vec![Complex32::default(); n], vec![0.0f32; n]),
        };
        let scale = self.weight.scale();
        let flagged = if p == 0 {
            0
        } else {
            vis.par_chunks_mut(p)
                .zip(w.par_chunks_mut(p))
                .zip(src.par_chunks(r).zip(self.weight.par_chunks(r)))
                .enumerate()
                .map_init(Scratch::default, |s, (b, ((ov, ow), (rv, rw)))| {
                    combine(np, s.load(b, rv, rw, scale, hook), ov, ow)
                })
                .sum()
        };
        let raw_weight = std::mem::take(&mut self.weight).into_stored();
        self.vis = vis;
        self.npol = 1;
        let stokes = self.map_weight(|_| w);
        (Corrected { stokes, flagged }, (src, raw_weight))
    }

    /// `into_stokes_i_corrected_reusing` in the group's own visibility buffer (when no
    /// buffers are at hand for it): baseline b's combined samples are written at
    /// `[b p, (b + 1) p)` once its samples as read, `[b r, (b + 1) r)` with r = np p, are in
    /// its scratch. Baseline 0 first, then blocks of baselines `[a, min(a np, n))`, each
    /// block in parallel: every output of a block lies below its inputs and past the
    /// inputs already read. The f32 weights are made beside the group's.
    pub fn into_stokes_i_corrected(mut self, hook: BaselineHook) -> Corrected {
        let np = self.npol.max(1);
        let (r, p) = self.planes();
        let mut vis = std::mem::take(&mut self.vis);
        let n = vis.len() / np;
        let nbl = vis.len().checked_div(r).unwrap_or(0);
        let mut w = vec![0.0f32; n];
        let scale = self.weight.scale();
        let raw_w: &[f16] = &self.weight;
        let mut flagged = 0;
        if nbl > 0 {
            let mut s = Scratch::default();
            let loaded = s.load_copy(0, &vis[..r], &raw_w[..r], scale, hook);
            flagged += combine(np, loaded, &mut vis[..p], &mut w[..p]);
        }
        if np == 1 {
            // Each baseline's output is its input: the blocks are the baselines.
            flagged += vis
                .par_chunks_mut(r.max(1))
                .zip(w.par_chunks_mut(p.max(1)))
                .zip(raw_w.par_chunks(r.max(1)))
                .enumerate()
                .skip(1)
                .map_init(Scratch::default, |s, (b, ((v, ow), rw))| {
                    let loaded = s.load_copy(b, v, rw, scale, hook);
                    combine(1, loaded, v, ow)
                })
                .sum::<usize>();
        } else {
            let mut a = 1;
            while a < nbl {
                let b = (a * np).min(nbl);
                let (out, src) = vis.split_at_mut(a * r);
                flagged += out[a * p..b * p]
                    .par_chunks_mut(p)
                    .zip(w[a * p..b * p].par_chunks_mut(p))
                    .zip(src[..(b - a) * r].par_chunks(r))
                    .zip(raw_w[a * r..b * r].par_chunks(r))
                    .enumerate()
                    .map_init(Scratch::default, |s, (k, (((ov, ow), rv), rw))| {
                        combine(np, s.load_copy(a + k, rv, rw, scale, hook), ov, ow)
                    })
                    .sum::<usize>();
                a = b;
            }
        }
        vis.truncate(n);
        vis.shrink_to_fit();
        self.vis = vis;
        self.npol = 1;
        // The half-float weights are freed here.
        let stokes = self.map_weight(|_| w);
        Corrected { stokes, flagged }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Weights;

    /// A group of `nbl` baselines x 3 times x 5 channels x `np` polarizations, some
    /// flagged.
    fn group(nbl: usize, np: usize) -> GroupVis {
        let n = nbl * 15 * np;
        let vis: Vec<Complex32> = (0..n)
            .map(|k| Complex32::new((k as f32 * 0.37).sin(), (k as f32 * 0.11).cos()))
            .collect();
        let w: Vec<f32> = (0..n)
            .map(|k| {
                if k % 7 == 3 {
                    0.0
                } else {
                    0.5 + (k % 5) as f32 * 0.25
                }
            })
            .collect();
        GroupVis {
            times_jd: vec![2.46e6, 2.46e6 + 1e-4, 2.46e6 + 2e-4],
            freqs: (0..5).map(|c| 1.4e9 + c as f64 * 1e6).collect(),
            channel_width_hz: 1e6,
            npol: np,
            baselines: (0..nbl).map(|b| (0, b + 1)).collect(),
            ant_pos: vec![[0.0; 3]; nbl + 1],
            antenna_names: (0..=nbl).map(|a| a.to_string()).collect(),
            site: crate::primitives::astrometry::Site::from_geodetic_deg(37.2, -118.3, 1222.0),
            pointing_dec_rad: 0.5,
            vis,
            weight: Weights::from_f32(&w),
            meta: crate::core::GroupMeta::default(),
        }
    }

    fn bits(v: &[Complex32]) -> Vec<(u32, u32)> {
        v.iter().map(|c| (c.re.to_bits(), c.im.to_bits())).collect()
    }

    /// Without a correction both forms equal `into_stokes_i` bit for bit (and an identity
    /// correction in place too); the flagged count is the group's.
    #[test]
    fn uncorrected_equals_into_stokes_i() {
        for (nbl, np) in [(1, 2), (2, 2), (3, 2), (9, 2), (17, 2), (5, 1), (4, 4)] {
            let g = group(nbl, np);
            let want = g.clone().into_stokes_i();
            let count = g.weight.count_flagged();
            let (c, (raw_v, _)) = g.clone().into_stokes_i_corrected_reusing(None, None);
            assert_eq!(bits(&c.stokes.vis), bits(&want.vis), "{nbl} x {np}");
            assert_eq!(c.stokes.weight, want.weight);
            assert_eq!((c.flagged, c.stokes.npol), (count, 1));
            assert_eq!(raw_v, g.vis);
            let c = g.into_stokes_i_corrected(&|_, _, _| {});
            assert_eq!(
                bits(&c.stokes.vis),
                bits(&want.vis),
                "{nbl} x {np} in place"
            );
            assert_eq!(c.stokes.weight, want.weight);
            assert_eq!(c.flagged, count);
        }
    }

    /// A correction scaling baseline b by (b + 2) and its weights by 1 / (b + 2)^2, and
    /// flagging its first sample, gives the formula on the corrected samples, in place
    /// and into buffers alike.
    #[test]
    fn each_baseline_is_corrected_before_combining() {
        let hook = |b: usize, v: &mut [Complex32], w: &mut [f32]| {
            let f = (b + 2) as f32;
            v.iter_mut().for_each(|x| *x *= f);
            w.iter_mut().for_each(|x| *x /= f * f);
            w[0] = 0.0;
        };
        for (nbl, np) in [(1, 2), (7, 2), (12, 1), (5, 3)] {
            let g = group(nbl, np);
            let r = 15 * np;
            let mut want_flagged = 0;
            let mut want = Vec::new();
            for i in 0..nbl * 15 {
                let b = i / 15;
                let f = (b + 2) as f64;
                let (mut sv, mut sw) = (Complex64::new(0.0, 0.0), 0.0);
                for q in 0..np {
                    let k = i * np + q;
                    let mut w = g.weight.get(k) as f64 / (f * f);
                    if k % r == 0 {
                        w = 0.0;
                    }
                    if w > 0.0 {
                        let x = g.vis[k];
                        sv += Complex64::new(x.re as f64, x.im as f64) * f * w;
                        sw += w;
                    } else {
                        want_flagged += 1;
                    }
                }
                let v = if np == 1 {
                    let x = g.vis[i];
                    Complex64::new(x.re as f64, x.im as f64) * f
                } else if sw > 0.0 {
                    sv / sw
                } else {
                    sv
                };
                want.push((v, sw));
            }
            let (a, _) = g.clone().into_stokes_i_corrected_reusing(None, Some(&hook));
            let b = g.into_stokes_i_corrected(&hook);
            for c in [&a, &b] {
                assert_eq!(c.flagged, want_flagged, "{nbl} x {np}");
                for (i, (v, w)) in want.iter().enumerate() {
                    let got = c.stokes.vis[i];
                    assert!(
                        (got.re as f64 - v.re).abs() < 1e-6 && (got.im as f64 - v.im).abs() < 1e-6,
                        "{nbl} x {np} sample {i}: {got} vs {v}"
                    );
                    assert!((c.stokes.weight[i] as f64 - w).abs() <= 1e-6 * w);
                }
            }
            assert_eq!(bits(&a.stokes.vis), bits(&b.stokes.vis));
        }
    }
}
