//! Typed configuration (YAML). Every option has a default and is documented here and in
//! `configs/default.yaml`; `Config::load` validates after parsing.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config ({source})")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: invalid YAML or unknown option: {source}")]
    Parse { path: PathBuf, source: serde_yaml_ng::Error },
    #[error("{path}: {field}: {problem}")]
    Invalid { path: PathBuf, field: &'static str, problem: String },
}

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the night's UVH5 files are and how they are grouped.
    pub input: InputConfig,
    /// Where products go.
    pub output: OutputConfig,
    /// Imaging parameters.
    pub imaging: ImagingConfig,
    /// Earth orientation and frames.
    pub astrometry: AstrometryConfig,
    /// RFI flagging.
    pub flagging: FlagConfig,
    /// Calibration: solve on the night's calibrator transit, apply to every group.
    pub calibration: CalConfig,
    /// CPU or GPU per rank.
    pub compute: crate::gpu::ComputeConfig,
    /// DSA-110 station table (WGS84), used to check antenna positions and by `simulate`.
    /// Relative paths are taken from the working directory.
    pub station_table: PathBuf,
    /// The synthetic night written by `contimg simulate` (ignored by `contimg run`).
    pub simulate: SimConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            input: InputConfig::default(),
            output: OutputConfig::default(),
            imaging: ImagingConfig::default(),
            astrometry: AstrometryConfig::default(),
            flagging: FlagConfig::default(),
            calibration: CalConfig::default(),
            compute: crate::gpu::ComputeConfig::default(),
            station_table: PathBuf::from("configs/dsa110/DSA110_Station_Coordinates.csv"),
            simulate: SimConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// Directory searched (not recursively) for `YYYY-MM-DDTHH:MM:SS_sbNN.hdf5` files.
    pub dir: PathBuf,
    /// Subbands a complete group has (sb00..sb{n-1}); DSA-110 writes 16.
    pub n_subbands: usize,
    /// Skip groups missing any subband (true, the telescope pipeline's default) or image
    /// what is there (false). Missing subbands are reported either way.
    pub require_complete_groups: bool,
    /// File-name times within this many seconds may belong to one group (pre-filter only;
    /// groups are decided by `Header/time_array[0]`).
    pub filename_tolerance_s: f64,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig { dir: PathBuf::from("night"), n_subbands: 16, require_complete_groups: true, filename_tolerance_s: 120.0 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Output directory (created if needed): `images/`, `summary.json`.
    pub dir: PathBuf,
    /// Measurement Set export (`contimg convert`, or with `run` when `write` is set).
    pub ms: crate::ms::MsConfig,
    /// Rerunning skips images already done with the same inputs and retries failed groups
    /// (see src/resume.rs); false recomputes everything.
    pub resume: bool,
    /// A group that failed this many times is no longer retried (reported as skipped).
    pub max_retries: usize,
    /// After the night (rank 0): the mosaic of its tiles (`mosaic/`, needs CLEAN's pbcor
    /// images) and the QA report (`qa/report.{json,html}`).
    pub mosaic: bool,
    pub report: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { dir: PathBuf::from("out"), ms: Default::default(), resume: true, max_retries: 3, mosaic: true, report: true }
    }
}

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
    /// No CLEAN components within this fraction of the image size of each edge.
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
            clean_border: 0.125,
            max_major_cycles: 10,
            drift_beam_chunk: 0,
            nterms: 1,
            spectral_ref_hz: 1.405e9,
            pblimit: 0.2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AstrometryConfig {
    /// IERS `finals2000A` file (e.g. finals2000A.all) for UT1 - UTC. Without one UT1 = UTC
    /// is assumed and the resulting error bound (up to 0.9 s of sidereal time, 13.5" in RA)
    /// is logged.
    pub iers_file: Option<PathBuf>,
}

/// Calibration (see src/calibrate).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CalConfig {
    pub enabled: bool,
    /// VLA calibrator list (NRAO calibrator-manual format; the 20cm flux is used).
    pub calibrator_list: PathBuf,
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
    /// StefCal stops when the relative change of the gains falls below this.
    pub tolerance: f64,
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
            calibrator_list: PathBuf::from("configs/dsa110/vlacalibrators.txt"),
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
            registry: None,
            apply: true,
            require: true,
        }
    }
}

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
            enabled: true,
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
            background_sigma_s: 40.0,
            background_sigma_mhz: 2.0,
        }
    }
}

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
        SimGains { enabled: true, amplitude: 0.0129, amplitude_scatter: 0.1, phase_scatter_deg: 60.0, bandpass_amplitude: 0.1, bandpass_phase_deg: 20.0 }
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
        SimNoise { enabled: true, sefd_jy: 6000.0 }
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
        SimRfi { enabled: true, n_narrowband: 3, n_intermittent: 3, n_bursts: 1, n_ramps: 1, amplitude_sigma: [5.0, 50.0] }
    }
}

impl Config {
    /// Loads and validates a YAML config.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
        let cfg: Config = serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |field: &'static str, problem: String| Err(ConfigError::Invalid { path: path.into(), field, problem });
        let im = &self.imaging;
        if im.npix < 8 || im.npix % 2 != 0 {
            return bad("imaging.npix", format!("{} must be even and >= 8", im.npix));
        }
        if !(im.cell_arcsec > 0.0 && im.cell_arcsec.is_finite()) {
            return bad("imaging.cell_arcsec", format!("{} must be positive", im.cell_arcsec));
        }
        if (im.npix as f64 * im.cell_arcsec / 3600.0) > 60.0 {
            return bad("imaging.npix", "field wider than 60 deg: the SIN projection breaks down".into());
        }
        if !(im.epsilon >= 1e-14 && im.epsilon <= 0.1) {
            return bad("imaging.epsilon", format!("{} must be in [1e-14, 0.1]", im.epsilon));
        }
        if !(im.gain > 0.0 && im.gain <= 1.0 && im.mgain > 0.0 && im.mgain <= 1.0 && im.threshold_jy >= 0.0 && im.auto_threshold >= 0.0 && im.auto_mask >= 0.0) {
            return bad("imaging.gain", "gain and mgain in (0, 1], thresholds >= 0".into());
        }
        if !(im.taper_gaussian_arcsec >= 0.0 && im.taper_gaussian_arcsec.is_finite()) {
            return bad("imaging.taper_gaussian_arcsec", format!("{} must be >= 0", im.taper_gaussian_arcsec));
        }
        if !(0.0..0.5).contains(&im.clean_border) {
            return bad("imaging.clean_border", format!("{} must be in [0, 0.5)", im.clean_border));
        }
        if !(1..=2).contains(&im.nterms) {
            return bad("imaging.nterms", format!("{} must be 1 or 2", im.nterms));
        }
        if im.nterms == 2 && im.minor_cycle != crate::imaging::clean::MinorAlgorithm::Clark {
            return bad("imaging.nterms", "2 spectral terms need minor_cycle: clark".into());
        }
        if !(im.spectral_ref_hz > 0.0 && im.spectral_ref_hz.is_finite()) {
            return bad("imaging.spectral_ref_hz", format!("{} must be a positive frequency", im.spectral_ref_hz));
        }
        if !(im.pblimit > 0.0 && im.pblimit < 1.0) {
            return bad("imaging.pblimit", format!("{} must be in (0, 1)", im.pblimit));
        }
        if im.groups_per_image == 0 {
            return bad("imaging.groups_per_image", "must be at least 1".into());
        }
        if im.uv_min_lambda < 0.0 || im.uv_max_lambda < 0.0 || (im.uv_max_lambda > 0.0 && im.uv_max_lambda <= im.uv_min_lambda) {
            return bad("imaging.uv_min_lambda", format!("uv range [{}, {}] is empty or negative", im.uv_min_lambda, im.uv_max_lambda));
        }
        if !(self.compute.gpu_memory_gib >= 0.0 && self.compute.gpu_memory_gib.is_finite()) {
            return bad("compute.gpu_memory_gib", format!("{} must be >= 0", self.compute.gpu_memory_gib));
        }
        if self.output.ms.write && !crate::ms::AVAILABLE {
            return bad("output.ms.write", "this contimg was built without Measurement Set support (cargo build --release --features ms)".into());
        }
        if self.input.n_subbands == 0 || self.input.n_subbands > 16 {
            return bad("input.n_subbands", format!("{} must be 1..=16", self.input.n_subbands));
        }
        if !(self.input.filename_tolerance_s >= 0.0) {
            return bad("input.filename_tolerance_s", "must be >= 0".into());
        }
        let s = &self.simulate;
        if s.n_subbands == 0 || s.n_subbands > 16 {
            return bad("simulate.n_subbands", format!("{} must be 1..=16", s.n_subbands));
        }
        if s.n_channels == 0 || 384 % s.n_channels != 0 {
            return bad("simulate.n_channels", format!("{} must divide 384", s.n_channels));
        }
        if s.n_times == 0 || !(s.integration_s > 0.0) {
            return bad("simulate.n_times", "need at least one integration of positive length".into());
        }
        if s.antennas.is_empty() && (s.n_antennas < 2 || s.n_antennas > 117) {
            return bad("simulate.n_antennas", format!("{} must be 2..=117", s.n_antennas));
        }
        if crate::primitives::time::iso_to_jd(&s.start_time).is_none() {
            return bad("simulate.start_time", format!("{:?} is not YYYY-MM-DDTHH:MM:SS", s.start_time));
        }
        if s.pointing_dec_deg.abs() >= 90.0 {
            return bad("simulate.pointing_dec_deg", "must be within (-90, 90)".into());
        }
        if !(s.random_flux_jy[0] > 0.0 && s.random_flux_jy[1] >= s.random_flux_jy[0]) {
            return bad("simulate.random_flux_jy", "need 0 < min <= max".into());
        }
        let fl = &self.flagging;
        if !(0.0..=1.0).contains(&fl.dead_antenna_fraction) || fl.sir_eta < 0.0 || fl.sir_eta >= 1.0 || fl.clip_sigma < 0.0 {
            return bad("flagging", "dead_antenna_fraction in [0, 1], sir_eta in [0, 1), clip_sigma >= 0".into());
        }
        if let Some(r) = fl.time_ranges_utc.iter().find(|[a, b]| crate::primitives::time::iso_to_jd(a).is_none() || crate::primitives::time::iso_to_jd(b).is_none()) {
            return bad("flagging.time_ranges_utc", format!("{r:?} is not a pair of YYYY-MM-DDTHH:MM:SS times"));
        }
        if !(fl.sumthreshold.chi1 > 0.0 && fl.sumthreshold.rho >= 1.0) {
            return bad("flagging.sumthreshold", "chi1 > 0 and rho >= 1".into());
        }
        if !(fl.array.chi1 > 0.0 && fl.array.rho >= 1.0 && fl.array.clip > 0.0 && fl.array.level_width_mhz >= 0.0) {
            return bad("flagging.array", "chi1 > 0, rho >= 1, clip > 0, level_width_mhz >= 0".into());
        }
        if s.noise.enabled && !(s.noise.sefd_jy > 0.0) {
            return bad("simulate.noise.sefd_jy", "must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_unknown_keys_are_rejected() {
        Config::default().validate(Path::new("x")).unwrap();
        let e = serde_yaml_ng::from_str::<Config>("imaging: {npx: 3}").unwrap_err();
        assert!(e.to_string().contains("npx"));
        let c: Config = serde_yaml_ng::from_str("imaging: {npix: 7}").unwrap();
        assert!(c.validate(Path::new("x")).is_err());
    }
}
