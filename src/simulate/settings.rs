//! The simulator's settings (`simulate:` in the settings file).

use crate::primitives::check::{
    closed, count, ensure, finite, non_negative, open, pair, positive, SettingError,
};
use serde::{Deserialize, Serialize};

/// A synthetic night. Sizes default to the real telescope's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Random seed: the same seed and config give identical files.
    pub seed: u64,
    /// UTC start of the first group, `YYYY-MM-DDTHH:MM:SS`.
    pub start_time: String,
    pub n_groups: usize,
    /// Subbands per group (sb00 = highest frequency), at most 16.
    pub n_subbands: usize,
    /// Channels per subband; must divide 384 (48 = the real 244.14 kHz channels).
    pub n_channels: usize,
    /// Integrations per file (24 real), each `integration_s` long.
    pub n_times: usize,
    pub integration_s: f64,
    /// Stations to simulate (numbers 1..117). Empty: the first `n_antennas` of a spread
    /// selection across both arms and the outriggers.
    pub antennas: Vec<u32>,
    pub n_antennas: usize,
    /// Pointing declination of date (deg).
    pub pointing_dec_deg: f64,
    /// Telescope location written to the header.
    pub site_lat_deg: f64,
    pub site_lon_deg: f64,
    pub site_alt_m: f64,
    /// Explicit sources.
    pub sources: Vec<SimSource>,
    /// Extra random sources within the primary beam of each group.
    pub n_random_sources: usize,
    /// Flux range (Jy) of the random sources (log-uniform).
    pub random_flux_jy: [f64; 2],
    /// Per-antenna gains and bandpass (disabled: unit gains, data in Jy).
    pub gains: SimGains,
    /// Thermal noise from the SEFD (disabled: noiseless).
    pub noise: SimNoise,
    /// Injected RFI.
    pub rfi: SimRfi,
    /// Spread of the file-name timestamps around the group start (s).
    pub filename_jitter_s: f64,
    /// Write pyuvdata-3 shapes instead of the telescope's legacy shapes.
    pub pyuvdata3_shapes: bool,
    /// A calibrator from `calibration.calibrator_list` to transit through the beam centre in
    /// the middle of group `group`: overrides the start time (same UTC date) and the
    /// pointing declination, and adds the calibrator with its catalogue flux.
    pub calibrator: Option<SimCalibrator>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimCalibrator {
    pub name: String,
    #[serde(default)]
    pub group: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            start_time: "2026-03-14T05:00:00".into(),
            n_groups: 2,
            n_subbands: 16,
            n_channels: 48,
            n_times: 24,
            integration_s: 12.884_901_888,
            antennas: Vec::new(),
            n_antennas: 96,
            pointing_dec_deg: 54.6,
            site_lat_deg: 37.233_386_982,
            site_lon_deg: -118.283_405_115,
            site_alt_m: 1188.0,
            sources: Vec::new(),
            n_random_sources: 5,
            random_flux_jy: [0.05, 2.0],
            gains: SimGains::default(),
            noise: SimNoise::default(),
            rfi: SimRfi::default(),
            filename_jitter_s: 3.0,
            pyuvdata3_shapes: false,
            calibrator: None,
        }
    }
}

/// A point source: absolute J2000 position, or an offset from one group's image centre.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimSource {
    /// J2000 RA/Dec (deg). When absent, the position is `group`'s centre plus the offsets.
    #[serde(default)]
    pub ra_deg: Option<f64>,
    #[serde(default)]
    pub dec_deg: Option<f64>,
    #[serde(default)]
    pub group: usize,
    /// Offsets from the group centre along the image axes (deg): l east, m north.
    #[serde(default)]
    pub l_deg: f64,
    #[serde(default)]
    pub m_deg: f64,
    /// Flux density at 1.4 GHz (Jy).
    pub flux_jy: f64,
    #[serde(default)]
    pub spectral_index: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimGains {
    pub enabled: bool,
    /// Mean amplitude: data are correlation coefficients ~ flux / SEFD, so ~ 1/sqrt(SEFD).
    pub amplitude: f64,
    /// Fractional amplitude scatter between antennas.
    pub amplitude_scatter: f64,
    /// Phase scatter between antennas (deg).
    pub phase_scatter_deg: f64,
    /// Bandpass ripple: fractional amplitude and phase (deg) of smooth per-antenna ripples.
    pub bandpass_amplitude: f64,
    pub bandpass_phase_deg: f64,
}

impl Default for SimGains {
    fn default() -> Self {
        SimGains {
            enabled: true,
            amplitude: 0.0129,
            amplitude_scatter: 0.1,
            phase_scatter_deg: 60.0,
            bandpass_amplitude: 0.1,
            bandpass_phase_deg: 20.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimNoise {
    pub enabled: bool,
    /// System equivalent flux density per antenna (Jy).
    pub sefd_jy: f64,
}

impl Default for SimNoise {
    fn default() -> Self {
        SimNoise {
            enabled: true,
            sefd_jy: 6000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimRfi {
    pub enabled: bool,
    /// Channels with persistent narrowband RFI (all times), per group.
    pub n_narrowband: usize,
    /// Intermittent channels (a few consecutive integrations), per group.
    pub n_intermittent: usize,
    /// Broadband bursts (all channels, one integration), per group.
    pub n_bursts: usize,
    /// Weak narrowband signals ramping up linearly over the group, per group.
    pub n_ramps: usize,
    /// RFI amplitude range in units of the per-visibility thermal noise sigma.
    pub amplitude_sigma: [f64; 2],
}

impl Default for SimRfi {
    fn default() -> Self {
        SimRfi {
            enabled: true,
            n_narrowband: 3,
            n_intermittent: 3,
            n_bursts: 1,
            n_ramps: 1,
            amplitude_sigma: [5.0, 50.0],
        }
    }
}

impl SimConfig {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        count("simulate.n_groups", self.n_groups, 0, 10_000)?;
        count("simulate.n_subbands", self.n_subbands, 1, 16)?;
        ensure(
            self.n_channels >= 1 && 384 % self.n_channels == 0,
            "simulate.n_channels",
            || format!("must divide 384, got {}", self.n_channels),
        )?;
        count("simulate.n_times", self.n_times, 1, 100_000)?;
        positive("simulate.integration_s", self.integration_s)?;
        if self.antennas.is_empty() {
            count("simulate.n_antennas", self.n_antennas, 2, 117)?;
        }
        ensure(
            self.antennas.iter().all(|a| (1..=117).contains(a)),
            "simulate.antennas",
            || {
                format!(
                    "must be station numbers in 1..=117, got {:?}",
                    self.antennas
                )
            },
        )?;
        ensure(
            crate::primitives::time::iso_to_jd(&self.start_time).is_some(),
            "simulate.start_time",
            || format!("must be YYYY-MM-DDTHH:MM:SS, got {:?}", self.start_time),
        )?;
        open(
            "simulate.pointing_dec_deg",
            self.pointing_dec_deg,
            -90.0,
            90.0,
        )?;
        closed("simulate.site_lat_deg", self.site_lat_deg, -90.0, 90.0)?;
        closed("simulate.site_lon_deg", self.site_lon_deg, -360.0, 360.0)?;
        closed("simulate.site_alt_m", self.site_alt_m, -1e4, 1e5)?;
        for (i, s) in self.sources.iter().enumerate() {
            s.validate(i)?;
        }
        count(
            "simulate.n_random_sources",
            self.n_random_sources,
            0,
            100_000,
        )?;
        ensure(
            self.random_flux_jy.iter().all(|x| x.is_finite())
                && self.random_flux_jy[0] > 0.0
                && self.random_flux_jy[1] >= self.random_flux_jy[0],
            "simulate.random_flux_jy",
            || {
                format!(
                    "must be [min, max] with 0 < min <= max, got {:?}",
                    self.random_flux_jy
                )
            },
        )?;
        self.gains.validate()?;
        self.noise.validate()?;
        self.rfi.validate()?;
        non_negative("simulate.filename_jitter_s", self.filename_jitter_s, "")?;
        if let Some(c) = &self.calibrator {
            count("simulate.calibrator.group", c.group, 0, 10_000)?;
        }
        Ok(())
    }
}

impl SimSource {
    /// Checks source `i` of `simulate.sources`.
    pub fn validate(&self, i: usize) -> Result<(), SettingError> {
        let key = |k: &str| format!("simulate.sources[{i}].{k}");
        finite(&key("flux_jy"), self.flux_jy)?;
        finite(&key("spectral_index"), self.spectral_index)?;
        finite(&key("l_deg"), self.l_deg)?;
        finite(&key("m_deg"), self.m_deg)?;
        if let Some(ra) = self.ra_deg {
            finite(&key("ra_deg"), ra)?;
        }
        if let Some(dec) = self.dec_deg {
            closed(&key("dec_deg"), dec, -90.0, 90.0)?;
        }
        count(&key("group"), self.group, 0, 10_000)
    }
}

impl SimGains {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.enabled {
            positive("simulate.gains.amplitude", self.amplitude)?;
        } else {
            non_negative("simulate.gains.amplitude", self.amplitude, "")?;
        }
        non_negative(
            "simulate.gains.amplitude_scatter",
            self.amplitude_scatter,
            "",
        )?;
        non_negative(
            "simulate.gains.phase_scatter_deg",
            self.phase_scatter_deg,
            "",
        )?;
        non_negative(
            "simulate.gains.bandpass_amplitude",
            self.bandpass_amplitude,
            "",
        )?;
        non_negative(
            "simulate.gains.bandpass_phase_deg",
            self.bandpass_phase_deg,
            "",
        )
    }
}

impl SimNoise {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.enabled {
            positive("simulate.noise.sefd_jy", self.sefd_jy)
        } else {
            non_negative("simulate.noise.sefd_jy", self.sefd_jy, "")
        }
    }
}

impl SimRfi {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        count("simulate.rfi.n_narrowband", self.n_narrowband, 0, 10_000)?;
        count(
            "simulate.rfi.n_intermittent",
            self.n_intermittent,
            0,
            10_000,
        )?;
        count("simulate.rfi.n_bursts", self.n_bursts, 0, 10_000)?;
        count("simulate.rfi.n_ramps", self.n_ramps, 0, 10_000)?;
        pair("simulate.rfi.amplitude_sigma", self.amplitude_sigma, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_key_of_a_bad_value() {
        SimConfig::default().validate().unwrap();
        type Edit = fn(&mut SimConfig);
        let cases: [(Edit, &str); 12] = [
            (|c| c.integration_s = f64::NAN, "simulate.integration_s"),
            (|c| c.integration_s = 0.0, "simulate.integration_s"),
            (|c| c.n_channels = 7, "simulate.n_channels"),
            (|c| c.n_times = 0, "simulate.n_times"),
            (|c| c.pointing_dec_deg = 90.0, "simulate.pointing_dec_deg"),
            (|c| c.site_alt_m = f64::NAN, "simulate.site_alt_m"),
            (|c| c.random_flux_jy = [0.0, 1.0], "simulate.random_flux_jy"),
            (|c| c.noise.sefd_jy = -1.0, "simulate.noise.sefd_jy"),
            (
                |c| c.gains.phase_scatter_deg = f64::NAN,
                "simulate.gains.phase_scatter_deg",
            ),
            (
                |c| c.rfi.amplitude_sigma = [5.0, -1.0],
                "simulate.rfi.amplitude_sigma",
            ),
            (|c| c.filename_jitter_s = -3.0, "simulate.filename_jitter_s"),
            (
                |c| {
                    c.sources = vec![SimSource {
                        ra_deg: None,
                        dec_deg: Some(91.0),
                        group: 0,
                        l_deg: 0.0,
                        m_deg: 0.0,
                        flux_jy: 1.0,
                        spectral_index: 0.0,
                    }]
                },
                "simulate.sources[0].dec_deg",
            ),
        ];
        for (edit, key) in cases {
            let mut c = SimConfig::default();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.to_string().starts_with(key), "{e}");
        }
    }
}
