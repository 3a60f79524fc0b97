//! CLEAN's residual images held by a backend through one Clark minor cycle
//! (`Compute::hold_images`): each round's peak and pixel list are found where the images
//! are and the round's components subtracted there, so between rounds only the peak, the
//! list and the components cross the bus (on a device: `compute::device_residual`,
//! `kernels/residual.cu`). The CPU keeps its images on the host (`imaging::clark`'s own
//! steps, which every backend's answers equal).

use super::convolve::PsfHat;
use super::GpuError;

/// A minor cycle's residual images (one a spectral term, n x n) and which pixels may take
/// components, held by a backend.
pub trait HeldImages {
    /// The largest |residual| of term 0 over the eligible pixels (0 where there is none).
    fn peak(&mut self) -> Result<f64, GpuError>;
    /// The eligible pixels whose term-0 |residual| exceeds `limit`, in index order, with
    /// their term-0 values.
    fn above(&mut self, limit: f64) -> Result<Vec<(u32, f64)>, GpuError>;
    /// Term `t`'s values at pixels `idx`.
    fn values(&mut self, t: usize, idx: &[u32]) -> Result<Vec<f64>, GpuError>;
    /// A round's components (per term) convolved with the PSFs as
    /// `Compute::convolve_components` convolves them, subtracted from every term.
    fn subtract(&mut self, comps: &[Vec<(usize, f64)>], hats: &[&PsfHat]) -> Result<(), GpuError>;
    /// The images as they are now, into `out` (one n x n vector a term).
    fn fetch(&mut self, out: &mut [Vec<f64>]) -> Result<(), GpuError>;
}
