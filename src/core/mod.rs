//! Core types every stage shares: the group's visibilities and metadata ([`GroupVis`],
//! [`GroupMeta`]), an image's phase centre ([`Centre`]), the telescope's constants
//! ([`telescope`]) and its station table ([`stations`]). A leaf: it imports only
//! `primitives`.

pub mod stations;
pub mod telescope;

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
/// One subband group in memory.
#[derive(Debug, Clone)]
pub struct GroupVis {
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
    /// nsamples, 0 where flagged.
    pub weight: Vec<f32>,
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

impl GroupVis {
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

    /// Combines each sample's polarizations into one in place: sum(w V) / sum(w) over the
    /// unflagged ones (w > 0), of weight sum(w) (0 where all are flagged). With XX and YY
    /// this is the Stokes I visibility exactly as the gridder combines them, in half the
    /// memory; every later step (weighting, subtraction of an unpolarized model, gridding)
    /// gives the same images from it. `npol` becomes 1; the buffers shrink.
    pub fn combine_polarizations(&mut self) {
        let np = self.npol;
        if np <= 1 {
            return;
        }
        let n = self.vis.len() / np;
        // Sample i is written at i, read from i np.. (i np >= i): in place, in order.
        for i in 0..n {
            let (mut sv, mut sw) = (num_complex::Complex64::new(0.0, 0.0), 0.0f64);
            for p in 0..np {
                let w = self.weight[i * np + p];
                if w > 0.0 {
                    let x = self.vis[i * np + p];
                    sv += num_complex::Complex64::new(x.re as f64, x.im as f64) * w as f64;
                    sw += w as f64;
                }
            }
            let v = if sw > 0.0 { sv / sw } else { sv };
            self.vis[i] = Complex32::new(v.re as f32, v.im as f32);
            self.weight[i] = sw as f32;
        }
        self.vis.truncate(n);
        self.vis.shrink_to_fit();
        self.weight.truncate(n);
        self.weight.shrink_to_fit();
        self.npol = 1;
    }
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
pub fn rephase_geometry(
    g: &GroupVis,
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
