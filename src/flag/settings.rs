//! The flagging stage's settings (`flagging:` in the settings file).

use serde::{Deserialize, Serialize};

/// RFI flagging (see src/flag). Defaults follow AOFlagger where it has one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FlagConfig {
    pub enabled: bool,
    /// Flag autocorrelations (they never enter calibration or imaging either way).
    pub flag_autocorrelations: bool,
    /// Frequency ranges to flag, [lo, hi] MHz inclusive.
    pub channel_ranges_mhz: Vec<[f64; 2]>,
    /// UTC ranges to flag, ["YYYY-MM-DDTHH:MM:SS", "..."] inclusive.
    pub time_ranges_utc: Vec<[String; 2]>,
    /// An antenna with more than this fraction of its cross-correlations flagged is dead:
    /// all its baselines are flagged.
    pub dead_antenna_fraction: f64,
    pub sumthreshold: SumThresholdConfig,
    /// The array-wide pass on baseline-averaged excess power (see src/flag/array.rs): RFI
    /// that every baseline sees, found with sqrt(N_baselines) more sensitivity and flagged
    /// on every baseline.
    pub array: ArrayFlagConfig,
    /// Also run SumThreshold on the baseline-averaged amplitude residuals of the
    /// per-baseline pass (the older array-wide pass; `array` supersedes it).
    pub combined: bool,
    /// Largest SumThreshold window (samples, both axes) on the baseline average: it is for
    /// short, weak events; longer smooth structure there is sky and beam, common to all
    /// baselines, not interference.
    pub combined_max_window: usize,
    /// Per-timestep / per-channel RMS outlier threshold (robust sigmas; 0 = off).
    pub rms_outlier_sigma: f64,
    /// SIR dilation eta (0 = off).
    pub sir_eta: f64,
    /// SIR also extends runs of flags beyond their ends (by up to eta / (1 - eta) of their
    /// length); false: it only fills the gaps between flags (a burst over 400 channels is not
    /// widened by 100 channels of clean data on each side).
    pub sir_extend: bool,
    /// Final amplitude clip: median + k x 1.4826 MAD per polarization (0 = off).
    pub clip_sigma: f64,
    /// Write each group's final flags to `flags/<group>.h5` in the output.
    pub write_flags: bool,
}

impl Default for FlagConfig {
    fn default() -> Self {
        FlagConfig {
            enabled: true,
            flag_autocorrelations: true,
            channel_ranges_mhz: vec![],
            time_ranges_utc: vec![],
            dead_antenna_fraction: 0.95,
            sumthreshold: SumThresholdConfig::default(),
            array: ArrayFlagConfig::default(),
            combined: false,
            combined_max_window: 4,
            rms_outlier_sigma: 6.0,
            sir_eta: 0.2,
            sir_extend: false,
            clip_sigma: 7.0,
            write_flags: false,
        }
    }
}

/// The array-wide flagging pass (src/flag/array.rs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ArrayFlagConfig {
    pub enabled: bool,
    /// SumThreshold on the array plane: single-cell threshold (robust sigmas of the plane),
    /// window schedule chi1 / rho^log2(M), largest windows (time, channels), iterations at
    /// thresholds x 2^(n-1-k).
    pub chi1: f32,
    pub rho: f32,
    pub max_window_time: usize,
    pub max_window_chan: usize,
    pub iterations: usize,
    /// A channel the pass flagged over at least half of the group: its other cells above
    /// this (robust sigmas of the plane) are flagged too (0 = off).
    pub line_sigma: f32,
    /// Width (MHz) of the running median over channels that sets each baseline's power
    /// level: wider than narrowband interference, narrower than bandpass structure.
    pub level_width_mhz: f64,
    /// One baseline's normalised excess power is clipped to +-clip before the sum.
    pub clip: f32,
    /// The array plane's smooth background: Gaussian widths along time (s, local-quadratic)
    /// and frequency (MHz, local-linear).
    pub background_sigma_s: f64,
    pub background_sigma_mhz: f64,
    /// Fewer cross-correlations than this: the pass is skipped (no sqrt(N) gain to use).
    pub min_baselines: usize,
}

impl Default for ArrayFlagConfig {
    fn default() -> Self {
        ArrayFlagConfig {
            enabled: false,
            chi1: 6.0,
            rho: 1.5,
            max_window_time: 16,
            max_window_chan: 64,
            iterations: 3,
            line_sigma: 2.0,
            level_width_mhz: 4.0,
            clip: 5.0,
            background_sigma_s: 60.0,
            background_sigma_mhz: 1.0,
            min_baselines: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SumThresholdConfig {
    pub enabled: bool,
    /// Threshold for single samples, in robust sigmas of the background-subtracted amplitude.
    pub chi1: f32,
    /// Window M has threshold chi1 / rho^log2(M) on its mean (AOFlagger's schedule).
    pub rho: f32,
    /// Largest windows (samples) along time and frequency.
    pub max_window_time: usize,
    pub max_window_chan: usize,
    /// Iterations; iteration k runs at sensitivity 2^-(iterations-1-k) x the thresholds.
    pub iterations: usize,
    /// Also flag runs of negative amplitude residuals (SumThreshold on their own): beside a
    /// bright source interference lowers the amplitude as often as it raises it.
    pub two_sided: bool,
    /// Gaussian background widths along time (s) and frequency (MHz): physical units, so
    /// the background follows the bandpass whatever the channelisation.
    pub background_sigma_s: f64,
    pub background_sigma_mhz: f64,
}

impl Default for SumThresholdConfig {
    fn default() -> Self {
        SumThresholdConfig {
            enabled: true,
            chi1: 6.0,
            rho: 1.5,
            max_window_time: 8,
            max_window_chan: 16,
            iterations: 3,
            two_sided: true,
            background_sigma_s: 40.0,
            background_sigma_mhz: 2.0,
        }
    }
}
