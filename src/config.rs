//! Typed configuration (YAML). Every option has a default and is documented here and in
//! `configs/default.yaml`; `Config::load` validates after parsing.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config ({source})")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid YAML or unknown option: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("{path}: {field}: {problem}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },
    #[error("--set {spec}: {problem}")]
    Set { spec: String, problem: String },
}

/// Settings holding paths: relative ones in a settings file are taken from its folder.
const PATH_KEYS: [&[&str]; 9] = [
    &["input", "dir"],
    &["output", "dir"],
    &["station_table"],
    &["calibration", "calibrator_list"],
    &["calibration", "model_catalog"],
    &["calibration", "registry"],
    &["astrometry", "iers_file"],
    &["imaging", "outlier_catalog"],
    &["output", "photometry_catalog"],
];

/// Merges `over` into `base`: mappings key by key (recursively, so a later file overrides
/// just the options it names), anything else replaced.
fn merge(base: &mut serde_yaml_ng::Value, over: serde_yaml_ng::Value) {
    use serde_yaml_ng::Value;
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
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
    pub compute: crate::compute::ComputeConfig,
    /// Ranks of an MPI job.
    pub mpi: MpiConfig,
    /// DSA-110 station table (WGS84), used to check antenna positions and by `simulate`.
    /// Unset (null): the table built into contimg (configs/dsa110/).
    pub station_table: Option<PathBuf>,
    /// The synthetic night written by `contimg simulate` (ignored by `contimg run`).
    pub simulate: SimConfig,
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
        InputConfig {
            dir: PathBuf::from("night"),
            n_subbands: 16,
            require_complete_groups: true,
            filename_tolerance_s: 120.0,
        }
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
    /// After the night (rank 0): forced photometry of the catalogue's sources in every tile
    /// (`photometry/night.csv`; errors from the residual near each source).
    pub photometry: bool,
    /// Photometry catalogue: a CSV of name,ra_deg,dec_deg. Unset (null): the VLA calibrator
    /// list built into contimg.
    pub photometry_catalog: Option<PathBuf>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            dir: PathBuf::from("out"),
            ms: Default::default(),
            resume: true,
            max_retries: 3,
            mosaic: true,
            report: true,
            photometry: true,
            photometry_catalog: None,
        }
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MpiConfig {
    /// A rank waits this long (s) at a collective (a barrier, reduction, broadcast or gather)
    /// for the others; then the job ends (exit 124) with an error naming the ranks that did
    /// not arrive. It must cover the longest imbalance between ranks (one group's work).
    pub collective_timeout_s: f64,
}

impl Default for MpiConfig {
    fn default() -> Self {
        MpiConfig {
            collective_timeout_s: 1800.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AstrometryConfig {
    /// IERS `finals2000A` file (e.g. finals2000A.all) for UT1 - UTC and polar motion. Unset
    /// (null): the table built into contimg (2020 to its predictions' end, configs/iers/);
    /// past a table's end UT1 = UTC is assumed with a warning (up to 0.9 s of sidereal
    /// time, 13.5" in RA).
    pub iers_file: Option<PathBuf>,
}

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

impl Config {
    /// Loads and validates a YAML settings file (relative paths in it are taken from its folder).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_layered(&[path.to_path_buf()], &[])
    }

    /// The effective settings: the defaults, then each file in order (a later file overrides
    /// the options it names, section by section), then each `key.path=value` (the value is
    /// YAML: `imaging.npix=300`, `flagging.channel_ranges_mhz=[[1400, 1401]]`). Relative
    /// paths inside a file are taken from that file's folder; those given by `--set`, from
    /// the working directory. Validated once, at the end, naming the offending key.
    pub fn load_layered(files: &[PathBuf], sets: &[String]) -> Result<Config, ConfigError> {
        use serde_yaml_ng::Value;
        let mut value = serde_yaml_ng::to_value(Config::default()).expect("defaults serialise");
        for path in files {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            let mut v: Value =
                serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?;
            if v.is_null() {
                continue; // an empty file (or only comments)
            }
            // Each file is checked alone too, so that an unknown key names its file.
            serde_yaml_ng::from_value::<Config>(v.clone()).map_err(|source| {
                ConfigError::Parse {
                    path: path.clone(),
                    source,
                }
            })?;
            let folder = std::path::absolute(path)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_default();
            for keys in PATH_KEYS {
                let mut slot = Some(&mut v);
                for k in keys {
                    slot = slot.and_then(|x| x.get_mut(*k));
                }
                if let Some(Value::String(p)) = slot {
                    if Path::new(p.as_str()).is_relative() {
                        *p = folder.join(p.as_str()).to_string_lossy().into_owned();
                    }
                }
            }
            merge(&mut value, v);
        }
        for spec in sets {
            let bad = |problem: String| ConfigError::Set {
                spec: spec.clone(),
                problem,
            };
            let (key, text) = spec
                .split_once('=')
                .ok_or_else(|| bad("expected key.path=value".into()))?;
            let new: Value = serde_yaml_ng::from_str(text)
                .map_err(|e| bad(format!("the value is not YAML ({e})")))?;
            let mut slot = &mut value;
            for k in key.trim().split('.') {
                slot = slot.get_mut(k).ok_or_else(|| {
                    bad(format!(
                        "no setting {key:?} (see `contimg config` for every key)"
                    ))
                })?;
            }
            *slot = new;
        }
        let label = || {
            PathBuf::from(
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .chain((!sets.is_empty()).then(|| "--set".to_string()))
                    .collect::<Vec<_>>()
                    .join(" + "),
            )
        };
        let cfg: Config =
            serde_yaml_ng::from_value(value).map_err(|source| ConfigError::Parse {
                path: label(),
                source,
            })?;
        cfg.validate(&label())?;
        Ok(cfg)
    }

    /// The complete effective settings as YAML (every option).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("settings serialise")
    }

    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |field: &'static str, problem: String| {
            Err(ConfigError::Invalid {
                path: path.into(),
                field,
                problem,
            })
        };
        // `ok(cond, key, what)`: `what` says the allowed range.
        macro_rules! ok {
            ($cond:expr, $key:literal, $($fmt:tt)+) => {
                if !($cond) {
                    return bad($key, format!($($fmt)+));
                }
            };
        }
        let fin = |x: f64| x.is_finite();
        let im = &self.imaging;
        ok!(
            im.npix >= 8 && im.npix.is_multiple_of(2) && im.npix <= 65536,
            "imaging.npix",
            "{} must be even, in [8, 65536]",
            im.npix
        );
        ok!(
            im.cell_arcsec > 0.0 && fin(im.cell_arcsec),
            "imaging.cell_arcsec",
            "{} must be positive",
            im.cell_arcsec
        );
        ok!(
            im.npix as f64 * im.cell_arcsec / 3600.0 <= 60.0,
            "imaging.npix",
            "field wider than 60 deg: the SIN projection breaks down"
        );
        ok!(
            im.epsilon >= 1e-14 && im.epsilon <= 0.1,
            "imaging.epsilon",
            "{} must be in [1e-14, 0.1]",
            im.epsilon
        );
        ok!(
            im.groups_per_image >= 1 && im.groups_per_image <= 10_000,
            "imaging.groups_per_image",
            "{} must be in [1, 10000]",
            im.groups_per_image
        );
        ok!(
            im.uv_min_lambda >= 0.0 && fin(im.uv_min_lambda),
            "imaging.uv_min_lambda",
            "{} must be >= 0",
            im.uv_min_lambda
        );
        ok!(
            im.uv_max_lambda >= 0.0 && fin(im.uv_max_lambda),
            "imaging.uv_max_lambda",
            "{} must be >= 0 (0 = no limit)",
            im.uv_max_lambda
        );
        ok!(
            im.uv_max_lambda == 0.0 || im.uv_max_lambda > im.uv_min_lambda,
            "imaging.uv_min_lambda",
            "uv range [{}, {}] is empty",
            im.uv_min_lambda,
            im.uv_max_lambda
        );
        ok!(
            fin(im.robust) && (-5.0..=5.0).contains(&im.robust),
            "imaging.robust",
            "{} must be in [-5, 5]",
            im.robust
        );
        ok!(
            im.taper_gaussian_arcsec >= 0.0 && fin(im.taper_gaussian_arcsec),
            "imaging.taper_gaussian_arcsec",
            "{} must be >= 0",
            im.taper_gaussian_arcsec
        );
        ok!(
            im.gain > 0.0 && im.gain <= 1.0,
            "imaging.gain",
            "{} must be in (0, 1]",
            im.gain
        );
        ok!(
            im.mgain > 0.0 && im.mgain <= 1.0,
            "imaging.mgain",
            "{} must be in (0, 1]",
            im.mgain
        );
        ok!(
            im.threshold_jy >= 0.0 && fin(im.threshold_jy),
            "imaging.threshold_jy",
            "{} must be >= 0",
            im.threshold_jy
        );
        ok!(
            im.auto_threshold >= 0.0 && fin(im.auto_threshold),
            "imaging.auto_threshold",
            "{} must be >= 0 (0 = off)",
            im.auto_threshold
        );
        ok!(
            im.auto_mask >= 0.0 && fin(im.auto_mask),
            "imaging.auto_mask",
            "{} must be >= 0 (0 = off)",
            im.auto_mask
        );
        ok!(
            im.psf_patch >= 1,
            "imaging.psf_patch",
            "must be at least 1 pixel"
        );
        ok!(
            im.niter <= 100_000_000,
            "imaging.niter",
            "{} is more than 1e8 iterations",
            im.niter
        );
        ok!(
            (0.0..0.5).contains(&im.clean_border),
            "imaging.clean_border",
            "{} must be in [0, 0.5)",
            im.clean_border
        );
        ok!(
            im.max_major_cycles >= 1,
            "imaging.max_major_cycles",
            "must be at least 1"
        );
        ok!(
            (1..=2).contains(&im.nterms),
            "imaging.nterms",
            "{} must be 1 or 2",
            im.nterms
        );
        ok!(
            im.nterms == 1 || im.minor_cycle == crate::imaging::clean::MinorAlgorithm::Clark,
            "imaging.nterms",
            "2 spectral terms need minor_cycle: clark"
        );
        ok!(
            im.spectral_ref_hz > 0.0 && fin(im.spectral_ref_hz),
            "imaging.spectral_ref_hz",
            "{} must be a positive frequency",
            im.spectral_ref_hz
        );
        ok!(
            im.pblimit > 0.0 && im.pblimit < 1.0,
            "imaging.pblimit",
            "{} must be in (0, 1)",
            im.pblimit
        );
        ok!(
            (0.0..1.0).contains(&im.outlier_min_beam),
            "imaging.outlier_min_beam",
            "{} must be in [0, 1) (0 = off)",
            im.outlier_min_beam
        );
        ok!(
            self.compute.gpu_memory_gib >= 0.0 && fin(self.compute.gpu_memory_gib),
            "compute.gpu_memory_gib",
            "{} must be >= 0",
            self.compute.gpu_memory_gib
        );
        ok!(!self.output.ms.write || crate::ms::AVAILABLE, "output.ms.write", "this contimg was built without Measurement Set support (cargo build --release --features ms)");
        ok!(
            self.output.max_retries <= 1000,
            "output.max_retries",
            "{} must be at most 1000",
            self.output.max_retries
        );
        let inp = &self.input;
        ok!(
            inp.n_subbands >= 1 && inp.n_subbands <= 16,
            "input.n_subbands",
            "{} must be 1..=16",
            inp.n_subbands
        );
        ok!(
            inp.filename_tolerance_s >= 0.0 && inp.filename_tolerance_s <= 3600.0,
            "input.filename_tolerance_s",
            "{} must be in [0, 3600] s",
            inp.filename_tolerance_s
        );
        ok!(
            self.mpi.collective_timeout_s >= 1.0 && self.mpi.collective_timeout_s <= 1e7,
            "mpi.collective_timeout_s",
            "{} must be in [1, 1e7] s",
            self.mpi.collective_timeout_s
        );
        let c = &self.calibration;
        ok!(
            c.max_offset_deg > 0.0 && c.max_offset_deg <= 90.0,
            "calibration.max_offset_deg",
            "{} must be in (0, 90]",
            c.max_offset_deg
        );
        ok!(
            c.model_radius_deg >= 0.0 && c.model_radius_deg <= 10.0,
            "calibration.model_radius_deg",
            "{} must be in [0, 10] (0: the calibrator alone)",
            c.model_radius_deg
        );
        ok!(
            c.model_min_fraction >= 0.0 && fin(c.model_min_fraction),
            "calibration.model_min_fraction",
            "{} must be >= 0",
            c.model_min_fraction
        );
        ok!(
            c.min_flux_jy >= 0.0 && fin(c.min_flux_jy),
            "calibration.min_flux_jy",
            "{} must be >= 0",
            c.min_flux_jy
        );
        ok!(
            c.span_minutes > 0.0 && c.span_minutes <= 1440.0,
            "calibration.span_minutes",
            "{} must be in (0, 1440]",
            c.span_minutes
        );
        ok!(
            !c.refants.is_empty(),
            "calibration.refants",
            "give at least one reference antenna"
        );
        ok!(
            c.refants.iter().all(|&a| (1..=1000).contains(&a)),
            "calibration.refants",
            "{:?}: station numbers are 1..=1000",
            c.refants
        );
        ok!(
            c.min_snr >= 0.0 && fin(c.min_snr),
            "calibration.min_snr",
            "{} must be >= 0",
            c.min_snr
        );
        ok!(
            c.min_baselines >= 1,
            "calibration.min_baselines",
            "must be at least 1"
        );
        ok!(
            c.uv_min_lambda >= 0.0 && fin(c.uv_min_lambda),
            "calibration.uv_min_lambda",
            "{} must be >= 0",
            c.uv_min_lambda
        );
        ok!(
            c.gain_interval_s == 0.0 || (c.gain_interval_s >= 1.0 && c.gain_interval_s <= 86400.0),
            "calibration.gain_interval_s",
            "{} must be 0 (one solution) or in [1, 86400] s",
            c.gain_interval_s
        );
        ok!(
            c.gain_interval_s == 0.0 || c.span_minutes * 60.0 / c.gain_interval_s <= 10_000.0,
            "calibration.gain_interval_s",
            "{} s makes {:.0} solution intervals over span_minutes {} (at most 10000)",
            c.gain_interval_s,
            c.span_minutes * 60.0 / c.gain_interval_s,
            c.span_minutes
        );
        ok!(
            c.max_iterations >= 1 && c.max_iterations <= 1_000_000,
            "calibration.max_iterations",
            "{} must be in [1, 1e6]",
            c.max_iterations
        );
        ok!(
            c.tolerance > 0.0 && c.tolerance < 1.0,
            "calibration.tolerance",
            "{} must be in (0, 1)",
            c.tolerance
        );
        ok!(
            c.noise_tolerance > 0.0 && c.noise_tolerance <= 1.0,
            "calibration.noise_tolerance",
            "{} must be in (0, 1]",
            c.noise_tolerance
        );
        ok!(
            c.outlier_sigma == 0.0 || (c.outlier_sigma >= 3.0 && fin(c.outlier_sigma)),
            "calibration.outlier_sigma",
            "{} must be 0 (off) or >= 3",
            c.outlier_sigma
        );
        let fl = &self.flagging;
        ok!(
            (0.0..=1.0).contains(&fl.dead_antenna_fraction),
            "flagging.dead_antenna_fraction",
            "{} must be in [0, 1]",
            fl.dead_antenna_fraction
        );
        ok!(
            (0.0..1.0).contains(&fl.sir_eta),
            "flagging.sir_eta",
            "{} must be in [0, 1) (0 = off)",
            fl.sir_eta
        );
        ok!(
            fl.clip_sigma >= 0.0 && fin(fl.clip_sigma),
            "flagging.clip_sigma",
            "{} must be >= 0 (0 = off)",
            fl.clip_sigma
        );
        ok!(
            fl.rms_outlier_sigma >= 0.0 && fin(fl.rms_outlier_sigma),
            "flagging.rms_outlier_sigma",
            "{} must be >= 0 (0 = off)",
            fl.rms_outlier_sigma
        );
        ok!(
            fl.combined_max_window >= 1,
            "flagging.combined_max_window",
            "must be at least 1 sample"
        );
        if let Some(r) = fl
            .channel_ranges_mhz
            .iter()
            .find(|[a, b]| !(fin(*a) && fin(*b) && a <= b && *a >= 0.0))
        {
            return bad(
                "flagging.channel_ranges_mhz",
                format!("{r:?} is not a range [lo, hi] MHz with 0 <= lo <= hi"),
            );
        }
        for r in &fl.time_ranges_utc {
            let (a, b) = (
                crate::primitives::time::iso_to_jd(&r[0]),
                crate::primitives::time::iso_to_jd(&r[1]),
            );
            ok!(
                a.is_some() && b.is_some(),
                "flagging.time_ranges_utc",
                "{r:?} is not a pair of YYYY-MM-DDTHH:MM:SS times"
            );
            ok!(
                a <= b,
                "flagging.time_ranges_utc",
                "{r:?}: the range ends before it starts"
            );
        }
        let st = &fl.sumthreshold;
        ok!(
            st.chi1 > 0.0 && st.chi1.is_finite(),
            "flagging.sumthreshold.chi1",
            "{} must be positive",
            st.chi1
        );
        ok!(
            st.rho >= 1.0 && st.rho.is_finite(),
            "flagging.sumthreshold.rho",
            "{} must be >= 1",
            st.rho
        );
        ok!(
            st.max_window_time >= 1 && st.max_window_time <= 4096,
            "flagging.sumthreshold.max_window_time",
            "{} must be in [1, 4096] samples",
            st.max_window_time
        );
        ok!(
            st.max_window_chan >= 1 && st.max_window_chan <= 4096,
            "flagging.sumthreshold.max_window_chan",
            "{} must be in [1, 4096] samples",
            st.max_window_chan
        );
        ok!(
            st.iterations >= 1 && st.iterations <= 20,
            "flagging.sumthreshold.iterations",
            "{} must be in [1, 20]",
            st.iterations
        );
        ok!(
            st.background_sigma_s > 0.0 && fin(st.background_sigma_s),
            "flagging.sumthreshold.background_sigma_s",
            "{} must be positive",
            st.background_sigma_s
        );
        ok!(
            st.background_sigma_mhz > 0.0 && fin(st.background_sigma_mhz),
            "flagging.sumthreshold.background_sigma_mhz",
            "{} must be positive",
            st.background_sigma_mhz
        );
        let ar = &fl.array;
        ok!(
            ar.chi1 > 0.0 && ar.chi1.is_finite(),
            "flagging.array.chi1",
            "{} must be positive",
            ar.chi1
        );
        ok!(
            ar.rho >= 1.0 && ar.rho.is_finite(),
            "flagging.array.rho",
            "{} must be >= 1",
            ar.rho
        );
        ok!(
            ar.max_window_time >= 1 && ar.max_window_time <= 4096,
            "flagging.array.max_window_time",
            "{} must be in [1, 4096] samples",
            ar.max_window_time
        );
        ok!(
            ar.max_window_chan >= 1 && ar.max_window_chan <= 4096,
            "flagging.array.max_window_chan",
            "{} must be in [1, 4096] samples",
            ar.max_window_chan
        );
        ok!(
            ar.iterations >= 1 && ar.iterations <= 20,
            "flagging.array.iterations",
            "{} must be in [1, 20]",
            ar.iterations
        );
        ok!(
            ar.line_sigma >= 0.0 && ar.line_sigma.is_finite(),
            "flagging.array.line_sigma",
            "{} must be >= 0 (0 = off)",
            ar.line_sigma
        );
        ok!(
            ar.level_width_mhz >= 0.0 && fin(ar.level_width_mhz),
            "flagging.array.level_width_mhz",
            "{} must be >= 0",
            ar.level_width_mhz
        );
        ok!(
            ar.clip > 0.0 && ar.clip.is_finite(),
            "flagging.array.clip",
            "{} must be positive",
            ar.clip
        );
        ok!(
            ar.background_sigma_s > 0.0 && fin(ar.background_sigma_s),
            "flagging.array.background_sigma_s",
            "{} must be positive",
            ar.background_sigma_s
        );
        ok!(
            ar.background_sigma_mhz > 0.0 && fin(ar.background_sigma_mhz),
            "flagging.array.background_sigma_mhz",
            "{} must be positive",
            ar.background_sigma_mhz
        );
        let s = &self.simulate;
        ok!(
            s.n_subbands >= 1 && s.n_subbands <= 16,
            "simulate.n_subbands",
            "{} must be 1..=16",
            s.n_subbands
        );
        ok!(
            s.n_channels >= 1 && 384 % s.n_channels == 0,
            "simulate.n_channels",
            "{} must divide 384",
            s.n_channels
        );
        ok!(
            s.n_times >= 1 && s.integration_s > 0.0 && fin(s.integration_s),
            "simulate.n_times",
            "need at least one integration of positive length"
        );
        ok!(
            s.n_groups <= 10_000,
            "simulate.n_groups",
            "{} must be at most 10000",
            s.n_groups
        );
        ok!(
            !s.antennas.is_empty() || (2..=117).contains(&s.n_antennas),
            "simulate.n_antennas",
            "{} must be 2..=117",
            s.n_antennas
        );
        ok!(
            crate::primitives::time::iso_to_jd(&s.start_time).is_some(),
            "simulate.start_time",
            "{:?} is not YYYY-MM-DDTHH:MM:SS",
            s.start_time
        );
        ok!(
            s.pointing_dec_deg.abs() < 90.0,
            "simulate.pointing_dec_deg",
            "{} must be within (-90, 90)",
            s.pointing_dec_deg
        );
        ok!(
            s.site_lat_deg.abs() <= 90.0 && s.site_lon_deg.abs() <= 360.0 && fin(s.site_alt_m),
            "simulate.site_lat_deg",
            "site ({}, {}, {}) is not a place on Earth",
            s.site_lat_deg,
            s.site_lon_deg,
            s.site_alt_m
        );
        ok!(
            s.random_flux_jy[0] > 0.0
                && s.random_flux_jy[1] >= s.random_flux_jy[0]
                && fin(s.random_flux_jy[1]),
            "simulate.random_flux_jy",
            "need 0 < min <= max"
        );
        ok!(
            s.filename_jitter_s >= 0.0 && fin(s.filename_jitter_s),
            "simulate.filename_jitter_s",
            "{} must be >= 0",
            s.filename_jitter_s
        );
        ok!(
            s.sources.iter().all(|x| fin(x.flux_jy)
                && fin(x.spectral_index)
                && fin(x.l_deg)
                && fin(x.m_deg)
                && x.ra_deg.is_none_or(fin)
                && x.dec_deg.is_none_or(|d| d.abs() <= 90.0)),
            "simulate.sources",
            "every source needs finite values and |dec| <= 90"
        );
        ok!(
            !s.noise.enabled || (s.noise.sefd_jy > 0.0 && fin(s.noise.sefd_jy)),
            "simulate.noise.sefd_jy",
            "{} must be positive",
            s.noise.sefd_jy
        );
        let g = &s.gains;
        ok!(
            [
                g.amplitude,
                g.amplitude_scatter,
                g.phase_scatter_deg,
                g.bandpass_amplitude,
                g.bandpass_phase_deg
            ]
            .iter()
            .all(|&x| x >= 0.0 && fin(x))
                && (!g.enabled || g.amplitude > 0.0),
            "simulate.gains",
            "amplitudes and scatters must be finite and >= 0 (amplitude > 0)"
        );
        let r = &s.rfi;
        ok!(
            r.amplitude_sigma[0] >= 0.0
                && r.amplitude_sigma[1] >= r.amplitude_sigma[0]
                && fin(r.amplitude_sigma[1]),
            "simulate.rfi.amplitude_sigma",
            "need 0 <= min <= max"
        );
        Ok(())
    }

    /// Memory the settings need on this machine, checked before anything is allocated:
    /// the imaging planes of `imaging.npix` (two complex f64 grids and an f32 grid at twice
    /// the image size, and about ten f64 image planes: ~256 B per image pixel) per rank on
    /// the node, against the memory available (MemAvailable, and a cgroup limit).
    pub fn check_memory(
        &self,
        ranks_on_node: usize,
        available_bytes: Option<u64>,
    ) -> Result<(), String> {
        let Some(avail) = available_bytes else {
            return Ok(());
        };
        let per_rank = 256.0 * (self.imaging.npix as f64).powi(2);
        let need = per_rank * ranks_on_node.max(1) as f64;
        if need > avail as f64 {
            return Err(format!(
                "imaging.npix: {} needs about {:.1} GiB per rank ({} rank(s) on this node: {:.1} GiB), but {:.1} GiB of memory is available",
                self.imaging.npix,
                per_rank / 1073741824.0,
                ranks_on_node.max(1),
                need / 1073741824.0,
                avail as f64 / 1073741824.0
            ));
        }
        Ok(())
    }
}

pub use crate::core::available_memory;

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
        let c: Config =
            serde_yaml_ng::from_str("calibration: {delay: off, noise_tolerance: 0.05}").unwrap();
        assert_eq!(c.calibration.delay, DelayMode::Off);
        c.validate(Path::new("x")).unwrap();
        assert!(serde_yaml_ng::from_str::<Config>("calibration: {delay: maybe}").is_err());
        for bad in [
            "{noise_tolerance: .nan}",
            "{noise_tolerance: -0.1}",
            "{outlier_sigma: 1.0}",
            "{outlier_sigma: .nan}",
            "{tolerance: 0.0}",
            "{min_snr: -1.0}",
            "{min_snr: .nan}",
            "{max_iterations: 0}",
            "{gain_interval_s: -5.0}",
        ] {
            let c: Config = serde_yaml_ng::from_str(&format!("calibration: {bad}")).unwrap();
            assert!(c.validate(Path::new("x")).is_err(), "{bad} accepted");
        }
    }
}
