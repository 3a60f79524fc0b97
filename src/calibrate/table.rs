//! Calibration tables (HDF5 under `cal/`) and the calibration registry.
//!
//! Table schema (one file per solve, `cal/<name>.h5`):
//! - `gains` complex128 (time, antenna, channel, polarization): the product of bandpass and
//!   gain, V_ab = g_a conj(g_b) M_ab; polarizations (XX, YY); channels ascending;
//! - `flags` u8 (same shape; 1 = solution flagged), `snr` f64 (same shape);
//! - `antenna_names` u32 station numbers per antenna index; `time_jd` f64 (solution
//!   centres, UTC JD); `freq_hz` f64 ascending;
//! - attributes-as-datasets: `refant` (station number), `calibrator` (name),
//!   `provenance` (JSON: contimg version, groups, parameters);
//! - `flag_reason` u8 (same shape as `gains`): why a solution is flagged (codes of
//!   `solve::FlagReason`: 0 ok, 1 no_data, 2 few_baselines, 3 low_snr, 4 not_converged,
//!   5 non_finite, 6 antenna_snr, 7 antenna_amplitude, 8 antenna_phase, 9 high_residual);
//! - `delay_ns` f64 (antenna, polarization) and `delay_ref_hz` f64: per-antenna delays
//!   (relative to the reference antenna); the full gain at frequency nu is
//!   `gains` x exp(2 pi i (nu - delay_ref_hz) delay_ns 1e-9), so `gains` holds the bandpass
//!   left after the delay;
//! - `solve_info` text: the solve's and QA's account as JSON (`CalQa`: per-antenna QA and
//!   flags with reasons, cell reasons, iterations, delays).
//!
//! Tables written before `flag_reason`, `delay_ns` and `solve_info` existed read with
//! reasons `unknown` (255) for flagged solutions, zero delays and an empty account.
//!
//! Registry (`cal/registry.jsonl`, or a shared path): one JSON line per table with its
//! time range and validity; appended and read under an exclusive/shared file lock, so
//! concurrent array jobs see consistent entries.

use num_complex::Complex64;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: {source}")]
    Hdf5 { path: PathBuf, source: hdf5::Error },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CalTable {
    pub gains: Vec<Complex64>,
    pub flags: Vec<bool>,
    pub snr: Vec<f64>,
    pub antenna_names: Vec<u32>,
    pub time_jd: Vec<f64>,
    pub freq_hz: Vec<f64>,
    pub refant: u32,
    pub calibrator: String,
    pub provenance: String,
    /// Per solution (as `flags`): `solve::FlagReason` code, 0 when not flagged.
    pub reasons: Vec<u8>,
    /// Per (antenna, pol): delay (ns) relative to the reference antenna; zeros when none.
    pub delay_ns: Vec<f64>,
    pub delay_ref_hz: f64,
    /// The solve's and QA's account (JSON of `CalQa`), empty for old tables.
    pub solve_info: String,
}

impl CalTable {
    pub fn n_ant(&self) -> usize {
        self.antenna_names.len()
    }
    #[inline]
    pub fn index(&self, t: usize, a: usize, c: usize, p: usize) -> usize {
        ((t * self.n_ant() + a) * self.freq_hz.len() + c) * 2 + p
    }

    /// Delay (ns) of antenna index `a`, polarization `p` (0 where the table has none).
    #[inline]
    pub fn delay(&self, a: usize, p: usize) -> f64 {
        self.delay_ns.get(a * 2 + p).copied().unwrap_or(0.0)
    }

    /// The full complex gain of a solution: the stored bandpass times the delay phasor.
    #[inline]
    pub fn full_gain(&self, t: usize, a: usize, c: usize, p: usize) -> Complex64 {
        let g = self.gains[self.index(t, a, c, p)];
        let tau = self.delay(a, p);
        if tau == 0.0 {
            g
        } else {
            g * super::delay::phasor(self.freq_hz[c], self.delay_ref_hz, tau)
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), TableError> {
        let (nt, na, nf) = (self.time_jd.len(), self.n_ant(), self.freq_hz.len());
        let e = |source| TableError::Hdf5 {
            path: path.into(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".part");
        let tmp = PathBuf::from(tmp);
        {
            let f = hdf5::File::create(&tmp).map_err(e)?;
            let shape = [nt, na, nf, 2];
            f.new_dataset::<Complex64>()
                .shape(shape)
                .create("gains")
                .and_then(|d| d.write_raw(&self.gains))
                .map_err(e)?;
            let fl: Vec<u8> = self.flags.iter().map(|&x| u8::from(x)).collect();
            f.new_dataset::<u8>()
                .shape(shape)
                .create("flags")
                .and_then(|d| d.write_raw(&fl))
                .map_err(e)?;
            f.new_dataset::<f64>()
                .shape(shape)
                .create("snr")
                .and_then(|d| d.write_raw(&self.snr))
                .map_err(e)?;
            f.new_dataset::<u32>()
                .shape([na])
                .create("antenna_names")
                .and_then(|d| d.write_raw(&self.antenna_names))
                .map_err(e)?;
            f.new_dataset::<f64>()
                .shape([nt])
                .create("time_jd")
                .and_then(|d| d.write_raw(&self.time_jd))
                .map_err(e)?;
            f.new_dataset::<f64>()
                .shape([nf])
                .create("freq_hz")
                .and_then(|d| d.write_raw(&self.freq_hz))
                .map_err(e)?;
            f.new_dataset::<u32>()
                .shape(())
                .create("refant")
                .and_then(|d| d.write_scalar(&self.refant))
                .map_err(e)?;
            let reasons: Vec<u8> = if self.reasons.len() == self.gains.len() {
                self.reasons.clone()
            } else {
                self.flags
                    .iter()
                    .map(|&x| if x { 255 } else { 0 })
                    .collect()
            };
            f.new_dataset::<u8>()
                .shape(shape)
                .create("flag_reason")
                .and_then(|d| d.write_raw(&reasons))
                .map_err(e)?;
            let delays: Vec<f64> = (0..na * 2)
                .map(|i| self.delay_ns.get(i).copied().unwrap_or(0.0))
                .collect();
            f.new_dataset::<f64>()
                .shape([na, 2])
                .create("delay_ns")
                .and_then(|d| d.write_raw(&delays))
                .map_err(e)?;
            f.new_dataset::<f64>()
                .shape(())
                .create("delay_ref_hz")
                .and_then(|d| d.write_scalar(&self.delay_ref_hz))
                .map_err(e)?;
            for (name, s) in [
                ("calibrator", &self.calibrator),
                ("provenance", &self.provenance),
                ("solve_info", &self.solve_info),
            ] {
                let v: hdf5::types::VarLenUnicode = s.parse().map_err(|_| TableError::Invalid {
                    path: path.into(),
                    problem: format!("{name} is not valid text"),
                })?;
                f.new_dataset::<hdf5::types::VarLenUnicode>()
                    .shape(())
                    .create(name)
                    .and_then(|d| d.write_scalar(&v))
                    .map_err(e)?;
            }
        }
        std::fs::rename(&tmp, path).map_err(|source| TableError::Io {
            path: path.into(),
            source,
        })
    }

    pub fn read(path: &Path) -> Result<Self, TableError> {
        let e = |source| TableError::Hdf5 {
            path: path.into(),
            source,
        };
        let f = hdf5::File::open(path).map_err(e)?;
        let g: Vec<Complex64> = f.dataset("gains").and_then(|d| d.read_raw()).map_err(e)?;
        let shape = f.dataset("gains").map_err(e)?.shape();
        let fl: Vec<u8> = f.dataset("flags").and_then(|d| d.read_raw()).map_err(e)?;
        let snr: Vec<f64> = f.dataset("snr").and_then(|d| d.read_raw()).map_err(e)?;
        let antenna_names: Vec<u32> = f
            .dataset("antenna_names")
            .and_then(|d| d.read_raw())
            .map_err(e)?;
        let time_jd: Vec<f64> = f.dataset("time_jd").and_then(|d| d.read_raw()).map_err(e)?;
        let freq_hz: Vec<f64> = f.dataset("freq_hz").and_then(|d| d.read_raw()).map_err(e)?;
        let refant: u32 = f
            .dataset("refant")
            .and_then(|d| d.read_scalar())
            .map_err(e)?;
        let text = |n: &str| -> Result<String, TableError> {
            Ok(f.dataset(n)
                .and_then(|d| d.read_scalar::<hdf5::types::VarLenUnicode>())
                .map_err(e)?
                .as_str()
                .to_string())
        };
        let flags: Vec<bool> = fl.iter().map(|&x| x != 0).collect();
        let na = antenna_names.len();
        // Tables written before reasons and delays: flagged solutions have reason unknown,
        // delays are zero, the account is empty.
        let reasons: Vec<u8> = if f.link_exists("flag_reason") {
            f.dataset("flag_reason")
                .and_then(|d| d.read_raw())
                .map_err(e)?
        } else {
            flags.iter().map(|&x| if x { 255 } else { 0 }).collect()
        };
        let delay_ns: Vec<f64> = if f.link_exists("delay_ns") {
            f.dataset("delay_ns")
                .and_then(|d| d.read_raw())
                .map_err(e)?
        } else {
            vec![0.0; na * 2]
        };
        let delay_ref_hz: f64 = if f.link_exists("delay_ref_hz") {
            f.dataset("delay_ref_hz")
                .and_then(|d| d.read_scalar())
                .map_err(e)?
        } else {
            0.0
        };
        let solve_info = if f.link_exists("solve_info") {
            text("solve_info")?
        } else {
            String::new()
        };
        let t = CalTable {
            gains: g,
            flags,
            snr,
            antenna_names,
            time_jd,
            freq_hz,
            refant,
            calibrator: text("calibrator")?,
            provenance: text("provenance")?,
            reasons,
            delay_ns,
            delay_ref_hz,
            solve_info,
        };
        let want = vec![t.time_jd.len(), t.n_ant(), t.freq_hz.len(), 2];
        if t.delay_ns.len() != na * 2
            || t.reasons.len() != t.gains.len()
            || !t.delay_ns.iter().all(|x| x.is_finite())
            || !t.delay_ref_hz.is_finite()
        {
            return Err(TableError::Invalid { path: path.into(), problem: format!("delay_ns ({} values) or flag_reason ({} values) do not match {na} antennas x 2 pols / the gains, or are not finite", t.delay_ns.len(), t.reasons.len()) });
        }
        if shape != want || t.flags.len() != t.gains.len() || t.snr.len() != t.gains.len() {
            return Err(TableError::Invalid {
                path: path.into(),
                problem: format!(
                    "gains shape {shape:?} does not match (time, antenna, channel, pol) = {want:?}"
                ),
            });
        }
        if t.time_jd.is_empty() || t.freq_hz.is_empty() || t.antenna_names.is_empty() {
            return Err(TableError::Invalid {
                path: path.into(),
                problem: format!(
                    "empty table: {} solution times, {} antennas, {} channels",
                    t.time_jd.len(),
                    t.n_ant(),
                    t.freq_hz.len()
                ),
            });
        }
        if t.freq_hz.iter().chain(&t.time_jd).any(|x| !x.is_finite())
            || t.freq_hz.windows(2).any(|w| w[1] <= w[0])
        {
            return Err(TableError::Invalid {
                path: path.into(),
                problem: "times or frequencies not finite, or frequencies not ascending".into(),
            });
        }
        Ok(t)
    }
}

/// One registry entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegistryEntry {
    pub path: PathBuf,
    pub calibrator: String,
    pub start_jd: f64,
    pub end_jd: f64,
    pub centre_jd: f64,
    pub valid: bool,
}

/// Largest distance in time from a calibration to the data it calibrates.
pub const MAX_AGE_DAYS: f64 = 1.0;
/// Past this age a warning is logged.
pub const WARN_AGE_DAYS: f64 = 0.5;

pub struct Registry {
    pub path: PathBuf,
}

impl Registry {
    pub fn new(path: PathBuf) -> Self {
        Registry { path }
    }

    /// Appends an entry under an exclusive lock.
    pub fn register(&self, e: &RegistryEntry) -> Result<(), TableError> {
        let io = |source| TableError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(d) = self.path.parent() {
            std::fs::create_dir_all(d).map_err(io)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        f.lock().map_err(io)?;
        let line = serde_json::to_string(e).expect("entry serialises");
        let res = writeln!(f, "{line}").and_then(|_| f.sync_all());
        let _ = f.unlock();
        res.map_err(io)
    }

    /// All entries, read under a shared lock (lines that do not parse are skipped).
    pub fn entries(&self) -> Result<Vec<RegistryEntry>, TableError> {
        let io = |source| TableError::Io {
            path: self.path.clone(),
            source,
        };
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io(e)),
        };
        f.lock_shared().map_err(io)?;
        let mut bytes = Vec::new();
        let read = std::io::BufReader::new(&f).read_to_end(&mut bytes);
        let _ = f.unlock();
        read.map_err(io)?;
        // Line by line on bytes: one damaged line (not UTF-8, not JSON) is skipped with a
        // warning, never the lines after it.
        let mut out = Vec::new();
        for (k, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<RegistryEntry>(line) {
                Ok(e) => out.push(e),
                Err(e) => log::warn!(
                    "{}: line {} skipped: not a registry entry ({e})",
                    self.path.display(),
                    k + 1
                ),
            }
        }
        Ok(out)
    }

    /// The nearest valid calibration to `jd` within +-24 h (earlier or later), with its age
    /// in days; a warning is logged past 12 h.
    pub fn nearest(&self, jd: f64) -> Result<Option<(RegistryEntry, f64)>, TableError> {
        let best = self
            .entries()?
            .into_iter()
            .filter(|e| e.valid)
            .filter(|e| {
                // A table deleted (or moved) since it was registered never wins.
                let there = e.path.is_file();
                if !there {
                    log::warn!(
                        "{}: registered calibration {} is missing: entry ignored",
                        self.path.display(),
                        e.path.display()
                    );
                }
                there
            })
            .map(|e| {
                let age = if jd < e.start_jd {
                    e.start_jd - jd
                } else if jd > e.end_jd {
                    jd - e.end_jd
                } else {
                    0.0
                };
                (e, age)
            })
            .filter(|(_, age)| *age <= MAX_AGE_DAYS)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((e, age)) = &best {
            if *age > WARN_AGE_DAYS {
                log::warn!(
                    "calibration {} is {:.1} h from the data (stale past 12 h)",
                    e.path.display(),
                    age * 24.0
                );
            }
        }
        Ok(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, t0: f64, valid: bool) -> RegistryEntry {
        RegistryEntry {
            path: PathBuf::from(format!("{name}.h5")),
            calibrator: name.into(),
            start_jd: t0,
            end_jd: t0 + 0.01,
            centre_jd: t0 + 0.005,
            valid,
        }
    }

    /// An entry whose table file exists (in `dir`).
    fn entry_in(dir: &Path, name: &str, t0: f64, valid: bool) -> RegistryEntry {
        let path = dir.join(format!("{name}.h5"));
        std::fs::write(&path, b"table").unwrap();
        RegistryEntry {
            path,
            ..entry(name, t0, valid)
        }
    }

    /// Defect 2: a line that is not UTF-8 (or not JSON) is skipped, not every line after it.
    #[test]
    fn a_damaged_line_hides_nothing_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::new(dir.path().join("registry.jsonl"));
        r.register(&entry_in(dir.path(), "first", 100.0, true))
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&r.path)
            .unwrap()
            .write_all(b"{\"path\": \"\xff\xfe broken\n{not json}\n\n")
            .unwrap();
        r.register(&entry_in(dir.path(), "after", 200.0, true))
            .unwrap();
        let names: Vec<String> = r
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.calibrator)
            .collect();
        assert_eq!(names, ["first", "after"]);
        assert_eq!(r.nearest(200.0).unwrap().unwrap().0.calibrator, "after");
    }

    /// Defect 3: an entry whose table was deleted never wins; the next one does.
    #[test]
    fn an_entry_whose_table_is_gone_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::new(dir.path().join("registry.jsonl"));
        r.register(&entry_in(dir.path(), "older", 99.8, true))
            .unwrap();
        let gone = entry_in(dir.path(), "deleted", 100.0, true);
        r.register(&gone).unwrap();
        assert_eq!(r.nearest(100.0).unwrap().unwrap().0.calibrator, "deleted");
        std::fs::remove_file(&gone.path).unwrap();
        assert_eq!(r.nearest(100.0).unwrap().unwrap().0.calibrator, "older");
    }

    /// Defect 6: a table with no channels (or antennas) is refused when read, naming the file.
    #[test]
    fn a_table_without_channels_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.h5");
        let t = CalTable {
            gains: vec![],
            flags: vec![],
            snr: vec![],
            antenna_names: vec![1, 2],
            time_jd: vec![100.0],
            freq_hz: vec![],
            refant: 1,
            calibrator: "x".into(),
            provenance: "{}".into(),
            reasons: vec![],
            delay_ns: vec![0.0; 4],
            delay_ref_hz: 0.0,
            solve_info: String::new(),
        };
        t.write(&path).unwrap();
        let e = CalTable::read(&path).unwrap_err().to_string();
        assert!(e.contains("empty.h5") && e.contains("0 channels"), "{e}");
    }

    #[test]
    fn registry_picks_the_nearest_valid_within_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |name: &str, t0: f64, valid: bool| entry_in(dir.path(), name, t0, valid);
        let r = Registry::new(dir.path().join("cal/registry.jsonl"));
        assert!(r.nearest(100.0).unwrap().is_none());
        r.register(&entry("before", 99.6, true)).unwrap();
        r.register(&entry("after", 100.2, true)).unwrap();
        r.register(&entry("closer_but_bad", 100.05, false)).unwrap();
        r.register(&entry("far", 98.0, true)).unwrap();
        let (e, age) = r.nearest(100.0).unwrap().unwrap();
        assert_eq!(e.calibrator, "after");
        assert!((age - 0.2).abs() < 1e-9);
        let (e, _) = r.nearest(99.7).unwrap().unwrap();
        assert_eq!(e.calibrator, "before");
        assert!(r.nearest(102.0).unwrap().is_none(), "outside +-24 h");
    }

    #[test]
    fn concurrent_writers_keep_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.jsonl");
        std::thread::scope(|s| {
            for i in 0..8 {
                let p = path.clone();
                s.spawn(move || {
                    let r = Registry::new(p);
                    for k in 0..25 {
                        r.register(&entry(
                            &format!("t{i}_{k}"),
                            i as f64 + k as f64 * 0.01,
                            true,
                        ))
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(Registry::new(path).entries().unwrap().len(), 200);
    }
}
