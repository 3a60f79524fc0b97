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
    c.imaging.nterms = nterms;
    c.input.n_subbands = 4;
    let s = &mut c.simulate;
    s.seed = 31;
    s.n_subbands = 4;
    s.n_channels = 6;
    s.n_times = 24;
    s.n_antennas = 24;
    let freqs: Vec<f64> = (0..4).flat_map(|sb| (0..6).map(move |ch| contimg::simulate::channel_freq(sb, ch, 6))).collect();
    c.imaging.spectral_ref_hz = freqs.iter().sum::<f64>() / freqs.len() as f64;
    s.noise.enabled = true;
    let cell = 5.0 / 3600.0;
    // Within ~0.15 deg of the centre: farther out, the drifting primary beam changes a
    // source's flux by > 10 % across the group, which a constant-flux CLEAN model (no
    // A-term in the major cycle) cannot fit to 3 % — a known limitation (issue 6).
    s.sources = vec![source(40.0 * cell, 25.0 * cell, 3.0), source(-90.0 * cell, 60.0 * cell, 1.5), source(-60.0 * cell, -70.0 * cell, 0.8)];
    let cfg = simulate_night(&c, dir.path());
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    for line in text.lines().filter(|l| l.contains("clean major")) {
        println!("{line}");
    }
    let truth = Truth::load(&c.input.dir).unwrap();
    let find = |kind: &str| {
        let p = std::fs::read_dir(c.output.dir.join("images")).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().ends_with(&format!(".{kind}.fits"))).unwrap();
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
    let n_samples = (n_ant * (n_ant - 1) / 2) * c.simulate.n_times * c.simulate.n_subbands * c.simulate.n_channels * 2;
    let expected = truth.noise_sigma_jy / (n_samples as f64).sqrt();
    let vals: Vec<f64> = residual.data.iter().map(|&x| x as f64).collect();
    let (_, robust) = contimg::primitives::stats::median_and_mad_sigma(&vals).unwrap();
    // Plain rms over the cleaned window (the inner 3/4), where CLEAN's errors would be: it
    // does not forgive the sidelobes of an under-cleaned source as a robust sigma would.
    let n = residual.n;
    let b = n / 8;
    let inner: Vec<f64> = (b..n - b).flat_map(|y| (b..n - b).map(move |x| (x, y))).map(|(x, y)| vals[y * n + x]).collect();
    let rms = (inner.iter().map(|v| v * v).sum::<f64>() / inner.len() as f64).sqrt();
    println!("residual rms {rms:.5} (robust {robust:.5}) Jy/beam vs thermal {expected:.5} ({:.2}x)", rms / expected);
    assert!(rms < 1.2 * expected, "residual rms {rms} vs thermal {expected}");
    // Not below what noise alone gives (the image's finite size takes out the shortest
    // baselines' fringes, ~0.93x here): CLEAN must not have absorbed the noise.
    assert!(robust > 0.8 * expected, "residual robust sigma {robust} vs thermal {expected}: noise was cleaned");
}
