//! The imaging stage's settings (`imaging:` in the settings file).

use super::clean::MinorAlgorithm;
use crate::primitives::check::{
    closed, closed_open, count, ensure, non_negative, open, open_closed, positive, SettingError,
};
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
    /// The accuracy of the residual images that only guide a further minor cycle (every
    /// major cycle's but the last; never finer than `epsilon`). The dirty image, the PSF and
    /// the final residual are gridded at `epsilon`; the model is always predicted exactly
    /// (or by degridding at `epsilon`), so this sets only where the minor cycles look, not
    /// what the images hold. 0 = `epsilon` throughout.
    pub cycle_epsilon: f64,
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
    /// Deeper minor cycles where the PSF predicts the major cycles well: after each major
    /// cycle the minor cycle's residual is compared with the re-gridded one, and the
    /// largest difference per Jy subtracted bounds the next minor cycle's error. A minor
    /// cycle then goes below the mgain limit, down to where that bound reaches this fraction
    /// of the residual peak (never above the mgain limit, never below the thresholds).
    /// 0 = the mgain limit alone (WSClean's behaviour).
    pub minor_error: f64,
    pub threshold_jy: f64,
    pub auto_threshold: f64,
    /// WSClean's -auto-mask (robust sigmas; 0 = off): CLEAN unmasked down to this level,
    /// then only on the pixels holding components, down to the thresholds.
    pub auto_mask: f64,
    pub psf_patch: usize,
    /// No CLEAN components within this fraction of the image size of each edge (nor ever
    /// on the outermost `imaging::clean::EDGE_PX` pixels).
    pub clean_border: f64,
    /// CLEAN's twice-size PSFs with the w-term (w-stacked like the images: ~16x the FFT
    /// work of the image's own planes); false = gridded at w = 0, one plane (their far
    /// sidelobes then those of a coplanar array; the major cycles keep the w-term).
    pub psf_w_terms: bool,
    pub max_major_cycles: usize,
    /// Major cycles predict each chunk of this many consecutive integrations from the model
    /// weighted by the primary beam during the chunk over the image's mean beam (the sky
    /// drifts through the beam; see src/imaging/aterm.rs). 0 = one prediction for all.
    pub drift_beam_chunk: usize,
    /// off | chunks (per `drift_beam_chunk`) | linear | quadratic | cubic (the beam a
    /// polynomial in time over each group: two to four predictions per group): how the
    /// degridding follows the drifting beam. Every scheme takes the beam's ratio as linear
    /// in frequency too. The direct prediction (`predict`) follows it exactly unless `off`.
    pub drift_beam: crate::imaging::aterm::DriftMode,
    /// How the major cycles predict the model's visibilities: grid (degrid the model
    /// images: w-stacking, the drifting beam per `drift_beam`), direct (each model pixel
    /// with flux as a point, a direct Fourier sum with the exact drifting beam per
    /// integration and channel and the exact channel average; its cost grows with the
    /// pixels holding flux) or auto (direct wherever it costs less, by
    /// `imaging::deconvolve::direct_is_cheaper`).
    pub predict: crate::imaging::deconvolve::PredictMode,
    /// Spectral terms of the CLEAN model (multi-term MFS, point components): 1 = one flux
    /// per component over the band; 2 = flux and spectral slope at `spectral_ref_hz`; 3 =
    /// and curvature (x = (nu - ref) / ref; term t's residual weighted by x^t, 2 nterms - 1
    /// PSFs weighted by x^k; needs the clark minor cycle).
    pub nterms: usize,
    /// Reference frequency (Hz) of the spectral terms: the band centre.
    pub spectral_ref_hz: f64,
    /// Primary-beam correction down to this fraction of the beam peak.
    pub pblimit: f64,
    /// Sources outside the image whose mean beam response at the band's lowest frequency
    /// reaches this fraction of the peak are fitted and subtracted from the visibilities
    /// (src/imaging/outliers.rs). 0 = off. 0.01 reaches the Airy beam's first sidelobe ring
    /// (peak 0.0175): in the demo a 5 Jy source at 0.042 of the beam, left in, held a tile
    /// at 1.38x thermal (1.02x subtracted).
    pub outlier_min_beam: f64,
    /// The catalogue of those sources (VLA calibrator-list format); none = the
    /// calibration's `calibrator_list`.
    pub outlier_catalog: Option<PathBuf>,
}

impl Default for ImagingConfig {
    fn default() -> Self {
        ImagingConfig {
            npix: 2400,
            cell_arcsec: 6.0,
            epsilon: 1e-4,
            cycle_epsilon: 1e-3,
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
            minor_error: 0.1,
            threshold_jy: 0.0,
            auto_threshold: 3.0,
            auto_mask: 0.0,
            psf_patch: 256,
            clean_border: 0.0,
            psf_w_terms: false,
            max_major_cycles: 10,
            drift_beam_chunk: 0,
            drift_beam: crate::imaging::aterm::DriftMode::Chunks,
            predict: crate::imaging::deconvolve::PredictMode::Auto,
            nterms: 1,
            spectral_ref_hz: 1.405e9,
            pblimit: 0.2,
            outlier_min_beam: 0.01,
            outlier_catalog: None,
        }
    }
}

impl ImagingConfig {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        ensure(
            self.npix >= 8 && self.npix.is_multiple_of(2) && self.npix <= 65536,
            "imaging.npix",
            || format!("must be even, in [8, 65536], got {}", self.npix),
        )?;
        positive("imaging.cell_arcsec", self.cell_arcsec)?;
        ensure(
            self.npix as f64 * self.cell_arcsec / 3600.0 <= 60.0,
            "imaging.npix",
            || {
                format!(
                    "{} x imaging.cell_arcsec {} is a field wider than 60 deg: the SIN projection breaks down",
                    self.npix, self.cell_arcsec
                )
            },
        )?;
        closed("imaging.epsilon", self.epsilon, 1e-14, 0.1)?;
        if self.cycle_epsilon != 0.0 {
            closed("imaging.cycle_epsilon", self.cycle_epsilon, 1e-14, 0.1)?;
        }
        count("imaging.groups_per_image", self.groups_per_image, 1, 10_000)?;
        non_negative("imaging.uv_min_lambda", self.uv_min_lambda, "")?;
        non_negative("imaging.uv_max_lambda", self.uv_max_lambda, "0 = no limit")?;
        ensure(
            self.uv_max_lambda == 0.0 || self.uv_max_lambda > self.uv_min_lambda,
            "imaging.uv_min_lambda",
            || {
                format!(
                    "must be below imaging.uv_max_lambda: the uv range [{}, {}] is empty",
                    self.uv_min_lambda, self.uv_max_lambda
                )
            },
        )?;
        closed("imaging.robust", self.robust, -5.0, 5.0)?;
        non_negative(
            "imaging.taper_gaussian_arcsec",
            self.taper_gaussian_arcsec,
            "0 = no taper",
        )?;
        count("imaging.niter", self.niter, 0, 100_000_000)?;
        open_closed("imaging.gain", self.gain, 0.0, 1.0)?;
        open_closed("imaging.mgain", self.mgain, 0.0, 1.0)?;
        closed_open("imaging.minor_error", self.minor_error, 0.0, 1.0)?;
        non_negative("imaging.threshold_jy", self.threshold_jy, "")?;
        non_negative("imaging.auto_threshold", self.auto_threshold, "0 = off")?;
        non_negative("imaging.auto_mask", self.auto_mask, "0 = off")?;
        count("imaging.psf_patch", self.psf_patch, 1, 131_072)?;
        closed_open("imaging.clean_border", self.clean_border, 0.0, 0.5)?;
        count("imaging.max_major_cycles", self.max_major_cycles, 1, 10_000)?;
        count(
            "imaging.drift_beam_chunk",
            self.drift_beam_chunk,
            0,
            1_000_000,
        )?;
        count("imaging.nterms", self.nterms, 1, 3)?;
        ensure(
            self.nterms == 1 || self.minor_cycle == MinorAlgorithm::Clark,
            "imaging.nterms",
            || "2 spectral terms need imaging.minor_cycle: clark".into(),
        )?;
        positive("imaging.spectral_ref_hz", self.spectral_ref_hz)?;
        open("imaging.pblimit", self.pblimit, 0.0, 1.0)?;
        closed_open("imaging.outlier_min_beam", self.outlier_min_beam, 0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_key_of_a_bad_value() {
        ImagingConfig::default().validate().unwrap();
        type Edit = fn(&mut ImagingConfig);
        let cases: [(Edit, &str); 9] = [
            (|c| c.cell_arcsec = f64::NAN, "imaging.cell_arcsec"),
            (|c| c.cell_arcsec = 0.0, "imaging.cell_arcsec"),
            (|c| c.robust = f64::NAN, "imaging.robust"),
            (|c| c.uv_min_lambda = -1.0, "imaging.uv_min_lambda"),
            (|c| c.gain = 0.0, "imaging.gain"),
            (|c| c.spectral_ref_hz = -1.4e9, "imaging.spectral_ref_hz"),
            (|c| c.max_major_cycles = 0, "imaging.max_major_cycles"),
            (|c| c.npix = 7, "imaging.npix"),
            (
                |c| c.taper_gaussian_arcsec = f64::INFINITY,
                "imaging.taper_gaussian_arcsec",
            ),
        ];
        for (edit, key) in cases {
            let mut c = ImagingConfig::default();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.to_string().starts_with(key), "{e}");
        }
    }
}
