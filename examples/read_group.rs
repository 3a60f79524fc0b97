//! Times reading one subband group into memory (headers, data, scatter into the group layout):
//!   cargo run --release --example read_group -- [--library] FILE...
//! `--library` reads every dataset through the HDF5 library (the old path). `--again` then
//! reads the group a second time into the first read's buffers (as a run of same-shaped
//! groups can: no fresh memory to fault in) and prints that time too. Used by
//! benches/read_group.sh.

use contimg::core::GroupVis;
use contimg::uvh5::group::{load_group_reusing, load_group_with, ReadPath};
use contimg::uvh5::DataRoutes;
use contimg::uvh5::Route;
use rayon::prelude::*;
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
        eprintln!("usage: read_group [--library] [--again] FILE...");
        std::process::exit(2);
    }
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let report = |label: &str, dt: f64, g: &GroupVis, routes: &[DataRoutes]| {
        let direct = routes
            .iter()
            .flat_map(|r| r.all())
            .filter(|r| matches!(r, Route::Direct { .. }))
            .count();
        // In parallel: a serial sum of 171 M half floats would add ~0.4 s to the process's wall.
        let wsum: f64 = g.weight.par_iter().map(|&w| g.weight.value(w) as f64).sum();
        println!(
            "{dt:.3} s{label}: {} files, {} samples ({how:?}; {direct} of {} datasets direct; weight sum {wsum:.0})",
            files.len(),
            g.vis.len(),
            3 * routes.len()
        );
    };
    let t = Instant::now();
    let g = match load_group_with(&refs, how) {
        Ok((g, routes)) => {
            report("", t.elapsed().as_secs_f64(), &g, &routes);
            g
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    if args.iter().any(|a| a == "--again") {
        let t = Instant::now();
        match load_group_reusing(&refs, how, g) {
            Ok((g, routes)) => report(
                " (again, reusing the buffers)",
                t.elapsed().as_secs_f64(),
                &g,
                &routes,
            ),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }
}
