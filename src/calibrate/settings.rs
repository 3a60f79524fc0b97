//! The calibration stage's settings (`calibration:` in the settings file).

use crate::primitives::check::{
    closed, count, ensure, non_negative, open, open_closed, SettingError,
};
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

impl CalConfig {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        open_closed("calibration.max_offset_deg", self.max_offset_deg, 0.0, 90.0)?;
        closed(
            "calibration.model_radius_deg",
            self.model_radius_deg,
            0.0,
            10.0,
        )?;
        non_negative(
            "calibration.model_min_fraction",
            self.model_min_fraction,
            "",
        )?;
        non_negative("calibration.min_flux_jy", self.min_flux_jy, "")?;
        open_closed("calibration.span_minutes", self.span_minutes, 0.0, 1440.0)?;
        ensure(!self.refants.is_empty(), "calibration.refants", || {
            "must name at least one reference antenna".into()
        })?;
        ensure(
            self.refants.iter().all(|&a| (1..=1000).contains(&a)),
            "calibration.refants",
            || {
                format!(
                    "must be station numbers in 1..=1000, got {:?}",
                    self.refants
                )
            },
        )?;
        non_negative("calibration.min_snr", self.min_snr, "")?;
        count("calibration.min_baselines", self.min_baselines, 1, 100_000)?;
        non_negative("calibration.uv_min_lambda", self.uv_min_lambda, "")?;
        let gi = self.gain_interval_s;
        ensure(
            gi == 0.0 || (1.0..=86400.0).contains(&gi),
            "calibration.gain_interval_s",
            || format!("must be 0 (one solution) or finite and in [1, 86400] s, got {gi}"),
        )?;
        ensure(
            gi == 0.0 || self.span_minutes * 60.0 / gi <= 10_000.0,
            "calibration.gain_interval_s",
            || {
                format!(
                    "{gi} s makes {:.0} solution intervals over calibration.span_minutes {} (at most 10000)",
                    self.span_minutes * 60.0 / gi,
                    self.span_minutes
                )
            },
        )?;
        count(
            "calibration.max_iterations",
            self.max_iterations,
            1,
            1_000_000,
        )?;
        open("calibration.tolerance", self.tolerance, 0.0, 1.0)?;
        open_closed(
            "calibration.noise_tolerance",
            self.noise_tolerance,
            0.0,
            1.0,
        )?;
        let s = self.outlier_sigma;
        ensure(
            s == 0.0 || (s >= 3.0 && s.is_finite()),
            "calibration.outlier_sigma",
            || format!("must be 0 (off) or finite and >= 3, got {s}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_key_of_a_bad_value() {
        CalConfig::default().validate().unwrap();
        type Edit = fn(&mut CalConfig);
        let cases: [(Edit, &str); 14] = [
            (|c| c.tolerance = f64::NAN, "calibration.tolerance"),
            (|c| c.tolerance = 0.0, "calibration.tolerance"),
            (|c| c.noise_tolerance = -0.1, "calibration.noise_tolerance"),
            (|c| c.outlier_sigma = 1.0, "calibration.outlier_sigma"),
            (|c| c.outlier_sigma = f64::NAN, "calibration.outlier_sigma"),
            (|c| c.min_snr = f64::NAN, "calibration.min_snr"),
            (|c| c.max_iterations = 0, "calibration.max_iterations"),
            (|c| c.gain_interval_s = -5.0, "calibration.gain_interval_s"),
            (|c| c.gain_interval_s = 1e-6, "calibration.gain_interval_s"),
            (|c| c.span_minutes = -10.0, "calibration.span_minutes"),
            (|c| c.span_minutes = f64::NAN, "calibration.span_minutes"),
            (|c| c.min_flux_jy = f64::INFINITY, "calibration.min_flux_jy"),
            (|c| c.min_baselines = 0, "calibration.min_baselines"),
            (|c| c.refants.clear(), "calibration.refants"),
        ];
        for (edit, key) in cases {
            let mut c = CalConfig::default();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.to_string().starts_with(key), "{e}");
        }
        let e = CalConfig {
            tolerance: f64::NAN,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "calibration.tolerance must be finite and in (0, 1), got NaN"
        );
    }
}
