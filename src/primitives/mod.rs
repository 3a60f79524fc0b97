//! Primitives that know nothing of the pipeline: time, frames, UVW and rephasing,
//! gridding kernels, FFTs, the primary beam and robust statistics.

pub mod astrometry;
pub mod beam;
pub mod fft;
pub mod iers;
pub mod kernel;
pub mod stats;
pub mod time;
pub mod wgridder;

/// Speed of light in vacuum (m/s).
pub const C_M_S: f64 = 299_792_458.0;
