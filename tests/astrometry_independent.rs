//! Astrometry at the default settings against a held-out truth: groups written by the
//! independent generator (tests/reference/make_independent_group.py: pyuvdata 3 files, UVWs
//! and fringe phases from astropy/ERFA with its own IERS data, J2000 source positions in
//! `truth.json`) at pointing declinations 16.3, 54.6 and 72.0 deg, calibrated and imaged by
//! `contimg run` with only the data paths and the calibrator list set (UT1 from the built-in
//! IERS table). Every source with SNR > 30 in the restored image is located by a Gaussian
//! (log-parabola) fit through its brightest pixel and compared with the truth projected
//! through the image's FITS SIN header (tests/common, written from the FITS standard).

mod common;

use contimg::config::Config;
use std::path::Path;

/// Runs `contimg run` at the defaults on `dir` (a fixture with `calibrators.txt`); returns
/// the restored image, the residual image's robust rms and the output folder's guard.
fn image_at_defaults(dir: &Path) -> (common::Fits, f64, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.input.dir = dir.to_path_buf();
    c.output.dir = work.path().join("out");
    c.calibration.calibrator_list = Some(dir.join("calibrators.txt"));
    let cfg = work.path().join("c.yaml");
    common::write_config(&c, &cfg);
    let (code, log) = common::run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{}: run failed:\n{log}", dir.display());
    let (img, rms) = common::restored_and_residual_rms(&c.output.dir.join("images"));
    (img, rms, work)
}

/// Sub-pixel position of the peak at pixel (x, y): a Gaussian through the pixel and its two
/// neighbours along each axis (a parabola in the logarithm; exact for a Gaussian beam).
fn gaussian_peak(img: &common::Fits, x: usize, y: usize) -> (f64, f64) {
    let ln = |v: f32| (v.max(1e-30) as f64).ln();
    let c = ln(img.at(x, y));
    let axis = |m: f64, p: f64| {
        let den = m - 2.0 * c + p;
        if den.abs() < 1e-30 {
            0.0
        } else {
            0.5 * (m - p) / den
        }
    };
    (
        x as f64 + axis(ln(img.at(x - 1, y)), ln(img.at(x + 1, y))),
        y as f64 + axis(ln(img.at(x, y - 1)), ln(img.at(x, y + 1))),
    )
}

// Measured (2026-12-01, 2-core machine, all three runs 313 s): the calibrators (SNR
// 2460-2990) 0.044 px (dec 16.3), 0.169 px (dec 54.6), 0.043 px (dec 72); the fainter
// sources (SNR 30-92) 0.079-0.417 px (worst: seed1 "S6", SNR 45). The goal, 0.1 px
// for every source, is NOT met: the faint sources' offsets are several times their
// statistical error (~FWHM / (2 SNR)), and the dec-54.6 calibrator's 0.17 px is systematic.
// Not yet separated: the separable 3-point fit's bias on a rotated elliptical beam, residual
// sidelobes of the 20 Jy calibrator on a 20-antenna array, and the astrometry itself.
// Bounds at ~3x the measured worst: 0.5 px for SNR > 1000, 1.2 px for SNR > 30.
#[test]
fn source_positions_at_defaults_at_three_declinations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/independent");
    let (mut worst, mut worst_bright) = (0.0f64, 0.0f64);
    for (name, dec) in [("seed2", 16.3), ("seed1", 54.6), ("seed4", 72.0)] {
        let dir = root.join(name);
        let truth: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap())
                .unwrap();
        let (img, rms, _work) = image_at_defaults(&dir);
        let mut checked = 0;
        for s in truth["sources"].as_array().unwrap() {
            let flux = s["apparent_flux_jy"].as_f64().unwrap();
            if flux / rms < 30.0 {
                continue;
            }
            let (x, y) = img.world_to_pixel(
                s["ra_deg"].as_f64().unwrap(),
                s["dec_deg"].as_f64().unwrap(),
            );
            if x < 4.0 || y < 4.0 || x > img.n as f64 - 5.0 || y > img.n as f64 - 5.0 {
                continue;
            }
            let (px, py, _) = img.peak_near(x, y, 2);
            let (fx, fy) = gaussian_peak(&img, px.round() as usize, py.round() as usize);
            let off = (fx - x).hypot(fy - y);
            eprintln!(
                "{name} (dec {dec}): {} {flux:.3} Jy, SNR {:.0}: offset ({:+.3}, {:+.3}) px = {off:.3} px",
                s["name"],
                flux / rms,
                fx - x,
                fy - y
            );
            worst = worst.max(off);
            if flux / rms > 1000.0 {
                worst_bright = worst_bright.max(off);
            }
            checked += 1;
        }
        assert!(
            checked >= 1,
            "{name}: no source with SNR > 30 in the image (rms {rms:.2e})"
        );
    }
    eprintln!("worst position offset: {worst:.3} px (SNR > 1000: {worst_bright:.3} px)");
    assert!(
        worst_bright <= 0.5,
        "worst offset of a source with SNR > 1000: {worst_bright:.3} px"
    );
    assert!(worst <= 1.2, "worst position offset {worst:.3} px");
}
