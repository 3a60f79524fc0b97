//! Layered settings: `contimg config` prints the complete effective settings; files given
//! with --config layer section by section, --set overrides one option, relative paths in a
//! file are taken from its folder (a run started from `/` finds everything) and those given
//! with --set from the working directory; and
//! configs/default.yaml is exactly `contimg config`'s output with comments.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn contimg_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    no_hdf5_locking();
    let o = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run contimg");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn config_prints_every_section_with_a_set_applied() {
    let (code, out, err) = contimg_in(Path::new("/"), &["config", "--set", "imaging.npix=300"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  npix: 300\n"), "{out}");
    for section in [
        "input:",
        "output:",
        "imaging:",
        "astrometry:",
        "flagging:",
        "calibration:",
        "compute:",
        "mpi:",
        "station_table:",
        "simulate:",
    ] {
        assert!(
            out.lines()
                .any(|l| l == section || l.starts_with(&format!("{section} "))),
            "no {section} in:\n{out}"
        );
    }
    let mut want = contimg::config::Config::default();
    want.imaging.npix = 300;
    assert_eq!(
        serde_yaml_ng::from_str::<contimg::config::Config>(&out).unwrap(),
        want
    );
    // A bad key or value names it.
    let (code, _, err) = contimg_in(Path::new("/"), &["config", "--set", "imaging.npixx=3"]);
    assert_eq!(code, 1);
    assert!(err.contains("imaging.npixx"), "{err}");
    let (code, _, err) = contimg_in(
        Path::new("/"),
        &["config", "--set", "calibration.span_minutes=-10"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("calibration.span_minutes"), "{err}");
    // A relative path on the command line is the working directory's, recorded absolute.
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = contimg_in(tmp.path(), &["config", "--set", "output.dir=out/night"]);
    assert_eq!(code, 0, "{err}");
    let c: contimg::config::Config = serde_yaml_ng::from_str(&out).unwrap();
    assert_eq!(
        c.output.dir,
        std::path::absolute(tmp.path()).unwrap().join("out/night")
    );
}

#[test]
fn default_yaml_is_the_effective_defaults_with_comments() {
    let (code, out, err) = contimg_in(Path::new("/"), &["config"]);
    assert_eq!(code, 0, "{err}");
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.yaml"))
            .unwrap();
    let stripped: String = shipped
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(stripped, out, "configs/default.yaml is out of step with `contimg config` (regenerate it from that output, keeping the comments)");
}

/// Two files in different folders with relative paths, and a --set, from `/`: the layered
/// result (later file wins per option, earlier options kept) is what runs.
#[test]
fn layered_files_with_relative_paths_run_from_root() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let mut c = small_config(dir.path());
    c.input.dir = a.join("night");
    c.simulate.sources = vec![source(0.1, 0.1, 2.0)];
    contimg::simulate::run(&c, &c.input.dir).unwrap();
    // a.yaml: the night (relative to a/) and most imaging options; b.yaml: the output
    // (relative to b/), the station table (relative to b/) and one imaging option.
    std::fs::copy(station_table(), b.join("stations.csv")).unwrap();
    std::fs::write(a.join("a.yaml"), "input: {dir: night, n_subbands: 2}\nimaging: {npix: 128, cell_arcsec: 30.0, niter: 0}\ncalibration: {enabled: false}\noutput: {mosaic: false, report: false}\n").unwrap();
    std::fs::write(
        b.join("b.yaml"),
        "output: {dir: products}\nstation_table: stations.csv\nimaging: {npix: 192}\n",
    )
    .unwrap();
    let (fa, fb) = (a.join("a.yaml"), b.join("b.yaml"));
    let args = [
        "--config",
        fa.to_str().unwrap(),
        "--config",
        fb.to_str().unwrap(),
        "--set",
        "imaging.epsilon=1e-5",
    ];
    let (code, out, err) = contimg_in(Path::new("/"), &[&["config"][..], &args].concat());
    assert_eq!(code, 0, "{err}");
    let eff: contimg::config::Config = serde_yaml_ng::from_str(&out).unwrap();
    assert_eq!(eff.input.dir, a.join("night"));
    assert_eq!(eff.output.dir, b.join("products"));
    assert_eq!(
        eff.station_table.as_deref(),
        Some(b.join("stations.csv").as_path())
    );
    assert_eq!(
        (
            eff.imaging.npix,
            eff.imaging.cell_arcsec,
            eff.imaging.epsilon,
            eff.input.n_subbands,
            eff.output.mosaic
        ),
        (192, 30.0, 1e-5, 2, false)
    );
    let (code, out, err) = contimg_in(Path::new("/"), &[&["run"][..], &args].concat());
    assert_eq!(code, 0, "{out}{err}");
    let img = std::fs::read_dir(b.join("products/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".dirty.fits"))
        .expect("a dirty image");
    let f = read_fits(&img);
    assert_eq!(f.n, 192);
    assert!((f.cdelt[1] - 30.0 / 3600.0).abs() < 1e-12);
    // Provenance: the version, the effective settings and the command line.
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("products/summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["contimg_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["settings"]["imaging"]["npix"], 192);
    assert_eq!(
        s["settings"]["input"]["dir"],
        a.join("night").to_str().unwrap()
    );
    assert!(
        s["command_line"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "imaging.epsilon=1e-5"),
        "{}",
        s["command_line"]
    );
    // FITS: version and settings in HISTORY, MJD-OBS, DATE, OBSGEO-X/Y/Z.
    let mut fits = fitsio::FitsFile::open(&img).unwrap();
    let hdu = fits.primary_hdu().unwrap();
    let mjd: f64 = hdu.read_key(&mut fits, "MJD-OBS").unwrap();
    assert!(
        (mjd - (2461113.7084 - 2400000.5)).abs() < 0.01,
        "MJD-OBS {mjd}"
    );
    let x: f64 = hdu.read_key(&mut fits, "OBSGEO-X").unwrap();
    let y: f64 = hdu.read_key(&mut fits, "OBSGEO-Y").unwrap();
    let z: f64 = hdu.read_key(&mut fits, "OBSGEO-Z").unwrap();
    assert!(
        ((x * x + y * y + z * z).sqrt() - 6.37e6).abs() < 3e4 && z > 3.8e6,
        "OBSGEO {x} {y} {z}"
    );
    let date: String = hdu.read_key(&mut fits, "DATE").unwrap();
    assert!(date.starts_with("20") && date.len() == 19, "{date}");
    drop(fits);
    let header = std::fs::read(&img).unwrap();
    let header = String::from_utf8_lossy(&header[..header.len().min(2880 * 8)]);
    assert!(
        header.contains(&format!("HISTORY contimg {}", env!("CARGO_PKG_VERSION"))),
        "no version in HISTORY"
    );
    assert!(
        header.contains("HISTORY imaging: {"),
        "no imaging settings in HISTORY"
    );
}
