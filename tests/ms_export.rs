//! Measurement Set export (`--features ms`): shapes and contents read back with casacore
//! (rubbl), and — where a Python with python-casacore and pyuvdata is named by
//! CONTIMG_MS_PYTHON — the independent checks of tests/reference/check_ms.py: UVW against
//! pyuvdata, visibility phases and fluxes against the truth, WSClean imaging the MS.
#![cfg(feature = "ms")]

mod common;
use common::*;
use rubbl_casatables::{Table, TableOpenMode};
use std::path::{Path, PathBuf};

fn ms_config(dir: &Path) -> contimg::config::Config {
    let mut c = small_config(dir);
    c.input.n_subbands = 4;
    c.simulate.n_subbands = 4;
    c.simulate.n_channels = 8;
    c.simulate.n_times = 12;
    c.simulate.n_antennas = 48;
    c.simulate.sources = vec![source(0.6, 0.3, 5.0)];
    c.astrometry.iers_file =
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/finals2000A_extract.txt"));
    c.flagging.enabled = false;
    c.imaging.npix = 512;
    c.imaging.cell_arcsec = 15.0;
    c.imaging.niter = 0;
    c
}

fn only_ms(dir: &Path) -> PathBuf {
    let ms: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ms"))
        .collect();
    assert_eq!(ms.len(), 1, "{ms:?}");
    ms[0].clone()
}

/// Rows, cell shapes and frequencies as casacore reads them.
fn read_back(ms: &Path, n_windows: usize, n_chan_total: usize, n_rows: usize) {
    let mut t = Table::open(ms, TableOpenMode::Read).unwrap();
    assert_eq!(t.n_rows() as usize, n_rows);
    let d: Vec<num_complex::Complex32> = t.get_cell_as_vec("DATA", 0).unwrap();
    assert_eq!(d.len(), 2 * n_chan_total / n_windows);
    let mut spw = Table::open(ms.join("SPECTRAL_WINDOW"), TableOpenMode::Read).unwrap();
    assert_eq!(spw.n_rows() as usize, n_windows);
    let mut all = Vec::new();
    for w in 0..n_windows as u64 {
        let f: Vec<f64> = spw.get_cell_as_vec("CHAN_FREQ", w).unwrap();
        all.extend(f);
    }
    assert_eq!(all.len(), n_chan_total);
    assert!(
        all.windows(2).all(|p| p[1] > p[0]),
        "frequencies not ascending: {all:?}"
    );
}

#[test]
fn convert_writes_an_ms_that_casacore_pyuvdata_and_wsclean_accept() {
    let dir = tempfile::tempdir().unwrap();
    let c = ms_config(dir.path());
    let cfg = dir.path().join("c.yaml");
    write_config(&c, &cfg);
    let cs = cfg.to_str().unwrap();
    let (code, log) = run_bin(
        &[
            "simulate",
            "--config",
            cs,
            "--out",
            c.input.dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let (code, log) = run_bin(
        &["convert", "--config", cs, "--spectral-windows", "subbands"],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let ms = only_ms(&c.output.dir.join("ms"));
    let nbl = 48 * 49 / 2;
    read_back(&ms, 4, 32, 12 * 4 * nbl);
    assert!(
        !std::fs::read_dir(c.output.dir.join("ms"))
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with('.')),
        "temporary left behind"
    );
    // contimg's own dirty image of the group, for the comparison in check_ms.py.
    let (code, log) = run_bin(&["run", "--config", cs], &[]);
    assert_eq!(code, 0, "{log}");
    let image = std::fs::read_dir(c.output.dir.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".dirty.fits"))
        .unwrap();

    let Ok(python) = std::env::var("CONTIMG_MS_PYTHON") else {
        eprintln!("SKIPPED: independent MS checks (python-casacore, pyuvdata, WSClean): set CONTIMG_MS_PYTHON to a Python that has them (scripts/test.sh does)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(python)
        .arg(root.join("tests/reference/check_ms.py"))
        .args([
            "--ms",
            ms.to_str().unwrap(),
            "--truth",
            c.input.dir.join("truth.json").to_str().unwrap(),
            "--group",
            "0",
        ])
        .args([
            "--iers",
            root.join("tests/data/finals2000A_extract.txt")
                .to_str()
                .unwrap(),
            "--wsclean",
            "--contimg-image",
            image.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "check_ms.py failed:\n{text}");
}

#[test]
fn run_writes_merged_ms_and_a_bad_group_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ms_config(dir.path());
    c.simulate.n_groups = 2;
    c.simulate.n_antennas = 12;
    c.output.ms.write = true;
    c.output.ms.autocorrelations = false;
    let cfg = dir.path().join("c.yaml");
    write_config(&c, &cfg);
    let cs = cfg.to_str().unwrap();
    let (code, log) = run_bin(
        &[
            "simulate",
            "--config",
            cs,
            "--out",
            c.input.dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let (code, log) = run_bin(&["run", "--config", cs], &[]);
    assert_eq!(code, 0, "{log}");
    let msdir = c.output.dir.join("ms");
    let mut written: Vec<PathBuf> = std::fs::read_dir(&msdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    written.sort();
    assert_eq!(written.len(), 2, "{written:?}");
    read_back(&written[0], 1, 32, 12 * (12 * 11 / 2));

    // Truncate one subband of the first group: convert fails that group, naming the file,
    // writes the other, and exits 2 (night incomplete).
    let mut files: Vec<PathBuf> = std::fs::read_dir(&c.input.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hdf5" || e == "uvh5"))
        .collect();
    files.sort();
    let bad = &files[1];
    let bytes = std::fs::read(bad).unwrap();
    std::fs::write(bad, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::remove_dir_all(&msdir).unwrap();
    let (code, log) = run_bin(&["convert", "--config", cs], &[]);
    assert_eq!(code, 3, "{log}");
    let name = bad.file_name().unwrap().to_string_lossy().to_string();
    assert!(log.contains(&name), "error does not name {name}:\n{log}");
    let n_ms = std::fs::read_dir(&msdir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "ms")
        })
        .count();
    assert_eq!(n_ms, 1, "{log}");
}
