//! The flagger at default settings on the independent pyuvdata-written groups
//! (tests/data/independent/seed*/, written by tests/reference/make_independent_group.py,
//! with their truth mask truth_rfi.h5): recall of the injected RFI samples and the
//! false-flag rate on the clean cross-correlation samples (dropped samples left out of both).

use contimg::config::FlagConfig;
use contimg::uvh5::group::load_group;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> Vec<PathBuf> {
    // CONTIMG_INDEPENDENT_DIR: another copy of the fixtures (e.g. a generator's worktree).
    let root = std::env::var_os("CONTIMG_INDEPENDENT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/independent"));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("truth_rfi.h5").exists())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// (recall, false-flag rate, recall per kind name) with the flagging settings `fc`.
fn measure(dir: &Path, fc: &FlagConfig) -> (f64, f64, Vec<(String, f64)>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .collect();
    files.sort();
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut g = load_group(&paths).unwrap();
    let summary = contimg::flag::run(&mut g, fc);
    let f = hdf5::File::open(dir.join("truth_rfi.h5")).unwrap();
    let rfi = f.dataset("rfi").unwrap();
    let shape = rfi.shape();
    let (nt, nbl, nf, np) = (shape[0], shape[1], shape[2], shape[3]);
    assert_eq!(
        (nt, nf, np),
        (g.n_times(), g.n_chan(), g.npol),
        "{}",
        dir.display()
    );
    let rfi: Vec<u8> = rfi.read_raw().unwrap();
    let dropped: Vec<u8> = f.dataset("dropped").unwrap().read_raw().unwrap();
    let kind: Vec<u8> = f.dataset("kind").unwrap().read_raw().unwrap();
    let a1: Vec<i64> = f.dataset("ant_1").unwrap().read_raw().unwrap();
    let a2: Vec<i64> = f.dataset("ant_2").unwrap().read_raw().unwrap();
    let row: HashMap<(usize, usize), usize> = (0..nbl)
        .map(|k| ((a1[k] as usize, a2[k] as usize), k))
        .collect();
    let (mut hit, mut n_rfi, mut false_flags, mut n_clean) = (0usize, 0usize, 0usize, 0usize);
    let mut per_kind: HashMap<u8, (usize, usize)> = HashMap::new();
    for (b, &(p1, p2)) in g.baselines.iter().enumerate() {
        if p1 == p2 {
            continue;
        }
        let k = row[&(p1, p2)];
        for t in 0..nt {
            for c in 0..nf {
                for p in 0..np {
                    let i = ((t * nbl + k) * nf + c) * np + p;
                    if dropped[i] != 0 {
                        continue;
                    }
                    let flagged = g.weight[g.index(b, t, c, p)] == contimg::core::FLAGGED;
                    if rfi[i] != 0 {
                        n_rfi += 1;
                        hit += flagged as usize;
                        let e = per_kind.entry(kind[i]).or_default();
                        e.0 += flagged as usize;
                        e.1 += 1;
                    } else {
                        n_clean += 1;
                        false_flags += flagged as usize;
                    }
                }
            }
        }
    }
    // The generator's KIND_NAMES (make_independent_group.py).
    let names = [
        "none",
        "persistent",
        "intermittent",
        "broadband",
        "ramp",
        "garbage",
    ];
    let mut kinds: Vec<(String, f64)> = per_kind
        .iter()
        .map(|(&k, &(h, n))| {
            (
                names
                    .get(k as usize)
                    .map(|s| s.to_string())
                    .unwrap_or(format!("kind {k}")),
                h as f64 / n as f64,
            )
        })
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    let recall = hit as f64 / n_rfi.max(1) as f64;
    let false_rate = false_flags as f64 / n_clean.max(1) as f64;
    println!("{} (array pass {}): recall {recall:.4} ({hit}/{n_rfi}), false-flag rate {false_rate:.5} ({false_flags}/{n_clean}), per kind {kinds:?}; by step {:?}", dir.display(), fc.array.enabled, summary.by_step);
    (recall, false_rate, kinds)
}

/// The fixtures with a coarse band (seed4: 2 channels per subband), where both passes do
/// worse than on the 6-channel subbands of seed1/seed2.
fn coarse(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n == "seed4")
}

/// At the default settings. Measured (2026-12-02): recall 1.000 on seed1, seed2 and seed4
/// (every family: persistent, intermittent, broadband, ramp), false flags 0.005 %
/// (42 / 779 319) on seed1, 0.011 % (86 / 782 347) on seed2, 0.033 % (77 / 229 881) on
/// seed4 (32 channels of 5.9 MHz). The full-size group of the same generator (seed 3,
/// 96 antennas, 768 channels; not in the repository, see benches/README.md): recall 1.000 at
/// 0.001 %. The goal is recall >= 0.98 at <= 0.2 %.
#[test]
fn defaults_on_the_independent_groups() {
    let dirs = fixtures();
    assert!(
        dirs.len() >= 2,
        "the independent fixtures tests/data/independent/seed*/ are missing"
    );
    for dir in dirs {
        let (recall, false_rate, kinds) = measure(&dir, &FlagConfig::default());
        let max_false = if coarse(&dir) { 0.001 } else { 0.0004 };
        assert!(recall >= 0.99, "{}: recall {recall}", dir.display());
        assert!(
            false_rate <= max_false,
            "{}: false-flag rate {false_rate}",
            dir.display()
        );
        for (k, r) in kinds {
            assert!(r >= 0.98, "{}: recall of {k} {r}", dir.display());
        }
    }
}

/// The per-baseline passes alone (the array pass off): what the array pass adds. Measured
/// (2026-12-02): seed1 recall 0.765 (persistent 0.932, intermittent 0.644, broadband 0.762,
/// ramp 0.477), false flags 0.59 %; seed2 0.704 (persistent 0.942, intermittent 0.399,
/// broadband 0.721, ramp 0.367), 0.55 %; seed4 0.668 at 0.64 %. Beside the bright
/// calibrator (15-45 sigma per visibility here) RFI with a random phase per baseline changes
/// |V| by about R cos(phase difference), lowering it on half of the baselines, and one
/// baseline sees bursts at only 2-7 sigma; the false flags sit beside strong RFI whose
/// backgrounds it dragged. Bounds within ~3x of the measured values.
#[test]
fn per_baseline_passes_alone_on_the_independent_groups() {
    let dirs = fixtures();
    assert!(
        dirs.len() >= 2,
        "the independent fixtures tests/data/independent/seed*/ are missing"
    );
    let mut fc = FlagConfig::default();
    fc.array.enabled = false;
    for dir in dirs {
        let (recall, false_rate, _) = measure(&dir, &fc);
        let min_recall = if coarse(&dir) { 0.45 } else { 0.6 };
        assert!(recall >= min_recall, "{}: recall {recall}", dir.display());
        assert!(
            false_rate <= 0.015,
            "{}: false-flag rate {false_rate}",
            dir.display()
        );
        assert!(recall < 0.9, "{}: recall {recall}", dir.display());
    }
}
