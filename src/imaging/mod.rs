//! Imaging: rephase each integration to the image centre, grid, FFT. This first path makes
//! naturally weighted dirty images and PSFs.

pub mod aterm;
pub mod beamfit;
pub mod clark;
pub mod clean;
pub mod deconvolve;
/// The w-stacking gridder and degridder, in the compute layer (re-exported here).
pub use crate::compute::{degridder, gridder};
pub mod outliers;
pub mod pb;
pub mod weighting;

pub use gridder::{GridPair, GridSpec, VisBlock};

/// The phase centre, a core type (re-exported at its old path).
pub use crate::core::Centre;
use crate::core::GroupVis;
use crate::primitives::astrometry::{sub, FrameOfDate};
use crate::primitives::iers::EarthOrientation;

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
            let w_old = crate::primitives::astrometry::dot(old.w, bl);
            uv[b * nt + t] = n;
            dw[b * nt + t] = n[2] - w_old;
        }
    }
    (uv, dw)
}

/// Grids a loaded group into `grids` (cross-correlations only).
pub fn grid_group(grids: &mut GridPair, g: &GroupVis, centre: Centre, eop: &EarthOrientation) {
    let (uv, dw) = rephase_geometry(g, centre, eop);
    let nt = g.times_jd.len();
    let use_row: Vec<bool> = (0..uv.len())
        .map(|r| {
            let (a1, a2) = g.baselines[r / nt];
            a1 != a2
        })
        .collect();
    let block = VisBlock {
        freqs: &g.freqs,
        npol: g.npol,
        uvw_m: &uv,
        dw_m: &dw,
        vis: &g.vis,
        weight: &g.weight,
        use_row: &use_row,
    };
    grids.add(&block);
}
