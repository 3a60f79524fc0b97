//! CLEAN on a simulated night (noise, unit gains): point sources in the restored image at
//! their apparent flux (3 %) and position (0.1 pixel), residual rms within 1.2x the thermal
//! expectation — with both minor-cycle algorithms.

mod common;
use common::*;
use contimg::imaging::clean::MinorAlgorithm;
use contimg::simulate::Truth;

#[test]
fn clark_recovers_sources_to_the_noise() {
    recovers_sources_to_the_noise(MinorAlgorithm::Clark, 1);
}

#[test]
fn hogbom_recovers_sources_to_the_noise() {
    recovers_sources_to_the_noise(MinorAlgorithm::Hogbom, 1);
}

/// Two spectral terms about the band centre: for flat-spectrum sources the same fluxes
/// (the slope term only absorbs the primary beam's chromaticity).
#[test]
fn multi_term_clark_recovers_sources_to_the_noise() {
    recovers_sources_to_the_noise(MinorAlgorithm::Clark, 2);
}

fn recovers_sources_to_the_noise(algorithm: MinorAlgorithm, nterms: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config(dir.path());
    c.imaging.npix = 512;
    c.imaging.cell_arcsec = 5.0;
    c.imaging.niter = 2000;
    // Defaults otherwise: auto-threshold 3 sigma, mgain 0.8, no mask, no drifting beam.
    c.imaging.minor_cycle = algorithm;
    // The noise check below is about the inner window: with the whole image cleanable this
    // 24-antenna, 5-minute tile (a few hundred independent uv cells) lets 3-sigma CLEAN
    // absorb noise (a noise-only tile's residual falls to 0.65x of its dirty noise; see
    // sources_near_the_edge_restore_to_their_apparent_flux for the whole window).
    c.imaging.clean_border = 0.125;
    c.imaging.nterms = nterms;
    c.input.n_subbands = 4;
    let s = &mut c.simulate;
    s.seed = 31;
    s.n_subbands = 4;
    s.n_channels = 6;
    s.n_times = 24;
    s.n_antennas = 24;
    let freqs: Vec<f64> = (0..4)
        .flat_map(|sb| (0..6).map(move |ch| contimg::simulate::channel_freq(sb, ch, 6)))
        .collect();
    c.imaging.spectral_ref_hz = freqs.iter().sum::<f64>() / freqs.len() as f64;
    s.noise.enabled = true;
    let cell = 5.0 / 3600.0;
    // Within ~0.15 deg of the centre: farther out, the drifting primary beam changes a
    // source's flux by > 10 % across the group, which a constant-flux CLEAN model (no
    // A-term in the major cycle) cannot fit to 3 % — a known limitation (issue 6).
    s.sources = vec![
        source(40.0 * cell, 25.0 * cell, 3.0),
        source(-90.0 * cell, 60.0 * cell, 1.5),
        source(-60.0 * cell, -70.0 * cell, 0.8),
    ];
    let cfg = simulate_night(&c, dir.path());
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    for line in text.lines().filter(|l| l.contains("clean major")) {
        println!("{line}");
    }
    let truth = Truth::load(&c.input.dir).unwrap();
    let find = |kind: &str| {
        let p = std::fs::read_dir(c.output.dir.join("images"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(&format!(".{kind}.fits")))
            .unwrap();
        read_fits(&p)
    };
    let restored = find("restored");
    let residual = find("residual");
    for src in &truth.sources {
        let (px, py) = restored.world_to_pixel(src.ra_deg, src.dec_deg);
        let (fx, fy, peak) = restored.peak_near(px, py, 2);
        let err = ((fx - px).powi(2) + (fy - py).powi(2)).sqrt();
        let rel = peak as f64 / src.apparent_flux_jy[0] - 1.0;
        println!("source {:.2} Jy: restored peak {peak:.4} vs apparent {:.4} ({:+.2} %), position off by {err:.3} px", src.flux_jy, src.apparent_flux_jy[0], 100.0 * rel);
        assert!(rel.abs() < 0.03, "flux off by {:.2} %", 100.0 * rel);
        assert!(err < 0.1, "position off by {err} px");
    }
    // Thermal expectation: per-visibility sigma over sqrt(number of cross-correlation
    // samples gridded) (natural weighting, unit weights).
    let n_ant = truth.stations.len();
    let n_samples = (n_ant * (n_ant - 1) / 2)
        * c.simulate.n_times
        * c.simulate.n_subbands
        * c.simulate.n_channels
        * 2;
    let expected = truth.noise_sigma_jy / (n_samples as f64).sqrt();
    let vals: Vec<f64> = residual.data.iter().map(|&x| x as f64).collect();
    let (_, robust) = contimg::primitives::stats::median_and_mad_sigma(&vals).unwrap();
    // Plain rms over the cleaned window (the inner 3/4), where CLEAN's errors would be: it
    // does not forgive the sidelobes of an under-cleaned source as a robust sigma would.
    let n = residual.n;
    let b = n / 8;
    let inner: Vec<f64> = (b..n - b)
        .flat_map(|y| (b..n - b).map(move |x| (x, y)))
        .map(|(x, y)| vals[y * n + x])
        .collect();
    let rms = (inner.iter().map(|v| v * v).sum::<f64>() / inner.len() as f64).sqrt();
    println!(
        "residual rms {rms:.5} (robust {robust:.5}) Jy/beam vs thermal {expected:.5} ({:.2}x)",
        rms / expected
    );
    assert!(
        rms < 1.2 * expected,
        "residual rms {rms} vs thermal {expected}"
    );
    // Not below what noise alone gives (the image's finite size takes out the shortest
    // baselines' fringes, ~0.93x here): CLEAN must not have absorbed the noise.
    assert!(
        robust > 0.8 * expected,
        "residual robust sigma {robust} vs thermal {expected}: noise was cleaned"
    );
}

/// The thermal expectation of a simulated night's image (natural weighting, unit weights):
/// the per-visibility sigma over sqrt(cross-correlation samples).
fn thermal(c: &contimg::config::Config, truth: &Truth) -> f64 {
    let n_ant = truth.stations.len();
    let n_samples = (n_ant * (n_ant - 1) / 2)
        * c.simulate.n_times
        * c.simulate.n_subbands
        * c.simulate.n_channels
        * 2;
    truth.noise_sigma_jy / (n_samples as f64).sqrt()
}

fn product(c: &contimg::config::Config, kind: &str) -> Fits {
    let p = std::fs::read_dir(c.output.dir.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(&format!(".{kind}.fits")))
        .unwrap();
    read_fits(&p)
}

/// The peak near a pixel by a 2-D quadratic through the 3 x 3 pixels about the maximum (the
/// per-axis parabola of `peak_near` is biased by up to 0.2 pixel for a source between pixel
/// rows under a tilted elliptical beam).
fn peak_2d(img: &Fits, x: f64, y: f64) -> (f64, f64, f32) {
    let (bx, by, _) = img.peak_near(x, y, 2);
    let (bx, by) = (bx.round() as usize, by.round() as usize);
    let f = |dx: i64, dy: i64| img.at((bx as i64 + dx) as usize, (by as i64 + dy) as usize) as f64;
    let (gx, gy) = ((f(1, 0) - f(-1, 0)) / 2.0, (f(0, 1) - f(0, -1)) / 2.0);
    let (hxx, hyy) = (
        f(1, 0) - 2.0 * f(0, 0) + f(-1, 0),
        f(0, 1) - 2.0 * f(0, 0) + f(0, -1),
    );
    let hxy = (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1)) / 4.0;
    let det = hxx * hyy - hxy * hxy;
    let (dx, dy) = (-(hyy * gx - hxy * gy) / det, -(hxx * gy - hxy * gx) / det);
    (bx as f64 + dx, by as f64 + dy, img.at(bx, by))
}

fn rms(v: &[f32]) -> f64 {
    (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// A noisy 24-antenna, 4-subband, 24-integration tile of `npix` pixels of `cell` arcsec,
/// CLEANed to `niter`.
fn noisy_tile(
    dir: &std::path::Path,
    npix: usize,
    cell: f64,
    niter: usize,
    seed: u64,
) -> contimg::config::Config {
    let mut c = small_config(dir);
    c.imaging.npix = npix;
    c.imaging.cell_arcsec = cell;
    c.imaging.niter = niter;
    c.input.n_subbands = 4;
    let s = &mut c.simulate;
    s.seed = seed;
    s.n_subbands = 4;
    s.n_channels = 6;
    s.n_times = 24;
    s.n_antennas = 24;
    s.noise.enabled = true;
    c
}

/// Components anywhere in the image: sources at 0.45 of the image width from the centre
/// (north and west) and one near the centre; CLEAN's window reaches to EDGE_PX pixels of
/// the edge (the PSF is made at twice the image's size). Measured: fluxes within 0.28 %,
/// positions within 0.04 pixel, residual rms 0.68x thermal over the whole image.
#[test]
fn sources_near_the_edge_restore_to_their_apparent_flux() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = noisy_tile(dir.path(), 512, 5.0, 3000, 37);
    let s = &mut c.simulate;
    let edge = 0.45 * 512.0 * 5.0 / 3600.0;
    s.sources = vec![
        source(0.0, edge, 1.0),
        source(-edge, -0.05, 0.8),
        source(0.05, 0.02, 2.0),
    ];
    let cfg = simulate_night(&c, dir.path());
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    let truth = Truth::load(&c.input.dir).unwrap();
    let restored = product(&c, "restored");
    let residual = product(&c, "residual");
    for src in &truth.sources {
        let (px, py) = restored.world_to_pixel(src.ra_deg, src.dec_deg);
        let (fx, fy, _) = peak_2d(&restored, px, py);
        let (_, _, peak) = restored.peak_near(px, py, 2);
        let err = ((fx - px).powi(2) + (fy - py).powi(2)).sqrt();
        let rel = peak as f64 / src.apparent_flux_jy[0] - 1.0;
        println!("source {:.2} Jy at pixel ({px:.2}, {py:.2}): restored {peak:.4} vs apparent {:.4} ({:+.2} %) at ({fx:.2}, {fy:.2}), off by {err:.3} px", src.flux_jy, src.apparent_flux_jy[0], 100.0 * rel);
    }
    for src in &truth.sources {
        let (px, py) = restored.world_to_pixel(src.ra_deg, src.dec_deg);
        let (fx, fy, _) = peak_2d(&restored, px, py);
        let (_, _, peak) = restored.peak_near(px, py, 2);
        let err = ((fx - px).powi(2) + (fy - py).powi(2)).sqrt();
        let rel = peak as f64 / src.apparent_flux_jy[0] - 1.0;
        assert!(rel.abs() < 0.02, "flux off by {:.2} %", 100.0 * rel);
        assert!(err < 0.1, "position off by {err} px");
    }
    let th = thermal(&c, &truth);
    let r = rms(&residual.data);
    println!(
        "residual rms over the whole image {r:.5} Jy/beam vs thermal {th:.5} ({:.2}x)",
        r / th
    );
    assert!(r < 1.2 * th, "residual rms {r} vs thermal {th}");
}

/// A bright source outside the tile but inside the primary beam: its catalogue entry (flux
/// 30 % high, no spectral index while the sky's is -0.7) is predicted through the drifting
/// beam, fitted and subtracted, so its sidelobes leave the tile. Without the subtraction
/// the same night's residual is far above the noise. Measured (2026-12-02, the outliers
/// fitted to the raw visibilities before the first minor cycle and refitted in every major
/// cycle): 1.02x thermal with the subtraction (fitted 9.636 Jy at 1.475 GHz against the
/// sky's 9.64), 33.4x without. (Fitted only after the first minor cycle it was 2.62x and
/// 9.43 Jy: that cycle's components took the outlier's sidelobes.)
#[test]
fn outlier_outside_the_tile_is_subtracted() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = noisy_tile(dir.path(), 256, 20.0, 2000, 41);
    let s = &mut c.simulate;
    // The tile is 1.42 deg wide; the outlier 1.1 deg east of its centre (beam ~0.5).
    let mut out = source(1.1, 0.25, 10.0);
    out.spectral_index = -0.7;
    s.sources = vec![out, source(0.2, -0.1, 1.0)];
    simulate_night(&c, dir.path());
    let truth = Truth::load(&c.input.dir).unwrap();
    let o = &truth.sources[0];
    let sexa = |v: f64, hours: bool| {
        let x = if hours { v / 15.0 } else { v.abs() };
        let (d, m) = (x.trunc(), (x.fract() * 60.0).trunc());
        let sec = ((x * 60.0).fract()) * 60.0;
        if hours {
            format!("{d:02}h{m:02}m{sec:09.6}s")
        } else {
            format!(
                "{}{d:02}d{m:02}'{sec:09.6}\"",
                if v < 0.0 { "-" } else { "" }
            )
        }
    };
    let cat = dir.path().join("outliers.txt");
    let text = format!("OUTL+000   J2000  A {}  {}  Aug01  test\n-----\nBAND        A B C D    FLUX(Jy)    UVMIN(kL)  UVMAX(kL)\n=====\n 20cm    L  P P P P      {:.3}\n", sexa(o.ra_deg, true), sexa(o.dec_deg, false), 1.3 * o.flux_jy);
    std::fs::write(&cat, text).unwrap();
    let th = thermal(&c, &truth);
    let mut ratios = Vec::new();
    for min_beam in [0.05, 0.0] {
        c.imaging.outlier_min_beam = min_beam;
        c.imaging.outlier_catalog = Some(cat.clone());
        let _ = std::fs::remove_dir_all(&c.output.dir);
        let cfg = dir.path().join("c.yaml");
        write_config(&c, &cfg);
        let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "{text}");
        for line in text.lines().filter(|l| l.contains("outlier")) {
            println!("{line}");
        }
        let r = rms(&product(&c, "residual").data);
        println!("outlier_min_beam {min_beam}: residual rms in the tile {r:.5} Jy/beam vs thermal {th:.5} ({:.2}x)", r / th);
        ratios.push(r / th);
    }
    assert!(
        ratios[0] <= 2.0,
        "with the outlier subtracted: {:.2}x thermal",
        ratios[0]
    );
    assert!(
        ratios[1] > 3.0 * ratios[0],
        "without: {:.2}x thermal (the test's outlier is too faint to matter)",
        ratios[1]
    );
}
