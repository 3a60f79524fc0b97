//! The direct read path (positional reads of contiguous datasets) against the HDF5 library
//! path: bit-identical groups on the telescope's contiguous layout (legacy and pyuvdata-3
//! shapes), the library chosen for chunked/compressed datasets, and clear errors on
//! truncated files.

mod common;
use contimg::core::GroupVis;
use contimg::uvh5::group::{load_group_blocks, load_group_with, ReadPath};
use contimg::uvh5::{
    locate_data, read_data, read_data_routed, read_header, write_file, DataRoutes, Route,
};
use num_complex::Complex32;
use std::path::{Path, PathBuf};

fn hdf5_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .collect();
    v.sort();
    v
}

/// A simulated group of 4 subbands (the simulator writes contiguous, uncompressed arrays,
/// as the correlator does), with noise so no two samples agree.
fn simulated_group(dir: &Path) -> Vec<PathBuf> {
    let mut c = common::small_config(dir);
    c.simulate.n_subbands = 4;
    c.input.n_subbands = 4;
    c.simulate.noise.enabled = true;
    c.simulate.sources = vec![common::source(0.1, 0.1, 1.0)];
    contimg::simulate::run(&c, &c.input.dir).unwrap();
    let files = hdf5_files(&c.input.dir);
    assert_eq!(files.len(), 4);
    files
}

/// Sets flags, zero nsamples and NaN/zero visibilities in place (same dataset storage), so
/// the comparison covers every weight rule.
fn spoil(path: &Path, seed: usize) {
    let f = hdf5::File::open_rw(path).unwrap();
    let ds = f.dataset("Data/visdata").unwrap();
    let mut v: Vec<Complex32> = ds.read_raw().unwrap();
    for i in (seed..v.len()).step_by(37) {
        v[i] = Complex32::new(f32::NAN, 1.0);
    }
    for i in (seed + 5..v.len()).step_by(53) {
        v[i] = Complex32::new(0.0, 0.0);
    }
    ds.write_raw(&v).unwrap();
    let ds = f.dataset("Data/flags").unwrap();
    let mut fl: Vec<bool> = ds.read_raw().unwrap();
    for i in (seed + 3..fl.len()).step_by(11) {
        fl[i] = true;
    }
    ds.write_raw(&fl).unwrap();
    let ds = f.dataset("Data/nsamples").unwrap();
    let mut ns: Vec<f32> = ds.read_raw().unwrap();
    for (i, x) in ns.iter_mut().enumerate() {
        *x = match i % 29 {
            0 => 0.0,
            1 => 0.5,
            _ => *x,
        };
    }
    ds.write_raw(&ns).unwrap();
}

fn assert_bitwise_equal(a: &GroupVis, b: &GroupVis) {
    assert_eq!(a.freqs, b.freqs);
    assert_eq!(a.times_jd, b.times_jd);
    assert_eq!(a.baselines, b.baselines);
    assert_eq!(a.meta, b.meta);
    assert_eq!(a.vis.len(), b.vis.len());
    let vbits = |g: &GroupVis| {
        g.vis
            .iter()
            .map(|v| (v.re.to_bits(), v.im.to_bits()))
            .collect::<Vec<_>>()
    };
    let wbits = |g: &GroupVis| g.weight.iter().map(|w| w.to_bits()).collect::<Vec<_>>();
    assert!(vbits(a) == vbits(b), "visibilities differ");
    assert!(wbits(a) == wbits(b), "weights differ");
}

fn all_direct(r: &DataRoutes) -> bool {
    r.all().iter().all(|x| matches!(x, Route::Direct { .. }))
}

fn load(files: &[PathBuf], how: ReadPath) -> (GroupVis, Vec<DataRoutes>) {
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    load_group_with(&refs, how).unwrap()
}

/// Checks the group is not trivially equal: some samples weighted, some zero-weighted.
fn assert_mixed_weights(g: &GroupVis) {
    let zero = g.weight.count_flagged();
    assert!(
        zero > 0 && zero < g.weight.len(),
        "{zero} of {} weights zero",
        g.weight.len()
    );
    assert!(
        g.weight.contains(&half::f16::from_f32(0.5)),
        "nsamples 0.5 carried into the weights"
    );
}

#[test]
fn direct_and_library_paths_agree_on_the_telescope_layout() {
    let dir = tempfile::tempdir().unwrap();
    let files = simulated_group(dir.path());
    for (k, f) in files.iter().enumerate() {
        spoil(f, k);
    }
    assert!(read_header(&files[0]).unwrap().legacy_shapes);
    let (fast, routes) = load(&files, ReadPath::Auto);
    // Every dataset of every file took the direct path (no silent fallback).
    assert!(routes.iter().all(all_direct), "{routes:?}");
    let (lib, lib_routes) = load(&files, ReadPath::Library);
    assert!(lib_routes.iter().all(|r| *r == DataRoutes::LIBRARY));
    assert_mixed_weights(&lib);
    assert_bitwise_equal(&fast, &lib);
    // Reads of one baseline at a time, and of 50 (136 baselines: a short last run).
    let h = read_header(&files[0]).unwrap();
    let per_baseline = h.nfreqs * h.npols * 13;
    assert_eq!(h.nbls, 136);
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    for block in [1, 50 * per_baseline] {
        let (g, r) = load_group_blocks(&refs, ReadPath::Auto, block).unwrap();
        assert!(r.iter().all(all_direct));
        assert_bitwise_equal(&g, &lib);
    }
    // Whole-file reads agree with the library too.
    for f in &files {
        let h = read_header(f).unwrap();
        let r = locate_data(f, &h).unwrap();
        let (a, b) = (
            read_data_routed(f, &h, &r).unwrap(),
            read_data(f, &h).unwrap(),
        );
        let bits = |d: &contimg::uvh5::Uvh5Data| {
            d.vis
                .iter()
                .map(|v| (v.re.to_bits(), v.im.to_bits()))
                .collect::<Vec<_>>()
        };
        assert!(bits(&a) == bits(&b), "{}: visibilities differ", f.display());
        assert!(
            a.flags == b.flags && a.nsamples == b.nsamples,
            "{}: flags or nsamples differ",
            f.display()
        );
    }
}

#[test]
fn direct_and_library_paths_agree_on_pyuvdata3_shapes_and_mixed_storage() {
    let dir = tempfile::tempdir().unwrap();
    let files = simulated_group(dir.path());
    let out = dir.path().join("v3");
    std::fs::create_dir(&out).unwrap();
    let mut v3 = Vec::new();
    for (k, f) in files.iter().enumerate() {
        spoil(f, k + 7);
        let mut h = read_header(f).unwrap();
        let d = read_data(f, &h).unwrap();
        h.legacy_shapes = false;
        let p = out.join(f.file_name().unwrap());
        write_file(&p, &h, &d).unwrap();
        v3.push(p);
    }
    assert!(!read_header(&v3[0]).unwrap().legacy_shapes);
    // One file keeps its contiguous visibilities but has gzip-chunked flags, and another has
    // no nsamples: per-dataset routes.
    {
        let f = hdf5::File::open_rw(&v3[1]).unwrap();
        let fl: Vec<bool> = f.dataset("Data/flags").unwrap().read_raw().unwrap();
        let shape = f.dataset("Data/flags").unwrap().shape();
        f.unlink("Data/flags").unwrap();
        f.new_dataset::<bool>()
            .shape(shape.clone())
            .chunk([shape[0] / 2, shape[1], shape[2]])
            .deflate(4)
            .create("Data/flags")
            .unwrap()
            .write_raw(&fl)
            .unwrap();
        let f = hdf5::File::open_rw(&v3[2]).unwrap();
        f.unlink("Data/nsamples").unwrap();
    }
    let (fast, routes) = load(&v3, ReadPath::Auto);
    assert!(
        all_direct(&routes[0]) && all_direct(&routes[3]),
        "{routes:?}"
    );
    assert!(
        matches!(routes[1].vis, Route::Direct { .. })
            && matches!(routes[1].nsamples, Route::Direct { .. })
    );
    assert_eq!(routes[1].flags, Route::Library);
    assert!(
        matches!(routes[2].vis, Route::Direct { .. })
            && matches!(routes[2].flags, Route::Direct { .. })
    );
    assert_eq!(routes[2].nsamples, Route::Absent);
    let (lib, _) = load(&v3, ReadPath::Library);
    assert_mixed_weights(&lib);
    assert_bitwise_equal(&fast, &lib);
    // The pyuvdata-3 copy and the legacy original read to the same group.
    let (orig, _) = load(&files, ReadPath::Auto);
    assert_eq!(orig.vis.len(), fast.vis.len());
}

#[test]
fn compressed_pyuvdata_files_take_the_library_path() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/independent/seed1");
    let files = hdf5_files(&dir);
    assert_eq!(files.len(), 16);
    let (fast, routes) = load(&files, ReadPath::Auto);
    // pyuvdata chunks visdata and gzips flags and nsamples: nothing is read directly.
    assert!(
        routes.iter().all(|r| *r == DataRoutes::LIBRARY),
        "{routes:?}"
    );
    let (lib, _) = load(&files, ReadPath::Library);
    assert_bitwise_equal(&fast, &lib);
}

#[test]
fn truncated_files_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = simulated_group(dir.path());
    let f = &files[0];
    let h = read_header(f).unwrap();
    let routes = locate_data(f, &h).unwrap();
    let Route::Direct { offset } = routes.nsamples else {
        panic!("{routes:?}")
    };
    // Cut the file inside Data/nsamples, after HDF5 located it (a file shrinking under a
    // reader, or a short file whose metadata HDF5 still accepts).
    let len = std::fs::metadata(f).unwrap().len();
    let cut = offset + 100;
    assert!(cut < len);
    std::fs::OpenOptions::new()
        .write(true)
        .open(f)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let err = read_data_routed(f, &h, &routes).unwrap_err().to_string();
    println!("{err}");
    assert!(
        err.contains(&*f.file_name().unwrap().to_string_lossy())
            && err.contains("Data/nsamples")
            && err.contains("truncated"),
        "{err}"
    );
    // The group loader also fails cleanly (HDF5 itself or the range check names the file).
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let err = load_group_with(&refs, ReadPath::Auto)
        .unwrap_err()
        .to_string();
    println!("{err}");
    assert!(
        err.contains(&*f.file_name().unwrap().to_string_lossy()),
        "{err}"
    );
}
