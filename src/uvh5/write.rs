//! Writes a UVH5 file in the DSA-110 correlator's layout (legacy shapes) or pyuvdata 3's.

use super::{Uvh5Data, Uvh5Error, Uvh5Header};
use hdf5::types::{FixedAscii, VarLenUnicode};
use std::path::Path;

fn werr<'a>(path: &'a Path, dataset: &str) -> impl FnOnce(hdf5::Error) -> Uvh5Error + 'a {
    let dataset = dataset.to_string();
    move |source| Uvh5Error::Write {
        path: path.to_path_buf(),
        dataset,
        source,
    }
}

macro_rules! scalar {
    ($g:expr, $path:expr, $name:expr, $ty:ty, $val:expr) => {{
        let v: $ty = $val;
        $g.new_dataset::<$ty>()
            .shape(())
            .create($name)
            .and_then(|d| d.write_scalar(&v))
            .map_err(werr($path, $name))?;
    }};
}

fn fixed_str(g: &hdf5::Group, path: &Path, name: &str, s: &str) -> Result<(), Uvh5Error> {
    let v = FixedAscii::<64>::from_ascii(s.as_bytes()).map_err(|e| Uvh5Error::Invalid {
        path: path.to_path_buf(),
        dataset: name.into(),
        problem: format!("not ASCII: {e}"),
    })?;
    g.new_dataset::<FixedAscii<64>>()
        .shape(())
        .create(name)
        .and_then(|d| d.write_scalar(&v))
        .map_err(werr(path, name))
}

fn array<T: hdf5::H5Type>(
    g: &hdf5::Group,
    path: &Path,
    name: &str,
    shape: &[usize],
    data: &[T],
) -> Result<(), Uvh5Error> {
    g.new_dataset::<T>()
        .shape(shape)
        .create(name)
        .and_then(|d| d.write_raw(data))
        .map_err(werr(path, name))
}

/// Writes `header` and `data` to `path` (atomically: a temporary name, then rename).
/// With `legacy_shapes` the data carry the spw axis of length 1, as the telescope writes.
pub fn write_file(path: &Path, h: &Uvh5Header, d: &Uvh5Data) -> Result<(), Uvh5Error> {
    let tmp = path.with_extension("hdf5.part");
    let file = hdf5::File::create(&tmp).map_err(|source| Uvh5Error::Open {
        path: tmp.clone(),
        source,
    })?;
    // Every group and dataset handle lives in `write_contents`, so all are closed before the
    // file is: HDF5 keeps a file open (and locked) while any object in it is open.
    write_contents(&file, &tmp, h, d)?;
    file.close().map_err(werr(&tmp, "(close)"))?;
    std::fs::rename(&tmp, path).map_err(|source| Uvh5Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_contents(
    file: &hdf5::File,
    tmp: &Path,
    h: &Uvh5Header,
    d: &Uvh5Data,
) -> Result<(), Uvh5Error> {
    let p = tmp;
    let hg = file.create_group("Header").map_err(werr(p, "Header"))?;
    scalar!(hg, p, "latitude", f64, h.latitude_deg);
    scalar!(hg, p, "longitude", f64, h.longitude_deg);
    scalar!(hg, p, "altitude", f64, h.altitude_m);
    fixed_str(&hg, p, "telescope_name", &h.telescope_name)?;
    fixed_str(&hg, p, "instrument", &h.instrument)?;
    fixed_str(&hg, p, "object_name", &h.object_name)?;
    fixed_str(&hg, p, "history", "written by contimg simulate")?;
    fixed_str(&hg, p, "phase_type", &h.phase_type)?;
    scalar!(hg, p, "Nants_data", i64, h.nants_data as i64);
    scalar!(hg, p, "Nants_telescope", i64, h.nants_telescope as i64);
    scalar!(hg, p, "Nbls", i64, h.nbls as i64);
    scalar!(hg, p, "Nblts", i64, h.nblts() as i64);
    scalar!(hg, p, "Ntimes", i64, h.ntimes as i64);
    scalar!(hg, p, "Nfreqs", i64, h.nfreqs as i64);
    scalar!(hg, p, "Npols", i64, h.npols as i64);
    scalar!(hg, p, "Nspws", i64, 1);
    array(&hg, p, "spw_array", &[1], &[1i64])?;
    let names: Vec<FixedAscii<4>> = h
        .antenna_names
        .iter()
        .map(|s| FixedAscii::<4>::from_ascii(s.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|e| Uvh5Error::Invalid {
            path: p.into(),
            dataset: "antenna_names".into(),
            problem: e.to_string(),
        })?;
    array(&hg, p, "antenna_names", &[names.len()], &names)?;
    array(
        &hg,
        p,
        "antenna_numbers",
        &[h.antenna_numbers.len()],
        &h.antenna_numbers,
    )?;
    array(
        &hg,
        p,
        "antenna_diameters",
        &[h.antenna_diameters.len()],
        &h.antenna_diameters,
    )?;
    let pos: Vec<f64> = h.antenna_positions.iter().flatten().copied().collect();
    array(
        &hg,
        p,
        "antenna_positions",
        &[h.antenna_positions.len(), 3],
        &pos,
    )?;
    let nblts = h.nblts();
    array(&hg, p, "ant_1_array", &[nblts], &h.ant_1_array)?;
    array(&hg, p, "ant_2_array", &[nblts], &h.ant_2_array)?;
    let uvw: Vec<f32> = h.uvw_array.iter().flatten().map(|&x| x as f32).collect();
    array(&hg, p, "uvw_array", &[nblts, 3], &uvw)?;
    array(&hg, p, "time_array", &[nblts], &h.time_array)?;
    array(&hg, p, "integration_time", &[nblts], &h.integration_time)?;
    if h.legacy_shapes {
        array(&hg, p, "freq_array", &[1, h.nfreqs], &h.freq_array)?;
    } else {
        array(&hg, p, "freq_array", &[h.nfreqs], &h.freq_array)?;
    }
    scalar!(hg, p, "channel_width", f64, h.channel_width);
    array(
        &hg,
        p,
        "polarization_array",
        &[h.npols],
        &h.polarization_array,
    )?;
    scalar!(hg, p, "phase_center_app_dec", f64, h.phase_center_app_dec);
    let ek = hg
        .create_group("extra_keywords")
        .map_err(werr(p, "extra_keywords"))?;
    scalar!(ek, p, "phase_center_dec", f64, h.phase_center_dec);
    scalar!(ek, p, "ha_phase_center", f64, 0.0);
    let epoch: VarLenUnicode = "HADEC".parse().expect("ASCII literal");
    ek.new_dataset::<VarLenUnicode>()
        .shape(())
        .create("phase_center_epoch")
        .and_then(|ds| ds.write_scalar(&epoch))
        .map_err(werr(p, "phase_center_epoch"))?;

    let dg = file.create_group("Data").map_err(werr(p, "Data"))?;
    let shape: Vec<usize> = if h.legacy_shapes {
        vec![nblts, 1, h.nfreqs, h.npols]
    } else {
        vec![nblts, h.nfreqs, h.npols]
    };
    array(&dg, p, "visdata", &shape, &d.vis)?;
    array(&dg, p, "flags", &shape, &d.flags)?;
    array(&dg, p, "nsamples", &shape, &d.nsamples)?;
    Ok(())
}
