//! UVH5 (HDF5) subband files as the DSA-110 correlator writes them, and as pyuvdata 3 writes
//! them. Header values are datasets (0-d for scalars); `Data/visdata` is the h5py complex
//! compound {r, i}; flags are the h5py boolean enum.

pub mod fast;
pub mod group;
mod read;
mod write;

pub use fast::{locate_data, read_data_routed, DataRoutes, Route};
pub use read::{read_data, read_header, read_time0};
pub use write::write_file;

use std::path::PathBuf;

/// AIPS polarization codes for XX and YY.
pub const POL_XX: i64 = -5;
pub const POL_YY: i64 = -6;

#[derive(Debug, thiserror::Error)]
pub enum Uvh5Error {
    #[error("{path}: cannot open as HDF5 ({source})")]
    Open { path: PathBuf, source: hdf5::Error },
    #[error("{path}: dataset {dataset} is missing or unreadable ({source})")]
    Dataset {
        path: PathBuf,
        dataset: String,
        source: hdf5::Error,
    },
    #[error("{path}: dataset {dataset}: {problem}")]
    Invalid {
        path: PathBuf,
        dataset: String,
        problem: String,
    },
    #[error("{path}: cannot write {dataset} ({source})")]
    Write {
        path: PathBuf,
        dataset: String,
        source: hdf5::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Everything in `Header/` that contimg uses, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Uvh5Header {
    pub latitude_deg: f64,
    pub longitude_deg: f64,
    pub altitude_m: f64,
    pub telescope_name: String,
    pub instrument: String,
    pub object_name: String,
    pub nants_data: usize,
    pub nants_telescope: usize,
    pub nbls: usize,
    pub ntimes: usize,
    pub nfreqs: usize,
    pub npols: usize,
    /// Station names ("1".."117") per antenna number.
    pub antenna_names: Vec<String>,
    pub antenna_numbers: Vec<i64>,
    pub antenna_diameters: Vec<f64>,
    /// ECEF offsets (m) from the telescope location, per antenna number index.
    pub antenna_positions: Vec<[f64; 3]>,
    /// Per baseline-time: antenna numbers (0-based, as in the file).
    pub ant_1_array: Vec<i64>,
    pub ant_2_array: Vec<i64>,
    /// Per baseline-time UVW (m) as stored (f32 on disk).
    pub uvw_array: Vec<[f64; 3]>,
    /// Per baseline-time JD (UTC) at the integration centre.
    pub time_array: Vec<f64>,
    pub integration_time: Vec<f64>,
    /// Channel frequencies (Hz) in file order (descending for DSA-110).
    pub freq_array: Vec<f64>,
    pub channel_width: f64,
    pub polarization_array: Vec<i64>,
    /// Pointing declination of date (rad), `extra_keywords/phase_center_dec`.
    pub phase_center_dec: f64,
    /// `phase_center_app_dec` (rad).
    pub phase_center_app_dec: f64,
    /// `phase_type`, "drift" for the correlator.
    pub phase_type: String,
    /// Whether the data arrays carry the legacy spw axis of length 1.
    pub legacy_shapes: bool,
}

impl Uvh5Header {
    pub fn nblts(&self) -> usize {
        self.time_array.len()
    }
}

/// The data arrays of one file, flattened in file order (Nblts, Nfreqs, Npols).
#[derive(Debug, Clone, PartialEq)]
pub struct Uvh5Data {
    pub vis: Vec<num_complex::Complex32>,
    pub flags: Vec<bool>,
    pub nsamples: Vec<f32>,
}

/// A file or folder under tests/data for the library's own tests: under
/// `CONTIMG_TEST_DATA` where set (a prebuilt test binary run from another checkout,
/// scripts/gpu-check.sh --prebuilt), else in this source tree.
#[cfg(test)]
pub(crate) fn test_data(rel: &str) -> std::path::PathBuf {
    std::env::var_os("CONTIMG_TEST_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data"))
        .join(rel)
}

/// The group of every .hdf5 file in tests/data/`rel` (see `test_data`), for the library's
/// own tests.
#[cfg(test)]
pub(crate) fn test_group(rel: &str) -> crate::core::GroupVis {
    let dir = test_data(rel);
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .collect();
    files.sort();
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    group::load_group(&refs).unwrap()
}
