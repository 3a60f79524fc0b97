//! The calibration stage's settings (`calibration:` in the settings file).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Calibration (see src/calibrate).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CalConfig {
    pub enabled: bool,
    /// VLA calibrator list (NRAO calibrator-manual format; the 20cm flux is used). Unset
    /// (null): the list built into contimg (configs/dsa110/vlacalibrators.txt).
    pub calibrator_list: Option<PathBuf>,
    /// The calibrator's sky model also holds every other source of this catalogue (VLA
    /// calibrator-list format, e.g. NVSS sources around the calibrators) that passes within
    /// `model_radius_deg` of the pointing during the calibrator groups with a flux x Airy
    /// response of at least `model_min_fraction` of the calibrator's. Unset (null): the
    /// calibrator list itself.
    pub model_catalog: Option<PathBuf>,
    pub model_radius_deg: f64,
    pub model_min_fraction: f64,
    /// Calibrators passing within this distance of the pointing (deg) are candidates,
    /// weighted by 20cm flux x primary-beam response; the strongest is used.
    pub max_offset_deg: f64,
    pub min_flux_jy: f64,
    /// Groups with an integration within +-span/2 of the transit are solved on (minutes).
    pub span_minutes: f64,
    /// Reference antennas (station numbers), in order of preference.
    pub refants: Vec<u32>,
    pub min_snr: f64,
    /// Minimum unflagged baselines per antenna for a solution.
    pub min_baselines: usize,
    /// Baselines shorter than this (wavelengths) are left out of the solve.
    pub uv_min_lambda: f64,
    /// Gain solution interval (s) after the bandpass; 0 = one solution over the span (the
    /// bandpass then carries the whole complex gain).
    pub gain_interval_s: f64,
    pub max_iterations: usize,
    /// StefCal stops when the relative change of the gains falls below this (the floor for
    /// noiseless data), ...
    pub tolerance: f64,
    /// ... or when every antenna's update is below this fraction of its own noise-limited
    /// gain error. A cell still moving by more than its noise after `max_iterations` is
    /// flagged (not_converged), never fatal.
    pub noise_tolerance: f64,
    /// Robust step: a baseline whose residual in a cell is this many standard deviations
    /// above the cell's typical residual is left out and the cell re-solved (0 = off).
    pub outlier_sigma: f64,
    /// Delay solve before the bandpass (the old pipeline's kcal): `auto` solves and keeps
    /// the delays that are significant (> 5 standard errors and winding the phase by
    /// >= 10 deg across the band), `on` keeps every solved delay, `off` solves none.
    pub delay: DelayMode,
    /// Calibration registry shared across nights/jobs; default `<output>/cal/registry.jsonl`.
    pub registry: Option<PathBuf>,
    /// Apply the nearest calibration (within +-24 h) to every group before imaging.
    pub apply: bool,
    /// Fail a group that has no calibration within +-24 h (false: image it uncalibrated).
    pub require: bool,
}

impl Default for CalConfig {
    fn default() -> Self {
        CalConfig {
            enabled: true,
            calibrator_list: None,
            model_catalog: None,
            model_radius_deg: 2.5,
            model_min_fraction: 0.001,
            max_offset_deg: 1.5,
            min_flux_jy: 1.0,
            span_minutes: 10.0,
            refants: vec![103, 104, 105, 106, 107, 108, 109, 110],
            min_snr: 3.0,
            min_baselines: 4,
            uv_min_lambda: 1000.0,
            gain_interval_s: 0.0,
            max_iterations: 200,
            tolerance: 1e-10,
            noise_tolerance: 0.02,
            outlier_sigma: 6.0,
            delay: DelayMode::Auto,
            registry: None,
            apply: true,
            require: true,
        }
    }
}

/// Whether calibration solves per-antenna delays before the bandpass.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DelayMode {
    #[default]
    Auto,
    On,
    Off,
}
