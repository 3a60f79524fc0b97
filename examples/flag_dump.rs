//! Diagnostics: flags one group (a directory of UVH5 files) with a flagging config and writes
//! the group's visibilities, the flags and the baselines for analysis against a truth mask:
//!   cargo run --release --example flag_dump -- DIR OUT_PREFIX [FLAGGING_YAML]
//! writes OUT_PREFIX.vis (complex64, [baseline][time][channel][pol]), OUT_PREFIX.flags (u8,
//! same layout, 1 = flagged after the stage), OUT_PREFIX.json (baselines, shape, by_step).

use contimg::config::FlagConfig;
use contimg::convert::load_group;
use std::io::Write;
use std::path::{Path, PathBuf};

fn main() {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: flag_dump DIR OUT_PREFIX [FLAGGING_YAML]");
        std::process::exit(2);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args[0])
        .expect("a directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .collect();
    files.sort();
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut g = load_group(&paths).expect("a readable group");
    let cfg: FlagConfig = match args.get(2) {
        Some(p) => serde_yaml_ng::from_str(&std::fs::read_to_string(p).unwrap()).unwrap(),
        None => FlagConfig::default(),
    };
    let vis: Vec<u8> = g
        .vis
        .iter()
        .flat_map(|v| [v.re.to_le_bytes(), v.im.to_le_bytes()].concat())
        .collect();
    let t = std::time::Instant::now();
    let s = contimg::flag::run(&mut g, &cfg);
    let secs = t.elapsed().as_secs_f64();
    let flags: Vec<u8> = g
        .weight
        .iter()
        .map(|&w| (w == contimg::core::FLAGGED) as u8)
        .collect();
    let out = &args[1];
    std::fs::write(format!("{out}.vis"), vis).unwrap();
    std::fs::write(format!("{out}.flags"), flags).unwrap();
    let meta = serde_json::json!({
        "baselines": g.baselines,
        "shape": [g.baselines.len(), g.n_times(), g.n_chan(), g.npol],
        "freqs": g.freqs,
        "by_step": s.by_step,
        "seconds": secs,
    });
    let mut f = std::fs::File::create(format!("{out}.json")).unwrap();
    writeln!(f, "{meta}").unwrap();
    eprintln!(
        "flagged {:.4} in {secs:.2} s; {:?}",
        s.fraction_total, s.by_step
    );
}
