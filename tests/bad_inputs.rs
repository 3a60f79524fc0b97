//! A table of bad inputs through `contimg run` on a two-group night: each one gives a clear
//! error naming the file (or the config key), never a panic, and — where it concerns one
//! group — the other group is still imaged and the night exits 3 (finished, incomplete).
//! Caltable cases fail every group (each needs the table) and exit 4 (nothing imaged) with the reason.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// Breaks the setup of a case: (the night directory, the subband file chosen as victim).
type SetupFn = dyn Fn(&Path, &Path);

/// What a case breaks: one subband file of the first group, the config, or the setup.
enum Target {
    File(Box<dyn Fn(&Path)>),
    Config(Box<dyn Fn(&mut String)>),
    Setup(Box<SetupFn>),
    /// Calibration on, with a registry entry (written into the case directory) covering the
    /// night or `days` away, pointing to a caltable made by the closure.
    Caltable {
        days: f64,
        table: Box<dyn Fn(&Path)>,
    },
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

/// Sets `section.key` (a line of the serialised config) to `value`: the config then has the
/// key once, with the bad value (a second key would fail as a duplicate, hiding the check).
fn set(section: &'static str, key: &'static str, value: &'static str) -> Target {
    Target::Config(Box::new(move |c| {
        let mut lines: Vec<String> = c.lines().map(str::to_string).collect();
        let start = lines
            .iter()
            .position(|l| l.trim() == format!("{section}:"))
            .unwrap_or_else(|| panic!("no section {section}"));
        let k = (start + 1..lines.len())
            .find(|&i| lines[i].trim_start().starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {section}.{key}"));
        let indent = lines[k].len() - lines[k].trim_start().len();
        lines[k] = format!("{}{key}: {value}", " ".repeat(indent));
        *c = lines.join("\n") + "\n";
    }))
}

fn edit_nsamples(path: &Path, value: f32) {
    let file = hdf5::File::open_rw(path).unwrap();
    let ds = file.dataset("Data/nsamples").unwrap();
    let mut v: Vec<f32> = ds.read_raw().unwrap();
    let n = v.len();
    v[..n / 2].fill(value);
    ds.write_raw(&v).unwrap();
}

/// A calibration table of the night's time but of antennas `ants`, with `nchan` channels.
fn caltable(p: &Path, ants: Vec<u32>, nchan: usize) {
    let jd = 2461113.7084;
    let freq_hz: Vec<f64> = (0..nchan).map(|k| 1.3e9 + k as f64 * 1e6).collect();
    let n = ants.len() * nchan * 2;
    let na = ants.len();
    let t = contimg::calibrate::table::CalTable {
        gains: vec![num_complex::Complex64::new(1.0, 0.0); n],
        flags: vec![false; n],
        snr: vec![100.0; n],
        antenna_names: ants,
        time_jd: vec![jd],
        freq_hz,
        refant: 0,
        calibrator: "0542+498".into(),
        provenance: "{}".into(),
        reasons: vec![0; n],
        delay_ns: vec![0.0; na * 2],
        delay_ref_hz: 0.0,
        solve_info: String::new(),
    };
    t.write(p).unwrap();
}

fn cases() -> Vec<Case> {
    use num_complex::Complex32;
    vec![
        Case {
            name: "truncated HDF5",
            target: file(|p| {
                let n = std::fs::metadata(p).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(n / 3)
                    .unwrap();
            }),
            code: 3,
            needle: "unreadable",
        },
        Case {
            name: "garbage bytes",
            target: file(|p| std::fs::write(p, b"\x89HDF\r\n junk").unwrap()),
            code: 3,
            needle: "cannot open as HDF5",
        },
        Case {
            name: "empty file",
            target: file(|p| std::fs::write(p, b"").unwrap()),
            code: 3,
            needle: "cannot open as HDF5",
        },
        Case {
            name: "missing Data/visdata",
            target: file(|p| rewrite(p, "Data/visdata", |_| {})),
            code: 3,
            needle: "Data/visdata",
        },
        Case {
            name: "Data/flags of the wrong shape",
            target: file(|p| {
                rewrite(p, "Data/flags", |f| {
                    f.new_dataset::<bool>()
                        .shape([5])
                        .create("Data/flags")
                        .unwrap();
                })
            }),
            code: 3,
            needle: "Data/flags",
        },
        Case {
            name: "missing Header/time_array",
            target: file(|p| rewrite(p, "Header/time_array", |_| {})),
            code: 3,
            needle: "time_array",
        },
        Case {
            name: "visdata of the wrong shape",
            target: file(|p| {
                rewrite(p, "Data/visdata", |f| {
                    f.new_dataset::<Complex32>()
                        .shape([3, 4])
                        .create("Data/visdata")
                        .unwrap();
                })
            }),
            code: 3,
            needle: "Data/visdata",
        },
        Case {
            name: "Nblts inconsistent",
            target: file(|p| {
                rewrite(p, "Header/Nblts", |f| {
                    f.new_dataset::<i64>()
                        .shape(())
                        .create("Header/Nblts")
                        .unwrap()
                        .write_scalar(&7i64)
                        .unwrap();
                })
            }),
            code: 3,
            needle: "Nblts",
        },
        Case {
            name: "unknown polarization codes",
            target: file(|p| {
                rewrite(p, "Header/polarization_array", |f| {
                    f.new_dataset::<i64>()
                        .shape([2])
                        .create("Header/polarization_array")
                        .unwrap()
                        .write_raw(&[-1i64, -2])
                        .unwrap();
                })
            }),
            code: 3,
            needle: "polarization",
        },
        Case {
            name: "NaN time",
            target: file(|p| edit_f64(p, "Header/time_array", |v| v[2] = f64::NAN)),
            code: 3,
            needle: "time_array",
        },
        Case {
            name: "mismatched times between subbands",
            target: file(|p| {
                edit_f64(p, "Header/time_array", |v| {
                    let n = v.len();
                    v[n - 1] += 1.0 / 86400.0;
                })
            }),
            code: 3,
            needle: "Header/time_array",
        },
        Case {
            name: "channels of another subband",
            target: file(|p| {
                let mut names: Vec<PathBuf> = std::fs::read_dir(p.parent().unwrap())
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|q| q != p)
                    .collect();
                names.sort();
                let sib = names[0].clone();
                let other: Vec<f64> = hdf5::File::open(&sib)
                    .unwrap()
                    .dataset("Header/freq_array")
                    .unwrap()
                    .read_raw()
                    .unwrap();
                let f = hdf5::File::open_rw(p).unwrap();
                f.dataset("Header/freq_array")
                    .unwrap()
                    .write_raw(&other)
                    .unwrap();
            }),
            code: 3,
            needle: "overlaps",
        },
        Case {
            name: "antenna number not in the antenna table",
            target: file(|p| {
                let f = hdf5::File::open_rw(p).unwrap();
                let d = f.dataset("Header/ant_1_array").unwrap();
                let mut v: Vec<i64> = d.read_raw().unwrap();
                v[0] = 999;
                d.write_raw(&v).unwrap();
            }),
            code: 3,
            needle: "ant_1_array",
        },
        Case {
            name: "all-NaN data",
            target: file(|p| edit_vis(p, Complex32::new(f32::NAN, f32::NAN))),
            code: 0,
            needle: "the whole subband is flagged",
        },
        Case {
            name: "all-zero data",
            target: file(|p| edit_vis(p, Complex32::new(0.0, 0.0))),
            code: 0,
            needle: "the whole subband is flagged",
        },
        Case {
            name: "missing subband",
            target: file(|p| std::fs::remove_file(p).unwrap()),
            code: 3,
            needle: "missing sb0",
        },
        Case {
            name: "duplicate subband",
            target: Target::Setup(Box::new(|night, f| {
                let name = f
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .replacen("T05:00:0", "T05:00:1", 1);
                std::fs::copy(f, night.join(name)).unwrap();
            })),
            code: 3,
            needle: "duplicate subband",
        },
        Case {
            name: "not an HDF5 file among the night's",
            target: Target::Setup(Box::new(|night, _| {
                std::fs::write(night.join("2026-03-14T05:00:00_sb07.hdf5"), b"text").unwrap()
            })),
            code: 3,
            needle: "sb07",
        },
        Case {
            name: "corrupt caltable",
            target: Target::Caltable {
                days: 0.0,
                table: Box::new(|p| std::fs::write(p, b"not a caltable").unwrap()),
            },
            code: 4,
            needle: "bandpass.h5",
        },
        Case {
            name: "caltable out of the time window",
            target: Target::Caltable {
                days: 3.0,
                table: Box::new(|p| std::fs::write(p, b"never read").unwrap()),
            },
            code: 4,
            needle: "no valid calibration within",
        },
        // The hostile battery of issue 19 (defects 1, 5, 7, 8, 10, 11; each failed before).
        Case {
            name: "negative calibration span (defect 1: rank 0 panicked, rank 1 hung)",
            target: set("calibration", "span_minutes", "-10.0"),
            code: 1,
            needle: "calibration.span_minutes",
        },
        Case {
            name: "NaN calibration span",
            target: set("calibration", "span_minutes", ".nan"),
            code: 1,
            needle: "calibration.span_minutes",
        },
        Case {
            name: "zero file-name tolerance (defect 5: duplicate group ids)",
            target: set("input", "filename_tolerance_s", "0.0"),
            code: 0,
            needle: "2 of 2 planned groups imaged into 2 images",
        },
        Case {
            name: "NaN antenna position (defect 7)",
            target: file(|p| edit_f64(p, "Header/antenna_positions", |v| v[4] = f64::NAN)),
            code: 3,
            needle: "Header/antenna_positions",
        },
        Case {
            name: "microsecond gain interval (defect 8: 86 GB allocation)",
            target: set("calibration", "gain_interval_s", "1.0e-6"),
            code: 1,
            needle: "calibration.gain_interval_s",
        },
        Case {
            name: "image larger than memory (defect 8: 12.8 GB allocation)",
            target: Target::Config(Box::new(|c| {
                *c = c
                    .replace("  npix: 256", "  npix: 60000")
                    .replace("  cell_arcsec: 20.0", "  cell_arcsec: 1.0");
            })),
            code: 1,
            needle: "imaging.npix",
        },
        Case {
            name: "NaN robust (defect 10)",
            target: set("imaging", "robust", ".nan"),
            code: 1,
            needle: "imaging.robust",
        },
        Case {
            name: "absurd nsamples (defect 10)",
            target: file(|p| edit_nsamples(p, 1e30)),
            code: 0,
            needle: "Data/nsamples are negative, not finite or above",
        },
        Case {
            name: "negative nsamples (defect 10)",
            target: file(|p| edit_nsamples(p, -1.0)),
            code: 0,
            needle: "Data/nsamples are negative, not finite or above",
        },
        Case {
            name: "every channel flagged (defect 10: groups reported ok)",
            target: set("flagging", "channel_ranges_mhz", "[[0.0, 100000.0]]"),
            code: 4,
            needle: "every visibility is flagged",
        },
        Case {
            name: "caltable of foreign antennas (defect 10)",
            target: Target::Caltable {
                days: 0.0,
                table: Box::new(|p| caltable(p, vec![201, 202, 203], 4)),
            },
            code: 4,
            needle: "shares no antenna with the data",
        },
        Case {
            name: "caltable with zero channels (defect 6: every rank panicked)",
            target: Target::Caltable {
                days: 0.0,
                table: Box::new(|p| caltable(p, vec![1, 2, 3], 0)),
            },
            code: 4,
            needle: "0 channels",
        },
        Case {
            name: "registered caltable deleted (defect 3)",
            target: Target::Caltable {
                days: 0.0,
                table: Box::new(|_| {}),
            },
            code: 4,
            needle: "is missing: entry ignored",
        },
        Case {
            name: "stray sb02 beside a 2-subband group (defect 11)",
            target: Target::Setup(Box::new(|night, f| {
                let name = f
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .replace("_sb01", "_sb02");
                std::fs::copy(f, night.join(name)).unwrap();
            })),
            code: 0,
            needle: "beyond input.n_subbands",
        },
        Case {
            name: "zero SumThreshold iterations (defect 11)",
            target: set("sumthreshold", "iterations", "0"),
            code: 1,
            needle: "flagging.sumthreshold.iterations",
        },
        Case {
            name: "negative background width (defect 11)",
            target: set("sumthreshold", "background_sigma_s", "-40.0"),
            code: 1,
            needle: "flagging.sumthreshold.background_sigma_s",
        },
        Case {
            name: "NaN clip threshold (defect 11)",
            target: set("flagging", "clip_sigma", ".nan"),
            code: 1,
            needle: "flagging.clip_sigma",
        },
        Case {
            name: "reversed channel range (defect 11)",
            target: set("flagging", "channel_ranges_mhz", "[[1500.0, 1400.0]]"),
            code: 1,
            needle: "flagging.channel_ranges_mhz",
        },
        Case {
            name: "bad YAML",
            target: Target::Config(Box::new(|c| c.push_str("\nimaging: [unclosed\n"))),
            code: 1,
            needle: "c.yaml",
        },
        Case {
            name: "unknown config key",
            target: Target::Config(Box::new(|c| {
                *c = c.replace("imaging:", "imaging:\n  npixx: 3")
            })),
            code: 1,
            needle: "npixx",
        },
        Case {
            name: "invalid config value",
            target: Target::Config(Box::new(|c| {
                *c = c.replace("imaging:", "imaging:\n  taper_gaussian_arcsec: -3.0")
            })),
            code: 1,
            needle: "taper_gaussian_arcsec",
        },
        Case {
            name: "unwritable output (a file where the directory goes)",
            target: Target::Setup(Box::new(|night, _| {
                std::fs::write(night.parent().unwrap().join("out"), b"x").unwrap()
            })),
            code: 1,
            needle: "cannot create output",
        },
        Case {
            name: "missing input directory",
            target: Target::Config(Box::new(|c| *c = c.replace("/night", "/no-such-night"))),
            code: 1,
            needle: "no-such-night",
        },
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
    let (code, out) = run_bin(
        &["run", "--config", {
            write_config(&c, &base.join("c.yaml"));
            base.join("c.yaml").to_str().unwrap()
        }],
        &[],
    );
    assert_eq!(code, 0, "the untouched night: {out}");
    let cases = cases();
    assert!(cases.len() >= 20);
    for (k, case) in cases.iter().enumerate() {
        let d = dir.path().join(format!("case{k}"));
        let night = d.join("night");
        std::fs::create_dir_all(&night).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&c.input.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
            .collect();
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
            // Only the registered table may calibrate: no calibrator qualifies for the night's
            // own solve (which, degrading per antenna, now succeeds on this small night).
            cfg_c.calibration.min_flux_jy = 1e9;
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
        assert!(
            all.contains(case.needle),
            "{ctx}\nexpected {:?}",
            case.needle
        );
        if matches!(case.target, Target::Caltable { days, .. } if days == 0.0) {
            assert!(
                all.contains(&d.join("bandpass.h5").display().to_string()),
                "{ctx}\nthe error does not name the caltable"
            );
        }
        if let Target::File(_) = case.target {
            let name = victim.file_name().unwrap().to_string_lossy().to_string();
            // (A deleted file is reported by its group and missing subband instead.)
            if victim.exists() {
                assert!(all.contains(&name), "{ctx}\nthe error does not name {name}");
            }
        }
        if case.code != 1 && case.code != 4 {
            let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
            assert!(
                s["groups_ok"].as_u64().unwrap() >= 1,
                "{ctx}: the good group was not imaged"
            );
        }
        println!("ok: {}", case.name);
    }
}
