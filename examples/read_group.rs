//! Times reading one subband group into memory (headers, data, scatter into the group layout):
//!   cargo run --release --example read_group -- [--library] FILE...
//! `--library` reads every dataset through the HDF5 library (the old path). Used by
//! benches/read_group.sh.

use contimg::uvh5::group::{load_group_with, ReadPath};
use contimg::uvh5::Route;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let how = if args.iter().any(|a| a == "--library") {
        ReadPath::Library
    } else {
        ReadPath::Auto
    };
    let files: Vec<PathBuf> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .collect();
    if files.is_empty() {
        eprintln!("usage: read_group [--library] FILE...");
        std::process::exit(2);
    }
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let t = Instant::now();
    match load_group_with(&refs, how) {
        Ok((g, routes)) => {
            let dt = t.elapsed().as_secs_f64();
            let direct = routes
                .iter()
                .flat_map(|r| r.all())
                .filter(|r| matches!(r, Route::Direct { .. }))
                .count();
            let wsum: f64 = g.weight.iter().map(|&w| w as f64).sum();
            println!(
                "{:.3} s: {} files, {} samples ({:?}; {direct} of {} datasets direct; weight sum {wsum:.0})",
                dt,
                files.len(),
                g.vis.len(),
                how,
                3 * routes.len()
            );
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
