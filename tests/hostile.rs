//! Hostile cases of issue 19 outside `contimg run`'s input table (tests/bad_inputs.rs):
//! a full disk while products are written (defect 4), tiles with a broken WCS in `mosaic`
//! and `photometry` (defect 9), and catalogues with duplicate names or NaN positions
//! (defect 11). Each failed (panic, truncated product, silent merge) before its fix.

mod common;
use common::*;
use contimg::products::{write_fits_image, write_fits_plane, Axes, ImageMeta};
use std::path::{Path, PathBuf};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Defect 4: with the file size limited (as a full disk: writes fail with EFBIG), no
/// truncated FITS is published under its final name, no `.part` file is left, the error
/// names the file, no image is logged "done", and the night exits 4 (nothing imaged).
#[test]
fn a_full_disk_publishes_no_truncated_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config(dir.path());
    c.imaging.niter = 0;
    c.simulate.sources = vec![source(0.1, 0.1, 2.0)];
    c.output.mosaic = false;
    c.output.report = false;
    let cfg = simulate_night(&c, dir.path());
    // 256 x 256 f32 planes are 262 kB; the limit is 200 kB (bash's ulimit -f counts kB).
    // (PMIx's shared-memory store would hit the limit in MPI_Init: its hash store instead.)
    let script = format!(
        "ulimit -f 200; trap '' XFSZ; exec {} run --config {}",
        bin().display(),
        cfg.display()
    );
    let (code, text) = {
        let o = std::process::Command::new("bash")
            .args(["-c", &script])
            .env("HDF5_USE_FILE_LOCKING", "FALSE")
            .env("PMIX_MCA_gds", "hash")
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    assert_eq!(code, 4, "{text}");
    assert!(
        text.contains(".dirty.fits: cannot write"),
        "the error does not name the file:\n{text}"
    );
    assert!(
        !text.contains(") done"),
        "an image was logged done:\n{text}"
    );
    let files = files_under(&c.output.dir);
    let fits: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".fits"))
        .collect();
    assert!(fits.is_empty(), "published despite the full disk: {fits:?}");
    let part: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(part.is_empty(), "left behind: {part:?}");
    assert!(!files
        .iter()
        .any(|p| p.to_string_lossy().ends_with(".done.json")));
}

fn meta(ra: f64, dec: f64) -> ImageMeta {
    ImageMeta {
        ra_deg: ra,
        dec_deg: dec,
        cell_deg: 20.0 / 3600.0,
        freq_hz: 1.4e9,
        bandwidth_hz: 1e8,
        date_obs: "2026-03-14T05:00:00.000".into(),
        bunit: "JY/BEAM",
        object: "t".into(),
        beam_deg: Some([0.02, 0.02, 0.0]),
        history: vec![],
    }
}

/// A tile (pbcor, pb, residual) at (ra, dec) with a 1 Jy point source at its centre.
fn tile(images: &Path, name: &str, ra: f64, dec: f64, cdelt2: Option<f64>) {
    let n = 64;
    let mut img = vec![0.001f32; n * n];
    for (k, v) in img.iter_mut().enumerate() {
        let (x, y) = ((k % n) as f64 - 32.0, (k / n) as f64 - 32.0);
        *v += (-(x * x + y * y) / (2.0 * 1.5f64.powi(2))).exp() as f32
            + 0.001 * ((k * 7919 % 13) as f32 - 6.0);
    }
    let pb = vec![1.0f32; n * n];
    let m = meta(ra, dec);
    for (kind, data) in [("pbcor", &img), ("pb", &pb), ("residual", &img)] {
        let path = images.join(format!("{name}.{kind}.fits"));
        match cdelt2 {
            None => write_fits_image(&path, n, data, &m).unwrap(),
            Some(c2) => {
                let axes = Axes {
                    code: "SIN",
                    nx: n,
                    ny: n,
                    crpix: [33.0, 33.0],
                    cdelt: [-m.cell_deg, c2],
                    crval: [ra, dec],
                };
                write_fits_plane(&path, data, &m, &axes).unwrap()
            }
        }
    }
}

/// Defect 9: a tile with CDELT2 = 0 or 1e30 panicked `mosaic` and `photometry` or became a
/// false variability candidate; now it is left out of the mosaic with a warning, and
/// photometry refuses it naming the file.
#[test]
fn tiles_with_a_broken_wcs_are_refused_by_name() {
    for bad in [0.0, 1e30] {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).unwrap();
        // Tiles 0.36 deg wide, 1.15 deg apart: no overlap.
        tile(&images, "a", 150.0, 40.0, None);
        tile(&images, "b", 151.5, 40.0, None);
        tile(&images, "z", 153.0, 40.0, Some(bad));
        let m = contimg::mosaic::build(dir.path(), &dir.path().join("mosaic"), 0.2)
            .unwrap_or_else(|e| panic!("CDELT2 = {bad}: {e}"));
        assert_eq!(m.tiles, 2, "CDELT2 = {bad}: the broken tile was mosaicked");
        // The source's peak in the mosaic: 1 Jy (cubic resampling; measured 0.99-1.0).
        let mos = read_fits(&dir.path().join("mosaic/mosaic.fits"));
        let peak = mos
            .data
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |a, &b| a.max(b));
        assert!(
            (peak - 1.0).abs() < 0.05,
            "CDELT2 = {bad}: mosaic peak {peak}"
        );
        std::fs::remove_dir_all(dir.path().join("mosaic")).unwrap();
        let targets = vec![contimg::photometry::Target {
            name: "s".into(),
            ra_deg: 150.0,
            dec_deg: 40.0,
        }];
        let e = contimg::photometry::measure_nights(&[dir.path().to_path_buf()], &targets)
            .err()
            .unwrap_or_else(|| panic!("CDELT2 = {bad}: photometry measured a broken tile"));
        assert!(
            e.to_string().contains("z.pbcor.fits") && e.to_string().contains("CDELT"),
            "{e}"
        );
    }
}

/// Defect 11: duplicate catalogue names (merged into one light curve) and NaN positions
/// (dropped silently) are refused, naming the line.
#[test]
fn catalogues_with_duplicate_names_or_nan_positions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cat.csv");
    std::fs::write(&p, "name,ra_deg,dec_deg\nA,10.0,20.0\nB,11.0,21.0\n").unwrap();
    assert_eq!(contimg::photometry::read_catalog(&p).unwrap().len(), 2);
    std::fs::write(
        &p,
        "name,ra_deg,dec_deg\nA,10.0,20.0\nB,11.0,21.0\nA,12.0,22.0\n",
    )
    .unwrap();
    let e = contimg::photometry::read_catalog(&p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cat.csv") && e.contains("line 4") && e.contains("twice"),
        "{e}"
    );
    std::fs::write(&p, "name,ra_deg,dec_deg\nA,NaN,20.0\n").unwrap();
    let e = contimg::photometry::read_catalog(&p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2"), "{e}");
}

/// Exit codes: a night where every group is flagged out exits 4 (nothing imaged), and its
/// QA report exits 5 (a gate failed) unless `--warn-only`; a usage error exits 2 and
/// nothing else does.
#[test]
fn exit_codes_tell_nothing_imaged_gate_failed_and_usage_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config(dir.path());
    c.simulate.sources = vec![source(0.1, 0.1, 2.0)];
    c.output.mosaic = false;
    c.flagging.channel_ranges_mhz = vec![[0.0, 1e5]];
    let cfg = simulate_night(&c, dir.path());
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 4, "{text}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.output.dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        (s["complete"].as_bool(), s["outcome"].as_str()),
        (Some(false), Some("nothing imaged")),
        "{s:#}"
    );
    let out = c.output.dir.to_str().unwrap();
    let (code, text) = run_bin(&["report", out], &[]);
    assert_eq!(code, 5, "{text}");
    assert!(text.contains("gate failed: night complete"), "{text}");
    let (code, text) = run_bin(&["report", out, "--warn-only"], &[]);
    assert_eq!(code, 0, "{text}");
    // An empty input directory: nothing imaged, not "complete".
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, text) = run_bin(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--input",
            empty.to_str().unwrap(),
            "--output",
            dir.path().join("out-empty").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 4, "{text}");
    let (code, text) = run_bin(&["run", "--no-such-flag"], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("Exit codes") || text.contains("--no-such-flag"),
        "{text}"
    );
}
