//! The flagging stage's settings (`flagging:` in the settings file).

use crate::primitives::check::{
    at_least, closed, closed_open, count, ensure, non_negative, pair, positive, SettingError,
};
use crate::primitives::time::iso_to_jd;
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
    /// The array-wide pass on the baselines' excess power (see src/flag/array.rs):
    /// interference that every baseline sees, found with sqrt(N) more sensitivity than one
    /// baseline gives and flagged on every baseline.
    pub array: ArrayFlagConfig,
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
    /// window schedule chi1 / rho^log2(M), largest windows (time, channels). It runs after
    /// each of the per-baseline iterations, at their sensitivity.
    pub chi1: f32,
    pub rho: f32,
    pub max_window_time: usize,
    pub max_window_chan: usize,
    /// One baseline's normalised residual is clipped to +-clip before it is squared (one
    /// baseline's own interference cannot make a cell significant for the whole array).
    pub clip: f32,
    /// The smallest mean excess power per sample (units of the noise power) a single cell
    /// needs at full sensitivity, however many baselines average down the plane's noise:
    /// interference of amplitude a sigma adds a^2 / 2 (2 at a = 2).
    pub min_excess: f64,
    /// Fewer cross-correlations than this: the pass is skipped (no sqrt(N) gain to use).
    pub min_baselines: usize,
}

impl Default for ArrayFlagConfig {
    fn default() -> Self {
        ArrayFlagConfig {
            enabled: true,
            chi1: 6.0,
            rho: 1.5,
            max_window_time: 4,
            max_window_chan: 4,
            clip: 5.0,
            min_excess: 1.0,
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
    /// ... but never narrower than this many samples: on coarse channels a one-channel line
    /// would otherwise be its own background.
    pub background_min_samples: f64,
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
            background_min_samples: 1.0,
        }
    }
}

/// The SumThreshold options shared by the per-baseline and the array-wide passes, checked
/// under `section` (`flagging.sumthreshold`, `flagging.array`).
fn check_sumthreshold(
    section: &str,
    chi1: f32,
    rho: f32,
    windows: [usize; 2],
) -> Result<(), SettingError> {
    let key = |k: &str| format!("{section}.{k}");
    positive(&key("chi1"), f64::from(chi1))?;
    at_least(&key("rho"), f64::from(rho), 1.0)?;
    count(&key("max_window_time"), windows[0], 1, 4096)?;
    count(&key("max_window_chan"), windows[1], 1, 4096)
}

impl SumThresholdConfig {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        let key = |k: &str| format!("flagging.sumthreshold.{k}");
        check_sumthreshold(
            "flagging.sumthreshold",
            self.chi1,
            self.rho,
            [self.max_window_time, self.max_window_chan],
        )?;
        count(&key("iterations"), self.iterations, 1, 20)?;
        positive(&key("background_sigma_s"), self.background_sigma_s)?;
        positive(&key("background_sigma_mhz"), self.background_sigma_mhz)?;
        non_negative(
            &key("background_min_samples"),
            self.background_min_samples,
            "",
        )
    }
}

impl ArrayFlagConfig {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        check_sumthreshold(
            "flagging.array",
            self.chi1,
            self.rho,
            [self.max_window_time, self.max_window_chan],
        )?;
        positive("flagging.array.clip", f64::from(self.clip))?;
        non_negative("flagging.array.min_excess", self.min_excess, "")?;
        count(
            "flagging.array.min_baselines",
            self.min_baselines,
            0,
            1_000_000,
        )
    }
}

impl FlagConfig {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        closed(
            "flagging.dead_antenna_fraction",
            self.dead_antenna_fraction,
            0.0,
            1.0,
        )?;
        closed_open("flagging.sir_eta", self.sir_eta, 0.0, 1.0)?;
        non_negative("flagging.clip_sigma", self.clip_sigma, "0 = off")?;
        for r in &self.channel_ranges_mhz {
            pair("flagging.channel_ranges_mhz", *r, 0.0)?;
        }
        for r in &self.time_ranges_utc {
            let (a, b) = (iso_to_jd(&r[0]), iso_to_jd(&r[1]));
            ensure(
                a.is_some() && b.is_some(),
                "flagging.time_ranges_utc",
                || format!("{r:?} is not a pair of YYYY-MM-DDTHH:MM:SS times"),
            )?;
            ensure(a <= b, "flagging.time_ranges_utc", || {
                format!("{r:?}: the range ends before it starts")
            })?;
        }
        self.sumthreshold.validate()?;
        self.array.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_key_of_a_bad_value() {
        FlagConfig::default().validate().unwrap();
        type Edit = fn(&mut FlagConfig);
        let cases: [(Edit, &str); 14] = [
            (|c| c.sir_eta = f32::NAN as f64, "flagging.sir_eta"),
            (|c| c.sir_eta = -0.1, "flagging.sir_eta"),
            (|c| c.clip_sigma = f64::NAN, "flagging.clip_sigma"),
            (
                |c| c.dead_antenna_fraction = 1.5,
                "flagging.dead_antenna_fraction",
            ),
            (|c| c.array.min_excess = -1.0, "flagging.array.min_excess"),
            (
                |c| c.channel_ranges_mhz = vec![[1401.0, 1400.0]],
                "flagging.channel_ranges_mhz",
            ),
            (
                |c| c.time_ranges_utc = vec![["x".into(), "y".into()]],
                "flagging.time_ranges_utc",
            ),
            (
                |c| c.sumthreshold.chi1 = f32::NAN,
                "flagging.sumthreshold.chi1",
            ),
            (|c| c.sumthreshold.chi1 = 0.0, "flagging.sumthreshold.chi1"),
            (
                |c| c.sumthreshold.iterations = 0,
                "flagging.sumthreshold.iterations",
            ),
            (
                |c| c.sumthreshold.background_sigma_s = -40.0,
                "flagging.sumthreshold.background_sigma_s",
            ),
            (|c| c.array.rho = 0.5, "flagging.array.rho"),
            (|c| c.array.clip = f32::INFINITY, "flagging.array.clip"),
            (
                |c| c.array.max_window_chan = 0,
                "flagging.array.max_window_chan",
            ),
        ];
        for (edit, key) in cases {
            let mut c = FlagConfig::default();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.to_string().starts_with(key), "{e}");
        }
    }
}
