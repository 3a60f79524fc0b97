//! A group's flagging planes kept by one owner for the whole flagger: the
//! cross-correlations' amplitudes and flags as consecutive nt x nf planes, baseline-major
//! and polarization-minor (plane `c * np + p` is cross-correlation c, polarization p). The
//! flag stage runs every step on them through this seam: the per-baseline passes with the
//! array's excess power, the array's cells, SIR, dead antennas' planes and the amplitude
//! clip. The host's owner is the group itself (flag::planes::HostPlanes, steps batched onto
//! a `Compute`); a device's (`Compute::hold_planes`, compute::device_planes) copies the
//! amplitudes and flags up once and the flags down once, instead of both every pass.

use super::flag_pass::ExcessPower;
use super::{GpuError, Schedule, Smoothing};

/// One per-baseline pass over every plane: each plane's masked background (the flags and
/// `cells` left out), robust noise and residuals over it; the array's excess power of the
/// residuals of usable planes (samples flagged before the pass left out, squares clipped at
/// `clip`^2); with `sumthreshold`, SumThreshold of the residuals (and of their negatives
/// when two-sided) from the flags before the pass, its flags kept on usable planes outside
/// `cells` (which SumThreshold reads as zeros).
pub struct PlanesPass<'a> {
    pub smoothing: Smoothing,
    /// The array's provisional cells (nt x nf), or empty for none.
    pub cells: &'a [bool],
    pub sumthreshold: Option<(Schedule, bool)>,
    pub clip: f32,
}

/// The flagger's steps on planes its owner keeps. After an Err the planes' flags may hold
/// part of the failed step: the caller gives them up.
pub trait FlagPlanes {
    /// A pass (see PlanesPass): the array's excess power per cell, the flags kept.
    fn pass(&mut self, job: &PlanesPass) -> Result<ExcessPower, GpuError>;
    /// Flags the cells (nt x nf) on every plane.
    fn flag_cells(&mut self, cells: &[bool]) -> Result<(), GpuError>;
    /// SIR dilation of each plane's flags outside `cells` (which are flagged already).
    fn sir(&mut self, cells: &[bool], eta: f64, extend: bool) -> Result<(), GpuError>;
    /// The flagged samples of each plane.
    fn counts(&mut self) -> Result<Vec<usize>, GpuError>;
    /// Flags every sample of the planes `which` lists (one a plane).
    fn flag_planes(&mut self, which: &[bool]) -> Result<(), GpuError>;
    /// The amplitude clip's statistics subset of polarization `pol`: its sample
    /// i = j * stride for j < m (counting plane by plane over its planes), or a negative or
    /// non-finite value where that sample is flagged.
    fn clip_sample(&mut self, pol: usize, stride: usize, m: usize) -> Result<Vec<f32>, GpuError>;
    /// Flags polarization `pol`'s unflagged samples whose amplitude is above `limit`.
    fn clip(&mut self, pol: usize, limit: f32) -> Result<(), GpuError>;
    /// Every plane's flags, one a sample.
    fn flags(&mut self) -> Result<Vec<bool>, GpuError>;
}

/// The planes a backend is asked to hold: `planes` of nt x nf samples, `np` polarizations a
/// cross-correlation.
#[derive(Debug, Clone, Copy)]
pub struct PlanesShape {
    pub planes: usize,
    pub np: usize,
    pub nt: usize,
    pub nf: usize,
}

/// What fills the held planes: `fill(first, amp, flags)` writes planes first.. of the
/// amplitudes and flags into the slices it is given (whole planes, in order, as many as
/// they hold), so a device copies them up in pieces without a second copy of the group on
/// the host.
pub type PlanesFill<'a> = dyn FnMut(usize, &mut [f32], &mut [bool]) + 'a;
