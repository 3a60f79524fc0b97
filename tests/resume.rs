//! Resume: a night killed (SIGKILL) mid-run and rerun completes with images identical to an
//! uninterrupted run and no partial products; a rerun with nothing changed recomputes
//! nothing; a changed imaging option recomputes every image; a group that keeps failing is
//! retried up to output.max_retries and then reported as not retried.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn fits_files(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "fits"))
        .collect();
    v.sort();
    v
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn killed_night_resumes_to_identical_products() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = small_config(d);
    c.simulate.n_groups = 6;
    c.simulate.noise.enabled = true;
    c.simulate.sources = vec![source(0.1, 0.1, 2.0)];
    c.imaging.npix = 512;
    c.imaging.cell_arcsec = 10.0;
    c.imaging.niter = 400;
    contimg::simulate::run(&c, &c.input.dir).unwrap();
    // The uninterrupted reference.
    c.output.dir = d.join("ref");
    let cfg_ref = d.join("ref.yaml");
    write_config(&c, &cfg_ref);
    let (code, text) = run_bin(&["run", "--config", cfg_ref.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    // The killed run: SIGKILL once the first image is done.
    c.output.dir = d.join("killed");
    let cfg = d.join("killed.yaml");
    write_config(&c, &cfg);
    let mut child = std::process::Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let markers = |out: &Path| {
        std::fs::read_dir(out.join("images"))
            .map(|r| {
                r.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".done.json")
                })
                .count()
            })
            .unwrap_or(0)
    };
    let t0 = std::time::Instant::now();
    while markers(&c.output.dir) == 0 && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done_at_kill = markers(&c.output.dir);
    println!("killed with {done_at_kill} of 6 images done");
    assert!(
        (1..6).contains(&done_at_kill),
        "the kill did not land mid-night ({done_at_kill} images done)"
    );
    assert!(!c.output.dir.join("summary.json").exists());
    // `contimg status` of the killed night: not finished, with how far its ranks got.
    let (code, text) = run_bin(&["status", c.output.dir.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("not finished") && text.contains("converted"),
        "{text}"
    );
    // Rerun: completes, resumes the done images, products identical to the reference.
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    let s = summary(&c.output.dir);
    assert_eq!(s["complete"], true, "{s:#}");
    assert_eq!(
        s["images_resumed"].as_array().unwrap().len(),
        done_at_kill,
        "{s:#}"
    );
    assert_eq!(s["groups_ok"], 6);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(c.output.dir.join("state/night.json")).unwrap(),
    )
    .unwrap();
    let stages: Vec<&str> = state
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages.iter().filter(|s| s.starts_with("done")).count(),
        6,
        "{stages:?}"
    );
    assert_eq!(
        stages.iter().filter(|s| **s == "done (resumed)").count(),
        done_at_kill,
        "{stages:?}"
    );
    let (a, b) = (fits_files(&d.join("ref")), fits_files(&c.output.dir));
    assert_eq!(
        a.iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect::<Vec<_>>(),
        b.iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect::<Vec<_>>()
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            read_fits(x).data,
            read_fits(y).data,
            "{} differs",
            y.display()
        );
    }
    // Nothing partial or temporary left behind.
    let names: Vec<String> = std::fs::read_dir(c.output.dir.join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".fits") || n.ends_with(".done.json")),
        "{names:?}"
    );
    // Nothing changed: nothing recomputed.
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    let s = summary(&c.output.dir);
    assert_eq!(
        (
            s["images"].as_array().unwrap().len(),
            s["images_resumed"].as_array().unwrap().len()
        ),
        (0, 6),
        "{s:#}"
    );
    // A changed imaging option: every image recomputed.
    c.imaging.niter = 300;
    write_config(&c, &cfg);
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        summary(&c.output.dir)["images"].as_array().unwrap().len(),
        6
    );
}

#[test]
fn failing_group_is_retried_then_retired() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = small_config(d);
    c.simulate.n_groups = 2;
    c.output.max_retries = 2;
    c.imaging.niter = 0;
    // A sky to image (an all-zero group is all flagged, and fails).
    c.simulate.sources = vec![source(0.1, 0.1, 2.0)];
    contimg::simulate::run(&c, &c.input.dir).unwrap();
    let cfg = d.join("c.yaml");
    write_config(&c, &cfg);
    // Shift the last integration time of one subband of the first group: discovery groups it
    // (by its first time), conversion then fails the group (subbands disagree on times).
    let mut files: Vec<PathBuf> = std::fs::read_dir(&c.input.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .collect();
    files.sort();
    {
        let f = hdf5::File::open_rw(&files[1]).unwrap();
        let ds = f.dataset("Header/time_array").unwrap();
        let mut t: Vec<f64> = ds.read_raw().unwrap();
        let n = t.len();
        t[n - 1] += 1.0 / 86400.0;
        ds.write_raw(&t).unwrap();
    }
    for attempt in 1..=3 {
        let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
        assert_eq!(code, 3, "attempt {attempt}: {text}");
        let s = summary(&c.output.dir);
        let skipped = s["groups_skipped"].to_string();
        let failed = s["groups_failed"].to_string();
        if attempt <= 2 {
            assert!(!skipped.contains("not retried"), "attempt {attempt}: {s:#}");
        } else {
            assert!(
                skipped.contains("failed 2 times, not retried"),
                "attempt {attempt}: {s:#}"
            );
            assert_eq!(failed, "[]");
        }
        assert_eq!(
            s["groups_ok"], 1,
            "the good group counts every time (done or resumed)"
        );
        let state = std::fs::read_to_string(c.output.dir.join("state/night.json")).unwrap();
        let want = if attempt <= 2 {
            format!("\"attempts\": {attempt}")
        } else {
            "\"retired\"".to_string()
        };
        assert!(state.contains(&want), "attempt {attempt}: {state}");
    }
}
