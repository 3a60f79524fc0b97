//! Core types every stage shares: the group's visibilities and metadata ([`GroupVis`],
//! [`GroupMeta`]), an image's phase centre ([`Centre`]), the telescope's constants
//! ([`telescope`]) and its station table ([`stations`]). A leaf: it imports only
//! `primitives`.

pub mod stations;
mod stokes;
pub mod telescope;
mod weights;

pub use stokes::{BaselineHook, Corrected};
pub use weights::{Weights, FLAGGED};

use crate::primitives::astrometry::{dot, sub, FrameOfDate, Site, V3};
use crate::primitives::iers::EarthOrientation;
use num_complex::Complex32;

/// An image's phase centre (J2000, rad).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Centre {
    pub ra_rad: f64,
    pub dec_rad: f64,
}

/// Layout of a group's data: `vis[((bl * n_times + t) * n_chan + c) * npol + p]` —
/// baseline-major, so each baseline's time x frequency plane is contiguous for flagging and
/// per-baseline work (`uvh5::group` loads it so, channels ascending, baselines a <= b,
/// polarizations (XX, YY), bad samples at weight 0).
/// One subband group in memory, its weights of type `W`: [`GroupVis`] as read (per
/// polarization, [`Weights`]: half floats), [`StokesGroup`] as held for imaging (Stokes I,
/// f32 imaging weights).
#[derive(Debug, Clone)]
pub struct Group<W> {
    pub times_jd: Vec<f64>,
    /// Channel frequencies (Hz), ascending.
    pub freqs: Vec<f64>,
    pub channel_width_hz: f64,
    pub npol: usize,
    /// (antenna number, antenna number) with a <= b; index into `ant_pos`.
    pub baselines: Vec<(usize, usize)>,
    /// ECEF offsets from the telescope location (m), per antenna number.
    pub ant_pos: Vec<V3>,
    pub antenna_names: Vec<String>,
    pub site: Site,
    /// Pointing declination of date (rad).
    pub pointing_dec_rad: f64,
    pub vis: Vec<Complex32>,
    /// nsamples (times |g_a g_b|^2 once calibrated), 0 where flagged.
    pub weight: W,
    /// What the files said beyond the data (for exports such as Measurement Sets).
    pub meta: GroupMeta,
}

/// Header facts carried along with a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMeta {
    pub telescope_name: String,
    /// Integration time (s).
    pub integration_s: f64,
    /// First channel (in the ascending axis) of each subband file's window, ascending.
    pub window_starts: Vec<usize>,
    /// Dish diameters (m) per antenna.
    pub dish_diameter_m: Vec<f64>,
}

impl Default for GroupMeta {
    fn default() -> Self {
        GroupMeta {
            telescope_name: "DSA-110".into(),
            integration_s: 12.884901888,
            window_starts: vec![0],
            dish_diameter_m: vec![],
        }
    }
}

/// A group as read, flagged and calibrated: per-polarization weights as half floats.
pub type GroupVis = Group<Weights>;

/// A group held for imaging (`GroupVis::into_stokes_i`): one polarization (Stokes I), f32
/// weights (the imaging weights once reweighted).
pub type StokesGroup = Group<Vec<f32>>;

impl<W> Group<W> {
    pub fn n_times(&self) -> usize {
        self.times_jd.len()
    }
    pub fn n_chan(&self) -> usize {
        self.freqs.len()
    }
    #[inline]
    pub fn index(&self, bl: usize, t: usize, c: usize, p: usize) -> usize {
        ((bl * self.n_times() + t) * self.n_chan() + c) * self.npol + p
    }

    /// The same group with its weights mapped by `f`.
    pub fn map_weight<V>(self, f: impl FnOnce(W) -> V) -> Group<V> {
        let Group {
            times_jd,
            freqs,
            channel_width_hz,
            npol,
            baselines,
            ant_pos,
            antenna_names,
            site,
            pointing_dec_rad,
            vis,
            weight,
            meta,
        } = self;
        Group {
            times_jd,
            freqs,
            channel_width_hz,
            npol,
            baselines,
            ant_pos,
            antenna_names,
            site,
            pointing_dec_rad,
            vis,
            weight: f(weight),
            meta,
        }
    }
}

impl GroupVis {
    /// A copy with f32 weights, polarizations kept (small groups and tests).
    pub fn with_f32_weights(&self) -> Group<Vec<f32>> {
        self.clone().map_weight(|w| w.to_f32_vec())
    }

    /// Combines each sample's polarizations into one: sum(w V) / sum(w) over the unflagged
    /// ones (w > 0), of weight sum(w) (0 where all are flagged). With XX and YY this is the
    /// Stokes I visibility exactly as the gridder combines them, in half the memory; every
    /// later step (weighting, subtraction of an unpolarized model, gridding) gives the same
    /// images from it. The visibilities are combined in place (and shrunk before the f32
    /// weights are made, so the peak stays below the group's as read); `npol` becomes 1.
    pub fn into_stokes_i(mut self) -> StokesGroup {
        let mut vis = std::mem::take(&mut self.vis);
        let np = self.npol.max(1);
        let n = vis.len() / np;
        let weight = &self.weight;
        let combine = |i: usize, src: &[Complex32]| combine_pols(weight, np, i, src);
        use rayon::prelude::*;
        if np > 1 && n > 0 {
            // In place and in parallel: sample i is written at i and read from i np.., so
            // for a block of samples [a, a np) every output lies below every input (and
            // past the earlier blocks' outputs): blocks of doubling size, each parallel.
            let first = combine(0, &vis[..np]);
            vis[0] = first;
            let mut a = 1;
            while a < n {
                let b = (a * np).min(n);
                let (out, src) = vis.split_at_mut(a * np);
                out[a..b]
                    .par_iter_mut()
                    .zip(src[..(b - a) * np].par_chunks(np))
                    .enumerate()
                    .for_each(|(k, (o, x))| *o = combine(a + k, x));
                a = b;
            }
        }
        vis.truncate(n);
        vis.shrink_to_fit();
        let w: Vec<f32> = (0..n)
            .into_par_iter()
            .map(|i| weight_sum(weight, np, i) as f32)
            .collect();
        self.vis = vis;
        self.npol = 1;
        // The half-float weights are freed here.
        self.map_weight(|_| w)
    }

    /// As `into_stokes_i` (the same values, bit for bit), written into separate buffers:
    /// `dest`'s when both hold exactly this group's samples (every element is overwritten,
    /// so memory already in use takes no page faults), new ones otherwise. Gives back the
    /// group's own buffers as read (visibilities, half-float weights) for the next group's
    /// read (`uvh5::group::load_group_into`).
    pub fn into_stokes_i_reusing(self, dest: Option<StokesBuffers>) -> (StokesGroup, RawBuffers) {
        let (c, raw) = self.into_stokes_i_corrected_reusing(dest, None);
        (c.stokes, raw)
    }
}

/// A group's buffers as read (visibilities, half-float weights), kept for the next read.
pub type RawBuffers = (Vec<Complex32>, Vec<half::f16>);
/// A held group's buffers (Stokes I visibilities, f32 weights), kept for the next group.
pub type StokesBuffers = (Vec<Complex32>, Vec<f32>);

impl StokesGroup {
    /// The visibility and weight buffers, for a later group's `into_stokes_i_reusing`.
    pub fn into_buffers(self) -> StokesBuffers {
        (self.vis, self.weight)
    }
}

/// Sample `i`'s unflagged weight sum over its `np` polarizations.
fn weight_sum(weight: &Weights, np: usize, i: usize) -> f64 {
    weight[i * np..(i + 1) * np]
        .iter()
        .filter(|&&w| w > FLAGGED)
        .map(|&w| weight.value(w) as f64)
        .sum()
}

/// Sample `i`'s polarizations `src` combined: sum(w V) / sum(w) over the unflagged ones
/// (the plain sum, zero, where all are flagged).
fn combine_pols(weight: &Weights, np: usize, i: usize, src: &[Complex32]) -> Complex32 {
    let mut sv = num_complex::Complex64::new(0.0, 0.0);
    for (p, x) in src.iter().enumerate() {
        let w = weight[i * np + p];
        if w > FLAGGED {
            sv += num_complex::Complex64::new(x.re as f64, x.im as f64) * weight.value(w) as f64;
        }
    }
    let sw = weight_sum(weight, np, i);
    let v = if sw > 0.0 { sv / sw } else { sv };
    Complex32::new(v.re as f32, v.im as f32)
}

/// Memory this process may still use (bytes): the smaller of MemAvailable and the cgroup's
/// limit less its usage; None where neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
            .map(|k| k * 1024)
    });
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
    };
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .map(|max| max.saturating_sub(read("/sys/fs/cgroup/memory.current").unwrap_or(0)));
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Per-row (u, v, w) (m) in the image basis and w_new - w_old (m) for a group, rows ordered
/// (baseline, time) like the group's data.
pub fn rephase_geometry<W>(
    g: &Group<W>,
    centre: Centre,
    eop: &EarthOrientation,
) -> (Vec<[f64; 3]>, Vec<f64>) {
    let nt = g.times_jd.len();
    let nbl = g.baselines.len();
    let mut uv = vec![[0.0; 3]; nbl * nt];
    let mut dw = vec![0.0; nbl * nt];
    for (t, &jd) in g.times_jd.iter().enumerate() {
        let frame = FrameOfDate::new(eop.epoch(jd), &g.site);
        let old = frame.hadec_basis(0.0, g.pointing_dec_rad);
        let new = frame.icrs_basis(centre.ra_rad, centre.dec_rad);
        for (b, &(a1, a2)) in g.baselines.iter().enumerate() {
            let bl = frame.ecef_to_tod(sub(g.ant_pos[a2], g.ant_pos[a1]));
            let n = new.project(bl);
            let w_old = dot(old.w, bl);
            uv[b * nt + t] = n;
            dw[b * nt + t] = n[2] - w_old;
        }
    }
    (uv, dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-polarization group of `n` samples on one baseline with some polarizations
    /// flagged; its visibilities and weights as f32.
    fn test_group(n: usize, seed: f32) -> (GroupVis, Vec<Complex32>, Weights) {
        let np = 2;
        let vis: Vec<Complex32> = (0..n * np)
            .map(|k| {
                let x = k as f32 + seed;
                Complex32::new((x * 0.37).sin(), (x * 0.11).cos())
            })
            .collect();
        let w: Vec<f32> = (0..n * np)
            .map(|k| {
                if k % 7 == 3 || (k % 11 == 5 && k % 2 == 0) {
                    0.0
                } else {
                    0.5 + (k % 5) as f32 * 0.25
                }
            })
            .collect();
        let weights = Weights::from_f32(&w);
        let g = GroupVis {
            times_jd: vec![2.46e6],
            freqs: vec![1.4e9; n],
            channel_width_hz: 1.0,
            npol: np,
            baselines: vec![(0, 1)],
            ant_pos: vec![[0.0; 3]; 2],
            antenna_names: vec!["a".into(), "b".into()],
            site: crate::primitives::astrometry::Site::from_geodetic_deg(37.2, -118.3, 1222.0),
            pointing_dec_rad: 0.5,
            vis: vis.clone(),
            weight: weights.clone(),
            meta: GroupMeta::default(),
        };
        (g, vis, weights)
    }

    /// The in-place, block-parallel combination equals the plain out-of-place formula at
    /// every sample (odd counts, so the doubling blocks end mid-way; flagged polarizations).
    #[test]
    fn stokes_i_in_place_equals_the_formula() {
        for n in [1usize, 2, 3, 7, 1000, 4099] {
            let (g, vis, weights) = test_group(n, 0.0);
            let s = g.into_stokes_i();
            assert_eq!((s.npol, s.vis.len(), s.weight.len()), (1, n, n));
            for i in 0..n {
                let (w0, w1) = (weights.get(2 * i) as f64, weights.get(2 * i + 1) as f64);
                let sw = w0 + w1;
                let x = |k: usize| num_complex::Complex64::new(vis[k].re as f64, vis[k].im as f64);
                let want = if sw > 0.0 {
                    (x(2 * i) * w0 + x(2 * i + 1) * w1) / sw
                } else {
                    num_complex::Complex64::new(0.0, 0.0)
                };
                let got = s.vis[i];
                assert!(
                    (got.re as f64 - want.re).abs() < 1e-6
                        && (got.im as f64 - want.im).abs() < 1e-6,
                    "n {n} i {i}: {got} vs {want}"
                );
                assert_eq!(s.weight[i], sw as f32, "n {n} i {i}");
            }
        }
    }

    /// The combination into separate buffers equals the in-place one bit for bit, into
    /// new buffers, into a previous group's (stale values all overwritten) and into
    /// buffers of the wrong size (replaced); the group's own buffers come back unchanged.
    #[test]
    fn stokes_i_into_reused_buffers_equals_in_place() {
        let mut spare: Option<StokesBuffers> = None;
        for (n, seed) in [(4099usize, 0.0f32), (4099, 3.5), (70_001, 1.25), (5, 2.0)] {
            let (g, vis, weights) = test_group(n, seed);
            let want = g.clone().into_stokes_i();
            let reused = spare.as_ref().map(|(v, _)| v.as_ptr());
            let (s, (raw_vis, raw_w)) = g.into_stokes_i_reusing(spare.take());
            assert_eq!((s.npol, s.vis.len(), s.weight.len()), (1, n, n));
            let bits = |v: &[Complex32]| {
                v.iter()
                    .map(|c| (c.re.to_bits(), c.im.to_bits()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&s.vis), bits(&want.vis), "n {n}");
            assert_eq!(s.weight, want.weight, "n {n}");
            assert_eq!(raw_vis, vis);
            assert_eq!(raw_w, weights.clone().into_stored());
            if let Some(p) = reused.filter(|_| seed == 3.5) {
                assert_eq!(s.vis.as_ptr(), p, "the previous group's buffer is reused");
            }
            spare = Some(s.into_buffers());
        }
    }
}
