//! Typed configuration (YAML). Every option has a default and is documented here and in
//! `configs/default.yaml`; `Config::load` validates after parsing.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

// The sections each stage owns, at their old paths too.
pub use crate::calibrate::settings::{CalConfig, DelayMode};
pub use crate::comm::settings::MpiConfig;
pub use crate::discover::InputConfig;
pub use crate::flag::settings::{ArrayFlagConfig, FlagConfig, SumThresholdConfig};
pub use crate::imaging::settings::ImagingConfig;
pub use crate::primitives::iers::AstrometryConfig;
pub use crate::simulate::settings::{
    SimCalibrator, SimConfig, SimGains, SimNoise, SimRfi, SimSource,
};

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

/// The views of the settings the stages that read more than their own section take.
impl<'a> From<&'a Config> for crate::simulate::SimInputs<'a> {
    fn from(c: &'a Config) -> Self {
        crate::simulate::SimInputs {
            simulate: &c.simulate,
            station_table: c.station_table.as_deref(),
            calibrator_list: c.calibration.calibrator_list.as_deref(),
            iers_file: c.astrometry.iers_file.as_deref(),
        }
    }
}

impl<'a> From<&'a Config> for crate::plan::PlanInputs<'a> {
    fn from(c: &'a Config) -> Self {
        crate::plan::PlanInputs {
            input: &c.input,
            groups_per_image: c.imaging.groups_per_image,
            calibration: &c.calibration,
            station_table: c.station_table.as_deref(),
        }
    }
}

impl<'a> From<&'a Config> for crate::resume::ResumeInputs<'a> {
    fn from(c: &'a Config) -> Self {
        crate::resume::ResumeInputs {
            imaging: &c.imaging,
            flagging: &c.flagging,
            calibration: &c.calibration,
            astrometry: &c.astrometry,
            n_subbands: c.input.n_subbands,
            out_dir: &c.output.dir,
            enabled: c.output.resume,
            max_retries: c.output.max_retries,
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
