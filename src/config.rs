//! Typed configuration (YAML). Every option has a default and is documented here and in
//! `configs/default.yaml`; `Config::load` validates after parsing.

use crate::primitives::check::SettingError;
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
    #[error("{path}: {source}")]
    Invalid { path: PathBuf, source: SettingError },
    #[error("imaging.npix: {npix} needs about {per_rank_gib:.1} GiB per rank ({ranks} rank(s) on this node: {need_gib:.1} GiB), but {avail_gib:.1} GiB of memory is available")]
    Memory {
        npix: usize,
        per_rank_gib: f64,
        ranks: usize,
        need_gib: f64,
        avail_gib: f64,
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

impl OutputConfig {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        use crate::primitives::check::{count, ensure};
        ensure(
            !self.ms.write || crate::ms::AVAILABLE,
            "output.ms.write",
            || {
                "needs Measurement Set support: this contimg was built without it (cargo build --release --features ms)".into()
            },
        )?;
        count("output.max_retries", self.max_retries, 0, 1000)
    }
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
            // A path given on the command line is relative to the working directory (a
            // file's are to its folder): made absolute here, so that what the run records
            // (summary.json's products) holds wherever it is read from.
            let is_path = PATH_KEYS.iter().any(|ks| ks.join(".") == key.trim());
            if let (true, Value::String(p)) = (is_path, &mut *slot) {
                if Path::new(p.as_str()).is_relative() {
                    if let Ok(abs) = std::path::absolute(p.as_str()) {
                        *p = abs.to_string_lossy().into_owned();
                    }
                }
            }
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

    /// Checks every option for range and finiteness, section by section (each stage's
    /// `validate`); the error names the file(s) and the key.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.check_sections()
            .map_err(|source| ConfigError::Invalid {
                path: path.into(),
                source,
            })
    }

    fn check_sections(&self) -> Result<(), SettingError> {
        self.input.validate()?;
        self.output.validate()?;
        self.imaging.validate()?;
        self.flagging.validate()?;
        self.calibration.validate()?;
        self.compute.validate()?;
        self.mpi.validate()?;
        self.simulate.validate()
    }

    /// Memory the settings need on this machine, checked before anything is allocated:
    /// the imaging planes of `imaging.npix` (two complex f64 grids and an f32 grid at twice
    /// the image size, and about ten f64 image planes: ~256 B per image pixel) per rank on
    /// the node, against the memory available (MemAvailable, and a cgroup limit).
    pub fn check_memory(
        &self,
        ranks_on_node: usize,
        available_bytes: Option<u64>,
    ) -> Result<(), ConfigError> {
        let Some(avail) = available_bytes else {
            return Ok(());
        };
        const GIB: f64 = 1073741824.0;
        let per_rank = 256.0 * (self.imaging.npix as f64).powi(2);
        let need = per_rank * ranks_on_node.max(1) as f64;
        if need > avail as f64 {
            return Err(ConfigError::Memory {
                npix: self.imaging.npix,
                per_rank_gib: per_rank / GIB,
                ranks: ranks_on_node.max(1),
                need_gib: need / GIB,
                avail_gib: avail as f64 / GIB,
            });
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
