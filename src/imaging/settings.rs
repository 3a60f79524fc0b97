//! The imaging stage's settings (`imaging:` in the settings file).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImagingConfig {
    /// Image size in pixels (square, even).
    pub npix: usize,
    /// Pixel size (arcsec).
    pub cell_arcsec: f64,
    /// Gridding accuracy (relative); sets the kernel support.
    pub epsilon: f64,
    /// Consecutive groups per image: 1 = one tile per group (default); N > 1 makes joint
    /// images whose grids are reduced over the ranks holding those groups.
    pub groups_per_image: usize,
    /// Exclude baselines shorter than this (wavelengths). 0 keeps all cross-correlations.
    pub uv_min_lambda: f64,
    /// Exclude baselines longer than this (wavelengths). 0 = no limit.
    pub uv_max_lambda: f64,
    /// natural | uniform | briggs (the density is combined over all groups and ranks of an
    /// image), and Briggs' robust parameter (-2 ~ uniform, +2 ~ natural).
    pub weighting: crate::imaging::weighting::Weighting,
    pub robust: f64,
    /// Gaussian taper: FWHM of the image-plane Gaussian (arcsec) whose transform multiplies
    /// the weights (WSClean's -taper-gaussian). 0 = no taper.
    pub taper_gaussian_arcsec: f64,
    /// CLEAN: total minor-cycle iterations (0 = dirty images only), loop gain, major-cycle
    /// gain (a major cycle starts when the peak fell by this fraction), absolute threshold
    /// (Jy/beam), auto-threshold and auto-mask (robust sigmas of the residual; 0 = off),
    /// the PSF patch half-size subtracted per component (pixels), and a cap on major cycles.
    pub niter: usize,
    /// Minor-cycle algorithm: clark (iterations on the brightest pixels, full-PSF
    /// subtraction by FFT between rounds) or hogbom (whole-image peak search).
    pub minor_cycle: crate::imaging::clean::MinorAlgorithm,
    pub gain: f64,
    pub mgain: f64,
    pub threshold_jy: f64,
    pub auto_threshold: f64,
    pub auto_mask: f64,
    pub psf_patch: usize,
    /// No CLEAN components within this fraction of the image size of each edge (nor ever
    /// on the outermost `imaging::clean::EDGE_PX` pixels).
    pub clean_border: f64,
    pub max_major_cycles: usize,
    /// Major cycles predict each chunk of this many consecutive integrations from the model
    /// weighted by the primary beam during the chunk over the image's mean beam (the sky
    /// drifts through the beam; see src/imaging/aterm.rs). 0 = one prediction for all.
    pub drift_beam_chunk: usize,
    /// Spectral terms of the CLEAN model (multi-term MFS, point components): 1 = one flux
    /// per component over the band; 2 = flux and spectral slope at `spectral_ref_hz`
    /// (x = (nu - ref) / ref weighted images and PSFs; needs the clark minor cycle).
    pub nterms: usize,
    /// Reference frequency (Hz) of the spectral terms: the band centre.
    pub spectral_ref_hz: f64,
    /// Primary-beam correction down to this fraction of the beam peak.
    pub pblimit: f64,
    /// Sources outside the image whose mean beam response at the band's lowest frequency
    /// reaches this fraction of the peak are fitted and subtracted from the visibilities
    /// (src/imaging/outliers.rs). 0 = off.
    pub outlier_min_beam: f64,
    /// The catalogue of those sources (VLA calibrator-list format); none = the
    /// calibration's `calibrator_list`.
    pub outlier_catalog: Option<PathBuf>,
}

impl ImagingConfig {
    /// The CLEAN minor-cycle parameters these options describe.
    pub fn clean_params(&self) -> crate::imaging::clean::CleanParams {
        crate::imaging::clean::CleanParams {
            algorithm: self.minor_cycle,
            niter: self.niter,
            gain: self.gain,
            mgain: self.mgain,
            threshold_jy: self.threshold_jy,
            auto_threshold: self.auto_threshold,
            auto_mask: self.auto_mask,
            psf_patch: self.psf_patch,
            border: self.clean_border,
        }
    }
}

impl Default for ImagingConfig {
    fn default() -> Self {
        ImagingConfig {
            npix: 2400,
            cell_arcsec: 6.0,
            epsilon: 1e-4,
            groups_per_image: 1,
            uv_min_lambda: 0.0,
            uv_max_lambda: 0.0,
            weighting: crate::imaging::weighting::Weighting::Natural,
            robust: 0.0,
            taper_gaussian_arcsec: 0.0,
            niter: 1000,
            minor_cycle: crate::imaging::clean::MinorAlgorithm::Clark,
            gain: 0.1,
            mgain: 0.8,
            threshold_jy: 0.0,
            auto_threshold: 3.0,
            auto_mask: 0.0,
            psf_patch: 256,
            clean_border: 0.0,
            max_major_cycles: 10,
            drift_beam_chunk: 0,
            nterms: 1,
            spectral_ref_hz: 1.405e9,
            pblimit: 0.2,
            outlier_min_beam: 0.05,
            outlier_catalog: None,
        }
    }
}
