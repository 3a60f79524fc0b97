//! A table of bad inputs through `contimg run` on a two-group night: each one gives a clear
//! error naming the file (or the config key), never a panic, and — where it concerns one
//! group — the other group is still imaged and the night exits 3 (finished, incomplete).
//! Caltable cases fail every group (each needs the table) and exit 4 (nothing imaged) with the reason.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// What a case breaks: one subband file of the first group, the config, or the setup.
enum Target {
    File(Box<dyn Fn(&Path)>),
    Config(Box<dyn Fn(&mut String)>),
    Setup(Box<dyn Fn(&Path, &Path)>),
    /// Calibration on, with a registry entry (written into the case directory) covering the
    /// night or `days` away, pointing to a caltable made by the closure.
    Caltable { days: f64, table: Box<dyn Fn(&Path)> },
}

struct Case {
    name: &'static str,
    target: Target,
    /// Expected exit code: 3 (night incomplete, the other group imaged), 0 (the group is
    /// imaged from its other subbands, with a warning naming the file) or 1 (fatal).
    code: i32,
    /// Text the output must contain (the file's name is checked separately for file cases).
    needle: &'static str,
}

fn rewrite(path: &Path, dataset: &str, f: impl FnOnce(&hdf5::File)) {
    let file = hdf5::File::open_rw(path).unwrap();
    if file.link_exists(dataset) {
        file.unlink(dataset).unwrap();
    }
    f(&file);
}

fn edit_f64(path: &Path, dataset: &str, f: impl FnOnce(&mut Vec<f64>)) {
    let file = hdf5::File::open_rw(path).unwrap();
    let ds = file.dataset(dataset).unwrap();
    let mut v: Vec<f64> = ds.read_raw().unwrap();
    f(&mut v);
    ds.write_raw(&v).unwrap();
}

fn edit_vis(path: &Path, value: num_complex::Complex32) {
    let file = hdf5::File::open_rw(path).unwrap();
    let ds = file.dataset("Data/visdata").unwrap();
    let v: Vec<num_complex::Complex32> = ds.read_raw().unwrap();
    ds.write_raw(&vec![value; v.len()]).unwrap();
}

fn file(f: impl Fn(&Path) + 'static) -> Target {
    Target::File(Box::new(f))
}

fn cases() -> Vec<Case> {
    use num_complex::Complex32;
    vec![
        Case { name: "truncated HDF5", target: file(|p| { let n = std::fs::metadata(p).unwrap().len(); std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(n / 3).unwrap(); }), code: 3, needle: "unreadable" },
        Case { name: "garbage bytes", target: file(|p| std::fs::write(p, b"\x89HDF\r\n junk").unwrap()), code: 3, needle: "cannot open as HDF5" },
        Case { name: "empty file", target: file(|p| std::fs::write(p, b"").unwrap()), code: 3, needle: "cannot open as HDF5" },
        Case { name: "missing Data/visdata", target: file(|p| rewrite(p, "Data/visdata", |_| {})), code: 3, needle: "Data/visdata" },
        Case { name: "Data/flags of the wrong shape", target: file(|p| rewrite(p, "Data/flags", |f| { f.new_dataset::<bool>().shape([5]).create("Data/flags").unwrap(); })), code: 3, needle: "Data/flags" },
        Case { name: "missing Header/time_array", target: file(|p| rewrite(p, "Header/time_array", |_| {})), code: 3, needle: "time_array" },
        Case { name: "visdata of the wrong shape", target: file(|p| rewrite(p, "Data/visdata", |f| { f.new_dataset::<Complex32>().shape([3, 4]).create("Data/visdata").unwrap(); })), code: 3, needle: "Data/visdata" },
        Case { name: "Nblts inconsistent", target: file(|p| rewrite(p, "Header/Nblts", |f| { f.new_dataset::<i64>().shape(()).create("Header/Nblts").unwrap().write_scalar(&7i64).unwrap(); })), code: 3, needle: "Nblts" },
        Case { name: "unknown polarization codes", target: file(|p| rewrite(p, "Header/polarization_array", |f| { f.new_dataset::<i64>().shape([2]).create("Header/polarization_array").unwrap().write_raw(&[-1i64, -2]).unwrap(); })), code: 3, needle: "polarization" },
        Case { name: "NaN time", target: file(|p| edit_f64(p, "Header/time_array", |v| v[2] = f64::NAN)), code: 3, needle: "time_array" },
        Case { name: "mismatched times between subbands", target: file(|p| edit_f64(p, "Header/time_array", |v| { let n = v.len(); v[n - 1] += 1.0 / 86400.0; })), code: 3, needle: "Header/time_array" },
        Case { name: "channels of another subband", target: file(|p| { let mut names: Vec<PathBuf> = std::fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().path()).filter(|q| q != p).collect(); names.sort(); let sib = names[0].clone(); let other: Vec<f64> = hdf5::File::open(&sib).unwrap().dataset("Header/freq_array").unwrap().read_raw().unwrap(); let f = hdf5::File::open_rw(p).unwrap(); f.dataset("Header/freq_array").unwrap().write_raw(&other).unwrap(); }), code: 3, needle: "overlaps" },
        Case { name: "antenna number not in the antenna table", target: file(|p| { let f = hdf5::File::open_rw(p).unwrap(); let d = f.dataset("Header/ant_1_array").unwrap(); let mut v: Vec<i64> = d.read_raw().unwrap(); v[0] = 999; d.write_raw(&v).unwrap(); }), code: 3, needle: "ant_1_array" },
        Case { name: "all-NaN data", target: file(|p| edit_vis(p, Complex32::new(f32::NAN, f32::NAN))), code: 0, needle: "the whole subband is flagged" },
        Case { name: "all-zero data", target: file(|p| edit_vis(p, Complex32::new(0.0, 0.0))), code: 0, needle: "the whole subband is flagged" },
        Case { name: "missing subband", target: file(|p| std::fs::remove_file(p).unwrap()), code: 3, needle: "missing sb0" },
        Case { name: "duplicate subband", target: Target::Setup(Box::new(|night, f| { let name = f.file_name().unwrap().to_string_lossy().replacen("T05:00:0", "T05:00:1", 1); std::fs::copy(f, night.join(name)).unwrap(); })), code: 3, needle: "duplicate subband" },
        Case { name: "not an HDF5 file among the night's", target: Target::Setup(Box::new(|night, _| std::fs::write(night.join("2026-03-14T05:00:00_sb07.hdf5"), b"text").unwrap())), code: 3, needle: "sb07" },
        Case { name: "corrupt caltable", target: Target::Caltable { days: 0.0, table: Box::new(|p| std::fs::write(p, b"not a caltable").unwrap()) }, code: 4, needle: "bandpass.h5" },
        Case { name: "caltable out of the time window", target: Target::Caltable { days: 3.0, table: Box::new(|p| std::fs::write(p, b"never read").unwrap()) }, code: 4, needle: "no valid calibration within" },
        Case { name: "bad YAML", target: Target::Config(Box::new(|c| c.push_str("\nimaging: [unclosed\n"))), code: 1, needle: "c.yaml" },
        Case { name: "unknown config key", target: Target::Config(Box::new(|c| *c = c.replace("imaging:", "imaging:\n  npixx: 3"))), code: 1, needle: "npixx" },
        Case { name: "invalid config value", target: Target::Config(Box::new(|c| *c = c.replace("imaging:", "imaging:\n  taper_gaussian_arcsec: -3.0"))), code: 1, needle: "taper_gaussian_arcsec" },
        Case { name: "unwritable output (a file where the directory goes)", target: Target::Setup(Box::new(|night, _| std::fs::write(night.parent().unwrap().join("out"), b"x").unwrap())), code: 1, needle: "cannot create output" },
        Case { name: "missing input directory", target: Target::Config(Box::new(|c| *c = c.replace("/night", "/no-such-night"))), code: 1, needle: "no-such-night" },
    ]
}

#[test]
fn bad_inputs_give_clear_errors_and_the_night_completes() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("template");
    let mut c = small_config(&base);
    c.simulate.n_groups = 2;
    c.imaging.niter = 0;
    c.simulate.noise.enabled = true; // an empty sky without noise is all zeros: all flagged
    c.simulate.sources = vec![source(0.1, 0.1, 2.0)];
    contimg::simulate::run(&c, &c.input.dir).unwrap();
    // The control: the untouched night is complete.
    let (code, out) = run_bin(&["run", "--config", { write_config(&c, &base.join("c.yaml")); base.join("c.yaml").to_str().unwrap() }], &[]);
    assert_eq!(code, 0, "the untouched night: {out}");
    let cases = cases();
    assert!(cases.len() >= 20);
    for (k, case) in cases.iter().enumerate() {
        let d = dir.path().join(format!("case{k}"));
        let night = d.join("night");
        std::fs::create_dir_all(&night).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&c.input.dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "hdf5")).collect();
        files.sort();
        for f in &files {
            std::fs::copy(f, night.join(f.file_name().unwrap())).unwrap();
        }
        let victim = night.join(files[1].file_name().unwrap());
        let mut cfg_c = c.clone();
        cfg_c.input.dir = night.clone();
        cfg_c.output.dir = d.join("out");
        let cfg = d.join("c.yaml");
        if let Target::Caltable { days, table } = &case.target {
            let t = d.join("bandpass.h5");
            table(&t);
            let jd = 2461113.7084 + days;
            let entry = serde_json::json!({"path": t, "calibrator": "0542+498", "start_jd": jd - 0.01, "end_jd": jd + 0.01, "centre_jd": jd, "valid": true});
            std::fs::write(d.join("registry.jsonl"), format!("{entry}\n")).unwrap();
            cfg_c.calibration.enabled = true;
            cfg_c.calibration.registry = Some(d.join("registry.jsonl"));
        }
        let mut text = serde_yaml_ng::to_string(&cfg_c).unwrap();
        match &case.target {
            Target::File(f) => f(&victim),
            Target::Config(f) => f(&mut text),
            Target::Setup(f) => f(&night, &victim),
            Target::Caltable { .. } => {}
        }
        std::fs::write(&cfg, &text).unwrap();
        let (code, out) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
        let summary = std::fs::read_to_string(d.join("out/summary.json")).unwrap_or_default();
        let all = format!("{out}\n{summary}");
        let ctx = format!("case {k} ({}): exit {code}\n{out}\n{summary}", case.name);
        assert!(!all.contains("panicked"), "{ctx}");
        assert_eq!(code, case.code, "{ctx}");
        assert!(all.contains(case.needle), "{ctx}\nexpected {:?}", case.needle);
        if matches!(case.target, Target::Caltable { days, .. } if days == 0.0) {
            assert!(all.contains(&d.join("bandpass.h5").display().to_string()), "{ctx}\nthe error does not name the caltable");
        }
        if let Target::File(_) = case.target {
            let name = victim.file_name().unwrap().to_string_lossy().to_string();
            // (A deleted file is reported by its group and missing subband instead.)
            if victim.exists() {
                assert!(all.contains(&name), "{ctx}\nthe error does not name {name}");
            }
        }
        if case.code != 1 && !matches!(case.target, Target::Caltable { .. }) {
            let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
            assert!(s["groups_ok"].as_u64().unwrap() >= 1, "{ctx}: the good group was not imaged");
        }
        println!("ok: {}", case.name);
    }
}
