//! Primitives that know nothing of the pipeline: time, frames, UVW and rephasing,
//! gridding kernels, FFTs, the primary beam and robust statistics.

pub mod astrometry;
pub mod beam;
pub mod check;
pub mod fft;
pub mod iers;
pub mod kernel;
mod kernel_shapes;
pub mod stats;
pub mod table;
pub mod time;
pub mod turns;
pub mod wgridder;

/// Speed of light in vacuum (m/s).
pub const C_M_S: f64 = 299_792_458.0;

/// The rephasing factor exp(-2 pi i dw nu / c) for a w change `dw_m` (m) at `freq_hz`
/// (phase in f64, result f32).
#[inline]
pub fn rephase_factor(dw_m: f64, freq_hz: f64) -> num_complex::Complex32 {
    let (s, c) = (-std::f64::consts::TAU * dw_m * freq_hz / C_M_S).sin_cos();
    num_complex::Complex32::new(c as f32, s as f32)
}

/// FNV-1a, 64 bit: a stable hash (the std hasher may change between Rust releases).
pub fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
