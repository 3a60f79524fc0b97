//! Imaging: rephase each integration to the image centre, grid, FFT. This first path makes
//! naturally weighted dirty images and PSFs.

pub mod aterm;
pub mod beamfit;
pub mod clark;
pub mod clean;
pub mod deconvolve;
pub mod held;
/// The w-stacking gridder and degridder, in the compute layer (re-exported here).
pub use crate::compute::{degridder, gridder};
pub mod outliers;
pub mod pb;
pub mod settings;
pub mod weighting;

pub use gridder::{GridPair, GridSpec, VisBlock};

/// The rephasing geometry, a function of core types (re-exported at its old path).
pub use crate::core::rephase_geometry;
/// The phase centre, a core type (re-exported at its old path).
pub use crate::core::Centre;
use crate::core::GroupVis;
use crate::primitives::iers::EarthOrientation;

/// Grids a loaded group into `grids` (cross-correlations only; its weights as f32 for the
/// call: 4 bytes a sample more, the pipeline grids held groups instead).
pub fn grid_group(grids: &mut GridPair, g: &GroupVis, centre: Centre, eop: &EarthOrientation) {
    let (uv, dw) = rephase_geometry(g, centre, eop);
    let weight = g.weight.to_f32_vec();
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
        weight: &weight,
        use_row: &use_row,
        workspace: None,
        resident: None,
    };
    grids.add(&block);
}
