//! UVH5 reading: a file written by pyuvdata reads to what pyuvdata reports; files of the
//! telescope's layout round-trip; bad files give errors naming the file and the dataset.

mod common;
use contimg::uvh5::group::load_group;
use contimg::uvh5::{read_data, read_header, write_file};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyuvdata_small.uvh5")
}

#[derive(serde::Deserialize)]
struct Expected {
    nbls: usize,
    ntimes: usize,
    freq_hz: Vec<f64>,
    times_jd: Vec<f64>,
    ant_1: Vec<i64>,
    ant_2: Vec<i64>,
    time_array: Vec<f64>,
    vis_re: Vec<f64>,
    vis_im: Vec<f64>,
    flags: Vec<u8>,
    nsamples: Vec<f64>,
    polarization_array: Vec<i64>,
    antenna_positions: Vec<f64>,
    latitude_deg: f64,
    longitude_deg: f64,
    altitude_m: f64,
    pointing_dec_rad: f64,
}

fn expected() -> Expected {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyuvdata_small.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn pyuvdata_file_reads_as_pyuvdata_reports() {
    let e = expected();
    let h = read_header(&fixture()).unwrap();
    assert!(!h.legacy_shapes);
    assert_eq!((h.nbls, h.ntimes), (e.nbls, e.ntimes));
    assert_eq!(h.freq_array, e.freq_hz);
    assert_eq!(h.ant_1_array, e.ant_1);
    assert_eq!(h.ant_2_array, e.ant_2);
    assert_eq!(h.time_array, e.time_array);
    assert_eq!(h.polarization_array, e.polarization_array);
    let pos: Vec<f64> = h.antenna_positions.iter().flatten().copied().collect();
    assert!(pos
        .iter()
        .zip(&e.antenna_positions)
        .all(|(a, b)| (a - b).abs() < 1e-9));
    assert!(
        (h.latitude_deg - e.latitude_deg).abs() < 1e-9
            && (h.longitude_deg - e.longitude_deg).abs() < 1e-9
    );
    assert!((h.altitude_m - e.altitude_m).abs() < 1e-6);
    assert!((h.phase_center_dec - e.pointing_dec_rad).abs() < 1e-15);
    assert_eq!(h.antenna_names[116], "117");
    let d = read_data(&fixture(), &h).unwrap();
    for (i, v) in d.vis.iter().enumerate() {
        if e.vis_re[i] > 1e29 {
            assert!(v.re.is_nan());
        } else {
            assert_eq!(
                (v.re, v.im),
                (e.vis_re[i] as f32, e.vis_im[i] as f32),
                "visibility {i}"
            );
        }
    }
    assert_eq!(
        d.flags.iter().map(|&f| f as u8).collect::<Vec<_>>(),
        e.flags
    );
    assert_eq!(
        d.nsamples.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        e.nsamples
    );
}

#[test]
fn pyuvdata_file_converts_with_normalised_baselines_and_ascending_frequency() {
    let e = expected();
    let g = load_group(&[fixture().as_path()]).unwrap();
    let mut f = e.freq_hz.clone();
    f.sort_by(|a, b| a.total_cmp(b));
    assert_eq!(g.freqs, f);
    assert_eq!(g.times_jd, e.times_jd);
    let nch = f.len();
    let nbl = e.nbls;
    for r in 0..e.ant_1.len() {
        let (t, b) = (r / nbl, r % nbl);
        let (a1, a2) = (e.ant_1[r] as usize, e.ant_2[r] as usize);
        assert_eq!(g.baselines[b], (a1.min(a2), a1.max(a2)));
        for c in 0..nch {
            for p in 0..2 {
                let src = (r * nch + c) * 2 + p;
                let dst_c = nch - 1 - c; // file is descending
                let v = g.vis[g.index(b, t, dst_c, p)];
                let w = g.weight.get(g.index(b, t, dst_c, p));
                let (re, im) = (e.vis_re[src], e.vis_im[src]);
                let bad = re > 1e29 || (re == 0.0 && im == 0.0) || e.flags[src] == 1;
                if bad {
                    assert_eq!(w, 0.0, "bad sample must be flagged");
                } else {
                    let want_im = if a1 > a2 { -im } else { im };
                    assert_eq!((v.re, v.im), (re as f32, want_im as f32));
                    // Half-float weights: 11 significant bits (core::Weights).
                    let ns = e.nsamples[src];
                    assert!((w as f64 - ns).abs() <= 4.9e-4 * ns, "{w} vs {ns}");
                }
            }
        }
    }
}

#[test]
fn legacy_layout_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::small_config(dir.path());
    c.simulate.noise.enabled = true;
    c.simulate.sources = vec![common::source(0.1, 0.1, 1.0)];
    let night = dir.path().join("night");
    contimg::simulate::run(&c, &night).unwrap();
    let f = std::fs::read_dir(&night)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .unwrap();
    let h = read_header(&f).unwrap();
    assert!(h.legacy_shapes);
    assert_eq!(h.nblts(), h.ntimes * h.nbls);
    assert!(
        h.ant_1_array.iter().zip(&h.ant_2_array).any(|(a, b)| a > b),
        "correlator order has ant_1 > ant_2 rows"
    );
    assert!(
        h.ant_1_array
            .iter()
            .zip(&h.ant_2_array)
            .any(|(a, b)| a == b),
        "autocorrelations present"
    );
    assert!(
        h.freq_array.windows(2).all(|w| w[1] < w[0]),
        "channels descending"
    );
    let d = read_data(&f, &h).unwrap();
    let copy = dir.path().join("copy.hdf5");
    write_file(&copy, &h, &d).unwrap();
    assert_eq!(read_header(&copy).unwrap(), h);
    assert_eq!(read_data(&copy, &h).unwrap(), d);
}

/// Makes a copy of a valid simulated file and lets `edit` break it with h5py-free means.
fn broken_copy(dir: &Path, name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let src = dir.join("good.hdf5");
    let dst = dir.join(name);
    std::fs::copy(&src, &dst).unwrap();
    edit(&dst);
    dst
}

fn good_file(dir: &Path) {
    common::no_hdf5_locking();
    let mut c = common::small_config(dir);
    c.simulate.n_subbands = 1;
    let night = dir.join("n");
    contimg::simulate::run(&c, &night).unwrap();
    let f = std::fs::read_dir(&night)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .unwrap();
    std::fs::copy(f, dir.join("good.hdf5")).unwrap();
}

fn rewrite(path: &Path, dataset: &str, f: impl FnOnce(&hdf5::File)) {
    let file = hdf5::File::open_rw(path).unwrap();
    if file.link_exists(dataset) {
        file.unlink(dataset).unwrap();
    }
    f(&file);
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    good_file(d);
    let good_len = std::fs::metadata(d.join("good.hdf5")).unwrap().len();
    type Case = (&'static str, Box<dyn FnOnce(&Path)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "truncated.hdf5",
            Box::new(move |p: &Path| {
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.set_len(good_len / 3).unwrap();
            }),
            "HDF5",
        ),
        (
            "garbage.hdf5",
            Box::new(|p: &Path| std::fs::write(p, b"not an hdf5 file at all").unwrap()),
            "cannot open as HDF5",
        ),
        (
            "empty.hdf5",
            Box::new(|p: &Path| std::fs::write(p, b"").unwrap()),
            "cannot open as HDF5",
        ),
        (
            "no_ntimes.hdf5",
            Box::new(|p: &Path| rewrite(p, "Header/Ntimes", |_| {})),
            "Header/Ntimes",
        ),
        (
            "bad_nblts.hdf5",
            Box::new(|p: &Path| {
                rewrite(p, "Header/Nblts", |f| {
                    f.new_dataset::<i64>()
                        .shape(())
                        .create("Header/Nblts")
                        .unwrap()
                        .write_scalar(&7i64)
                        .unwrap();
                })
            }),
            "Header/Nblts",
        ),
        (
            "bad_pol.hdf5",
            Box::new(|p: &Path| {
                rewrite(p, "Header/polarization_array", |f| {
                    f.new_dataset::<i64>()
                        .shape([2])
                        .create("Header/polarization_array")
                        .unwrap()
                        .write_raw(&[-5i64, -7])
                        .unwrap();
                })
            }),
            "polarization",
        ),
        (
            "bad_shape.hdf5",
            Box::new(|p: &Path| {
                rewrite(p, "Data/visdata", |f| {
                    f.new_dataset::<num_complex::Complex32>()
                        .shape([3, 4])
                        .create("Data/visdata")
                        .unwrap();
                })
            }),
            "Data/visdata",
        ),
        (
            "bad_freq.hdf5",
            Box::new(|p: &Path| {
                let file = hdf5::File::open_rw(p).unwrap();
                let ds = file.dataset("Header/freq_array").unwrap();
                let mut v: Vec<f64> = ds.read_raw().unwrap();
                v.swap(0, 1);
                ds.write_raw(&v).unwrap();
            }),
            "Header/freq_array",
        ),
        (
            "no_visdata.hdf5",
            Box::new(|p: &Path| rewrite(p, "Data/visdata", |_| {})),
            "Data/visdata",
        ),
        (
            "bad_time.hdf5",
            Box::new(|p: &Path| {
                let file = hdf5::File::open_rw(p).unwrap();
                let ds = file.dataset("Header/time_array").unwrap();
                let mut v: Vec<f64> = ds.read_raw().unwrap();
                v[3] = f64::NAN;
                ds.write_raw(&v).unwrap();
            }),
            "Header/time_array",
        ),
    ];
    for (name, edit, needle) in cases {
        let p = broken_copy(d, name, edit);
        let err = match read_header(&p) {
            Err(e) => e.to_string(),
            Ok(h) => read_data(&p, &h).expect_err(name).to_string(),
        };
        println!("{name}: {err}");
        assert!(
            err.contains(name),
            "error for {name} does not name the file: {err}"
        );
        assert!(
            err.contains(needle),
            "error for {name} does not say {needle:?}: {err}"
        );
        // The group loader reports the same without panicking.
        assert!(load_group(&[p.as_path()]).is_err());
    }
    // A missing file.
    let err = read_header(&d.join("absent.hdf5")).unwrap_err().to_string();
    assert!(err.contains("absent.hdf5"), "{err}");
}

#[test]
fn antenna_positions_are_checked_against_the_station_table() {
    let dir = tempfile::tempdir().unwrap();
    good_file(dir.path());
    let f = dir.path().join("good.hdf5");
    let mut h = read_header(&f).unwrap();
    let stations = contimg::core::stations::read_stations(&common::station_table()).unwrap();
    let site = contimg::primitives::astrometry::Site::from_geodetic_deg(
        h.latitude_deg,
        h.longitude_deg,
        h.altitude_m,
    );
    assert!(
        contimg::plan::check_positions(&h, &site, &stations, &f).is_empty(),
        "simulated positions are the table's"
    );
    let a = h.ant_1_array[1] as usize;
    h.antenna_positions[a][2] += 0.08;
    let bad = contimg::plan::check_positions(&h, &site, &stations, &f);
    assert_eq!(bad.len(), 1);
    assert!((bad[0].1 - 0.08).abs() < 1e-6);
}
