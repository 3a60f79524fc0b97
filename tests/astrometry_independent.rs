//! Astrometry at the default settings against a held-out truth: groups written by the
//! independent generator (tests/reference/make_independent_group.py: pyuvdata 3 files, UVWs
//! and fringe phases from astropy/ERFA with its own IERS data, J2000 source positions in
//! `truth.json`) at pointing declinations 16.3, 54.6 and 72.0 deg, calibrated and imaged by
//! `contimg run` with only the data paths and the calibrator list set (UT1 from the built-in
//! IERS table). Every source with SNR > 30 in the restored image is located by a fit of
//! the image's restoring beam (header BMAJ/BMIN/BPA; free centre and amplitude) and compared
//! with the truth projected through the image's FITS SIN header (tests/common, written from the FITS standard).

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

// Measured (2026-12-01, 2-core machine, loaded; 659 s for the three runs), positions from a
// fit of the restoring beam: the calibrators (SNR 2460-2990) 0.020 px (dec 16.3), 0.026 px
// (dec 54.6), 0.004 px (dec 72) -- the 0.1 px goal holds for them. (A separable
// 3-point log-parabola through the peak pixel had read 0.044 / 0.169 / 0.043 px: its bias on a
// rotated elliptical beam, not the astrometry.) The fainter sources (SNR 30-92) 0.06-0.50 px,
// which is 0.39-2.25 times their statistical error theta_maj / (2 SNR) (the 20-antenna
// beam's major axis is 15-19 px at 10" cells): 0.1 px is not reachable at SNR 30 with this
// beam, so they are held to their own noise. Bounds: 0.08 px for SNR > 1000 (~3x the worst),
// 4 theta_maj / (2 SNR) for the rest (~2x the worst).
#[test]
fn source_positions_at_defaults_at_three_declinations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/independent");
    let (mut worst_sigmas, mut worst_bright) = (0.0f64, 0.0f64);
    for (name, dec) in [("seed2", 16.3), ("seed1", 54.6), ("seed4", 72.0)] {
        let dir = root.join(name);
        let truth: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap())
                .unwrap();
        let (img, rms, _work) = image_at_defaults(&dir);
        let bmaj_px = img.beam.expect("a restored image with a beam")[0] / img.cdelt[1].abs();
        eprintln!("{name}: restoring beam major axis {bmaj_px:.2} px, residual rms {rms:.2e} Jy");
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
            let (fx, fy, _) = img.fit_beam_at(px, py);
            let off = (fx - x).hypot(fy - y);
            eprintln!(
                "{name} (dec {dec}): {} {flux:.3} Jy, SNR {:.0}: offset ({:+.3}, {:+.3}) px = {off:.3} px",
                s["name"],
                flux / rms,
                fx - x,
                fy - y
            );
            // The statistical error of a position at this SNR with this beam.
            let sigma = bmaj_px / (2.0 * flux / rms);
            eprintln!("    = {:.2} x theta_maj / (2 SNR)", off / sigma);
            if flux / rms > 1000.0 {
                worst_bright = worst_bright.max(off);
            } else {
                worst_sigmas = worst_sigmas.max(off / sigma);
            }
            checked += 1;
        }
        assert!(
            checked >= 1,
            "{name}: no source with SNR > 30 in the image (rms {rms:.2e})"
        );
    }
    eprintln!(
        "worst offset: SNR > 1000 {worst_bright:.3} px; the rest {worst_sigmas:.2} x theta_maj / (2 SNR)"
    );
    assert!(
        worst_bright <= 0.08,
        "worst offset of a source with SNR > 1000: {worst_bright:.3} px"
    );
    assert!(
        worst_sigmas <= 4.0,
        "worst offset of the fainter sources: {worst_sigmas:.2} x theta_maj / (2 SNR)"
    );
}
