//! Forced photometry across a simulated multi-night set: the same two sources on three
//! nights one sidereal day apart (so each night's tile covers the same sky), one constant,
//! one varying 2 -> 3 -> 1.5 Jy. The light curves recover the injected ratios and only the
//! variable source is a candidate.

mod common;
use common::*;
use contimg::simulate::Truth;

#[test]
fn photometry_recovers_injected_variability_over_nights() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sidereal_day_s = 86164.0905;
    let fluxes_b = [2.0, 3.0, 1.5];
    let mut positions = None;
    let mut nights = Vec::new();
    for (k, fb) in fluxes_b.iter().enumerate() {
        let mut c = small_config(d);
        c.simulate.n_antennas = 48;
        c.simulate.n_times = 24;
        c.simulate.noise.enabled = true;
        c.simulate.seed = 40 + k as u64;
        let t0 = contimg::primitives::time::iso_to_jd("2026-03-14T05:00:00").unwrap()
            + k as f64 * sidereal_day_s / 86400.0;
        c.simulate.start_time = contimg::primitives::time::jd_to_iso(t0, 0);
        c.imaging.niter = 1000;
        c.imaging.npix = 512;
        c.imaging.cell_arcsec = 20.0;
        c.input.dir = d.join(format!("night{k}"));
        c.output.dir = d.join(format!("out{k}"));
        c.simulate.sources = match positions {
            None => vec![source(0.25, 0.35, 3.0), source(-0.35, -0.3, *fb)],
            Some(((ra_a, dec_a), (ra_b, dec_b))) => {
                let mut a = source(0.0, 0.0, 3.0);
                (a.ra_deg, a.dec_deg) = (Some(ra_a), Some(dec_a));
                let mut b = source(0.0, 0.0, *fb);
                (b.ra_deg, b.dec_deg) = (Some(ra_b), Some(dec_b));
                vec![a, b]
            }
        };
        let cfg = d.join(format!("c{k}.yaml"));
        write_config(&c, &cfg);
        contimg::simulate::run(&c, &c.input.dir).unwrap();
        if positions.is_none() {
            let t = Truth::load(&c.input.dir).unwrap();
            positions = Some((
                (t.sources[0].ra_deg, t.sources[0].dec_deg),
                (t.sources[1].ra_deg, t.sources[1].dec_deg),
            ));
        }
        let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "{text}");
        nights.push(c.output.dir.clone());
    }
    let truth = d.join("night0/truth.json");
    let out = d.join("phot");
    let mut args: Vec<String> = vec!["photometry".into()];
    args.extend(nights.iter().map(|p| p.to_string_lossy().into_owned()));
    args.extend([
        "--truth".into(),
        truth.to_string_lossy().into_owned(),
        "--out".into(),
        out.to_string_lossy().into_owned(),
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, text) = run_bin(&argv, &[]);
    assert_eq!(code, 0, "{text}");
    println!("{text}");
    let lc = std::fs::read_to_string(out.join("lightcurves.csv")).unwrap();
    let flux = |name: &str| -> Vec<f64> {
        lc.lines()
            .skip(1)
            .filter(|l| l.starts_with(&format!("{name},")))
            .map(|l| l.split(',').nth(4).unwrap().parse().unwrap())
            .collect()
    };
    let (a, b) = (flux("truth_0"), flux("truth_1"));
    println!(
        "constant: {a:?}\nvariable: {b:?}\n{}",
        std::fs::read_to_string(out.join("variability.csv")).unwrap()
    );
    // One point per tile per night: the mosaic made from the tile is not a second epoch.
    assert_eq!((a.len(), b.len()), (3, 3));
    assert_eq!(lc.lines().filter(|l| l.contains("mosaic.fits")).count(), 0);
    // `run` wrote each night's photometry beside its images (the built-in VLA list: none
    // of its sources is in these tiles, so a header only).
    for n in &nights {
        let csv = std::fs::read_to_string(n.join("photometry/night.csv")).unwrap();
        assert!(csv.starts_with("source,ra_deg,dec_deg,date_obs,flux_jy,err_jy,image"));
    }
    for x in &a {
        assert!(
            (x / a[0] - 1.0).abs() < 0.03,
            "constant source varies: {a:?}"
        );
    }
    for (k, fb) in fluxes_b.iter().enumerate() {
        let want = fb / fluxes_b[0];
        assert!(
            (b[k] / b[0] / want - 1.0).abs() < 0.05,
            "night {k}: ratio {} vs {want}",
            b[k] / b[0]
        );
    }
    let var = std::fs::read_to_string(out.join("variability.csv")).unwrap();
    let cand = |name: &str| {
        var.lines()
            .find(|l| l.starts_with(&format!("{name},")))
            .unwrap()
            .ends_with("true")
    };
    assert!(cand("truth_1") && !cand("truth_0"), "{var}");
    // The VLA calibrator list as the catalogue: runs, and finds none of its sources in these
    // tiles (none is within them) rather than failing.
    let list =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/dsa110/vlacalibrators.txt");
    let mut args2: Vec<String> = vec![
        "photometry".into(),
        nights[0].to_string_lossy().into_owned(),
        "--calibrators".into(),
        list.to_string_lossy().into_owned(),
        "--out".into(),
        d.join("phot-vla").to_string_lossy().into_owned(),
    ];
    let argv2: Vec<&str> = args2.iter_mut().map(|s| s.as_str()).collect();
    let (code, text) = run_bin(&argv2, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(d.join("phot-vla/variability.csv").exists());
}
