//! Reads and validates a UVH5 file: legacy DSA-110 shapes (with the spw axis) and pyuvdata 3
//! shapes. Every problem names the file and the dataset.

use super::{Uvh5Data, Uvh5Error, Uvh5Header, POL_XX, POL_YY};
use hdf5::types::{FixedAscii, VarLenAscii, VarLenUnicode};
use num_complex::Complex32;
use std::path::Path;

struct Reader<'a> {
    file: hdf5::File,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn open(path: &'a Path) -> Result<Self, Uvh5Error> {
        if let Err(source) = std::fs::metadata(path) {
            return Err(Uvh5Error::Io {
                path: path.into(),
                source,
            });
        }
        let file = hdf5::File::open(path).map_err(|source| Uvh5Error::Open {
            path: path.into(),
            source,
        })?;
        Ok(Reader { file, path })
    }

    fn ds(&self, name: &str) -> Result<hdf5::Dataset, Uvh5Error> {
        self.file
            .dataset(name)
            .map_err(|source| self.missing(name, source))
    }

    fn has(&self, name: &str) -> bool {
        self.file.link_exists(name)
    }

    fn missing(&self, name: &str, source: hdf5::Error) -> Uvh5Error {
        Uvh5Error::Dataset {
            path: self.path.into(),
            dataset: name.into(),
            source,
        }
    }

    fn invalid(&self, name: &str, problem: impl Into<String>) -> Uvh5Error {
        Uvh5Error::Invalid {
            path: self.path.into(),
            dataset: name.into(),
            problem: problem.into(),
        }
    }

    fn scalar<T: hdf5::H5Type>(&self, name: &str) -> Result<T, Uvh5Error> {
        let d = self.ds(name)?;
        if d.size() != 1 {
            return Err(self.invalid(
                name,
                format!("expected a scalar, found shape {:?}", d.shape()),
            ));
        }
        // Accept 0-d or 1-element arrays.
        let v: Vec<T> = d.read_raw().map_err(|e| self.missing(name, e))?;
        v.into_iter()
            .next()
            .ok_or_else(|| self.invalid(name, "empty"))
    }

    fn count(&self, name: &str) -> Result<usize, Uvh5Error> {
        let v: i64 = self.scalar(name)?;
        usize::try_from(v).map_err(|_| self.invalid(name, format!("negative count {v}")))
    }

    fn vec<T: hdf5::H5Type>(
        &self,
        name: &str,
        expect_len: Option<usize>,
    ) -> Result<Vec<T>, Uvh5Error> {
        let d = self.ds(name)?;
        if let Some(n) = expect_len {
            if d.size() != n {
                return Err(self.invalid(
                    name,
                    format!(
                        "has {} elements (shape {:?}), expected {n}",
                        d.size(),
                        d.shape()
                    ),
                ));
            }
        }
        d.read_raw().map_err(|e| self.missing(name, e))
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, Uvh5Error> {
        let d = self.ds(name)?;
        if let Ok(v) = d.read_raw::<FixedAscii<256>>() {
            return Ok(v
                .iter()
                .map(|s| s.as_str().trim_end_matches('\0').trim().to_string())
                .collect());
        }
        if let Ok(v) = d.read_raw::<VarLenUnicode>() {
            return Ok(v.iter().map(|s| s.as_str().trim().to_string()).collect());
        }
        d.read_raw::<VarLenAscii>()
            .map(|v| v.iter().map(|s| s.as_str().trim().to_string()).collect())
            .map_err(|e| self.missing(name, e))
    }

    fn string(&self, name: &str) -> Result<String, Uvh5Error> {
        self.strings(name)?
            .into_iter()
            .next()
            .ok_or_else(|| self.invalid(name, "empty string dataset"))
    }

    fn optional_string(&self, name: &str) -> Result<String, Uvh5Error> {
        if self.has(name) {
            self.string(name)
        } else {
            Ok(String::new())
        }
    }
}

/// Reads only `Header/time_array[0]` (the grouping key), cheaply.
pub fn read_time0(path: &Path) -> Result<f64, Uvh5Error> {
    let r = Reader::open(path)?;
    let d = r.ds("Header/time_array")?;
    if d.size() == 0 {
        return Err(r.invalid("Header/time_array", "empty"));
    }
    let v = d
        .read_slice_1d::<f64, _>(0..1)
        .map_err(|e| r.missing("Header/time_array", e))?;
    let t = v[0];
    if !t.is_finite() || !(2_400_000.0..2_600_000.0).contains(&t) {
        return Err(r.invalid(
            "Header/time_array",
            format!("first time {t} is not a plausible Julian date"),
        ));
    }
    Ok(t)
}

/// `Header/polarization_array`: XX and/or YY, no code twice.
fn read_polarizations(r: &Reader, npols: usize) -> Result<Vec<i64>, Uvh5Error> {
    let polarization_array: Vec<i64> = r.vec("Header/polarization_array", Some(npols))?;
    for &p in &polarization_array {
        if p != POL_XX && p != POL_YY {
            return Err(r.invalid(
                "Header/polarization_array",
                format!(
                    "polarization code {p} is not XX (-5) or YY (-6); codes {polarization_array:?}"
                ),
            ));
        }
    }
    if npols == 2 && polarization_array[0] == polarization_array[1] {
        return Err(r.invalid(
            "Header/polarization_array",
            format!("duplicate polarization codes {polarization_array:?}"),
        ));
    }
    Ok(polarization_array)
}

/// `Header/antenna_positions` (m, relative to the telescope), each finite and within
/// 100 km.
fn read_antenna_positions(r: &Reader, nants_telescope: usize) -> Result<Vec<[f64; 3]>, Uvh5Error> {
    let pos: Vec<f64> = r.vec("Header/antenna_positions", Some(nants_telescope * 3))?;
    let antenna_positions: Vec<[f64; 3]> =
        pos.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    // Positions relative to the telescope (m): finite and within 100 km (DSA-110 spans ~2.6 km).
    if let Some(a) = antenna_positions.iter().position(|p| {
        !p.iter().all(|x| x.is_finite()) || p.iter().map(|x| x * x).sum::<f64>() > 1e10
    }) {
        return Err(r.invalid(
            "Header/antenna_positions",
            format!(
                "antenna index {a}: {:?} is not a position within 100 km of the telescope",
                antenna_positions[a]
            ),
        ));
    }
    Ok(antenna_positions)
}

/// The pointing declination (rad): `extra_keywords/phase_center_dec`, else
/// `phase_center_app_dec` (also returned, NaN when absent).
fn read_pointing_dec(r: &Reader) -> Result<(f64, f64), Uvh5Error> {
    let phase_center_app_dec: f64 = if r.has("Header/phase_center_app_dec") {
        let v: Vec<f64> = r.vec("Header/phase_center_app_dec", None)?;
        v.first().copied().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    };
    let phase_center_dec = if r.has("Header/extra_keywords/phase_center_dec") {
        r.scalar::<f64>("Header/extra_keywords/phase_center_dec")?
    } else if phase_center_app_dec.is_finite() {
        phase_center_app_dec
    } else {
        return Err(r.invalid(
            "Header/extra_keywords/phase_center_dec",
            "missing, and no Header/phase_center_app_dec either: the pointing declination is unknown",
        ));
    };
    if !phase_center_dec.is_finite() || phase_center_dec.abs() > std::f64::consts::FRAC_PI_2 {
        return Err(r.invalid(
            "Header/extra_keywords/phase_center_dec",
            format!("{phase_center_dec} rad is not a declination"),
        ));
    }
    Ok((phase_center_dec, phase_center_app_dec))
}

/// Whether `Data/visdata` has the telescope's legacy shape (Nblts, 1, Nfreqs, Npols) rather
/// than pyuvdata 3's (Nblts, Nfreqs, Npols); any other shape is an error.
fn visdata_is_legacy(
    r: &Reader,
    nblts: usize,
    nfreqs: usize,
    npols: usize,
) -> Result<bool, Uvh5Error> {
    let shape = r.ds("Data/visdata")?.shape();
    match shape.as_slice() {
        [a, 1, f, p] if *a == nblts && *f == nfreqs && *p == npols => Ok(true),
        [a, f, p] if *a == nblts && *f == nfreqs && *p == npols => Ok(false),
        s => Err(r.invalid(
            "Data/visdata",
            format!("shape {s:?} is neither ({nblts}, 1, {nfreqs}, {npols}) nor ({nblts}, {nfreqs}, {npols})"),
        )),
    }
}

/// Reads and validates the header of a UVH5 file.
pub fn read_header(path: &Path) -> Result<Uvh5Header, Uvh5Error> {
    let r = Reader::open(path)?;
    let nants_data = r.count("Header/Nants_data")?;
    let nants_telescope = r.count("Header/Nants_telescope")?;
    let nbls = r.count("Header/Nbls")?;
    let nblts = r.count("Header/Nblts")?;
    let ntimes = r.count("Header/Ntimes")?;
    let nfreqs = r.count("Header/Nfreqs")?;
    let npols = r.count("Header/Npols")?;
    if nblts != ntimes * nbls {
        return Err(r.invalid(
            "Header/Nblts",
            format!(
                "Nblts = {nblts} but Ntimes x Nbls = {ntimes} x {nbls} = {}",
                ntimes * nbls
            ),
        ));
    }
    if nbls == 0 || nfreqs == 0 || npols == 0 {
        return Err(r.invalid("Header/Nbls", "zero-sized axis (Nbls, Nfreqs or Npols)"));
    }
    let freq_array: Vec<f64> = r.vec("Header/freq_array", Some(nfreqs))?;
    let cw: Vec<f64> = r.vec("Header/channel_width", None)?;
    let channel_width = *cw
        .first()
        .ok_or_else(|| r.invalid("Header/channel_width", "empty"))?;
    if !channel_width.is_finite() || channel_width == 0.0 {
        return Err(r.invalid(
            "Header/channel_width",
            format!("{channel_width} is not a usable width"),
        ));
    }
    check_freq_axis(&r, &freq_array, channel_width)?;
    let polarization_array = read_polarizations(&r, npols)?;
    let antenna_numbers: Vec<i64> = r.vec("Header/antenna_numbers", Some(nants_telescope))?;
    let antenna_names = r.strings("Header/antenna_names")?;
    if antenna_names.len() != nants_telescope {
        return Err(r.invalid(
            "Header/antenna_names",
            format!(
                "{} names for Nants_telescope = {nants_telescope}",
                antenna_names.len()
            ),
        ));
    }
    let antenna_diameters: Vec<f64> = if r.has("Header/antenna_diameters") {
        r.vec("Header/antenna_diameters", Some(nants_telescope))?
    } else {
        vec![crate::core::telescope::DISH_DIAMETER_M; nants_telescope]
    };
    let antenna_positions = read_antenna_positions(&r, nants_telescope)?;
    let ant_1_array: Vec<i64> = r.vec("Header/ant_1_array", Some(nblts))?;
    let ant_2_array: Vec<i64> = r.vec("Header/ant_2_array", Some(nblts))?;
    let known = AntennaSet::new(&antenna_numbers);
    for (name, arr) in [
        ("Header/ant_1_array", &ant_1_array),
        ("Header/ant_2_array", &ant_2_array),
    ] {
        if let Some(bad) = arr.iter().find(|&&a| !known.contains(a)) {
            return Err(r.invalid(
                name,
                format!("antenna number {bad} is not in Header/antenna_numbers"),
            ));
        }
    }
    let uvw: Vec<f64> = r.vec("Header/uvw_array", Some(nblts * 3))?;
    if uvw.iter().any(|x| !x.is_finite()) {
        return Err(r.invalid("Header/uvw_array", "has NaN or infinite values"));
    }
    let uvw_array = uvw.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    let time_array: Vec<f64> = r.vec("Header/time_array", Some(nblts))?;
    check_time_major(&r, &time_array, ntimes, nbls)?;
    let integration_time: Vec<f64> = r.vec("Header/integration_time", Some(nblts))?;
    let (phase_center_dec, phase_center_app_dec) = read_pointing_dec(&r)?;
    let latitude_deg: f64 = r.scalar("Header/latitude")?;
    let longitude_deg: f64 = r.scalar("Header/longitude")?;
    let altitude_m: f64 = r.scalar("Header/altitude")?;
    if !(latitude_deg.abs() <= 90.0 && longitude_deg.abs() <= 360.0 && altitude_m.is_finite()) {
        return Err(r.invalid(
            "Header/latitude",
            format!("implausible site {latitude_deg}, {longitude_deg}, {altitude_m}"),
        ));
    }
    let legacy_shapes = visdata_is_legacy(&r, nblts, nfreqs, npols)?;
    Ok(Uvh5Header {
        latitude_deg,
        longitude_deg,
        altitude_m,
        telescope_name: r.optional_string("Header/telescope_name")?,
        instrument: r.optional_string("Header/instrument")?,
        object_name: r.optional_string("Header/object_name")?,
        nants_data,
        nants_telescope,
        nbls,
        ntimes,
        nfreqs,
        npols,
        antenna_names,
        antenna_numbers,
        antenna_diameters,
        antenna_positions,
        ant_1_array,
        ant_2_array,
        uvw_array,
        time_array,
        integration_time,
        freq_array,
        channel_width,
        polarization_array,
        phase_center_dec,
        phase_center_app_dec,
        phase_type: r.optional_string("Header/phase_type")?,
        legacy_shapes,
    })
}

fn check_freq_axis(r: &Reader, f: &[f64], width: f64) -> Result<(), Uvh5Error> {
    if f.iter().any(|x| !x.is_finite() || *x <= 0.0) {
        return Err(r.invalid("Header/freq_array", "non-finite or non-positive frequency"));
    }
    if f.len() > 1 {
        let step = f[1] - f[0];
        for w in f.windows(2) {
            let d = w[1] - w[0];
            if d == 0.0 || d.signum() != step.signum() || (d - step).abs() > 1e-6 * step.abs() {
                return Err(r.invalid(
                    "Header/freq_array",
                    format!(
                        "channels are not evenly spaced and monotonic (steps {step} and {d} Hz)"
                    ),
                ));
            }
        }
        if (step.abs() - width.abs()).abs() > 1e-6 * width.abs() {
            return Err(r.invalid(
                "Header/channel_width",
                format!("channel width {width} Hz disagrees with the channel spacing {step} Hz"),
            ));
        }
    }
    Ok(())
}

/// The antenna numbers of a file, for checking the baselines' antennas: a table where the
/// numbers are small (as every array's are), a sorted list otherwise.
enum AntennaSet {
    Table(Vec<bool>),
    Sorted(Vec<i64>),
}

impl AntennaSet {
    fn new(numbers: &[i64]) -> Self {
        match numbers.iter().max() {
            Some(&max) if max < 1 << 16 && numbers.iter().all(|&a| a >= 0) => {
                let mut t = vec![false; max as usize + 1];
                numbers.iter().for_each(|&a| t[a as usize] = true);
                AntennaSet::Table(t)
            }
            _ => {
                let mut s = numbers.to_vec();
                s.sort_unstable();
                AntennaSet::Sorted(s)
            }
        }
    }

    fn contains(&self, a: i64) -> bool {
        match self {
            AntennaSet::Table(t) => usize::try_from(a).is_ok_and(|i| t.get(i) == Some(&true)),
            AntennaSet::Sorted(s) => s.binary_search(&a).is_ok(),
        }
    }
}

fn check_time_major(r: &Reader, t: &[f64], ntimes: usize, nbls: usize) -> Result<(), Uvh5Error> {
    if t.iter().any(|x| !x.is_finite()) {
        return Err(r.invalid("Header/time_array", "non-finite time"));
    }
    for it in 0..ntimes {
        let block = &t[it * nbls..(it + 1) * nbls];
        if block.iter().any(|&x| (x - block[0]).abs() > 1e-9) {
            return Err(r.invalid(
                "Header/time_array",
                format!("baseline-times are not time-major: integration {it} mixes times"),
            ));
        }
        if it > 0 && block[0] <= t[(it - 1) * nbls] {
            return Err(r.invalid(
                "Header/time_array",
                format!("integration {it} does not follow integration {}", it - 1),
            ));
        }
    }
    Ok(())
}

/// Reads `Data/visdata`, `Data/flags` and `Data/nsamples` (file order, flattened).
pub fn read_data(path: &Path, h: &Uvh5Header) -> Result<Uvh5Data, Uvh5Error> {
    let r = Reader::open(path)?;
    let n = h.nblts() * h.nfreqs * h.npols;
    let vis: Vec<Complex32> = r.vec("Data/visdata", Some(n))?;
    let flags: Vec<bool> = if r.has("Data/flags") {
        r.vec("Data/flags", Some(n))?
    } else {
        vec![false; n]
    };
    let nsamples: Vec<f32> = if r.has("Data/nsamples") {
        r.vec("Data/nsamples", Some(n))?
    } else {
        vec![1.0; n]
    };
    Ok(Uvh5Data {
        vis,
        flags,
        nsamples,
    })
}
