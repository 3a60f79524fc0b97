//! CPU-time throughput of primitives::wgridder on one DSA-110 subband (the criterion
//! gridding bench's data: 96 antennas, 24 integrations, 48 channels, 2 pols, 1024^2 at
//! 12"), in visibilities per CPU-second: meaningful on a shared, oversubscribed machine
//! where wall-clock benches are not. Run with RAYON_NUM_THREADS=1 for a per-core figure:
//!
//!   RAYON_NUM_THREADS=1 cargo run --release --example wgridder_cpu [reps]
//!
//! FULL=1: a full-size group instead (768 channels, the polarizations combined to one
//! Stokes I sample as the pipeline grids them, 2048^2 at 6", eps 1e-4 only; ~2 GB).
//! BUDGET_MIB=n: the w-plane budget (`Options::plane_budget_bytes`) in MiB. ONLY=dirty (or
//! dirty+psf, degrid): that one only. EPS=1e-3,1e-2: those epsilons instead.

#[path = "../benches/common/mod.rs"]
mod common;

use contimg::imaging::rephase_geometry;
use contimg::primitives::iers::EarthOrientation;
use contimg::primitives::wgridder;
use num_complex::Complex32;

/// (user + system CPU seconds, wall seconds) of f.
fn cpu_time<R>(f: impl FnOnce() -> R) -> (f64, f64, R) {
    let usage = || {
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes the struct it is given.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        let t = |x: libc::timeval| x.tv_sec as f64 + x.tv_usec as f64 * 1e-6;
        t(u.ru_utime) + t(u.ru_stime)
    };
    let (c0, w0) = (usage(), std::time::Instant::now());
    let r = f();
    (usage() - c0, w0.elapsed().as_secs_f64(), r)
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let full = std::env::var("FULL").is_ok_and(|v| v == "1");
    let (mut g, centre) = common::dsa110_group(if full { 768 } else { 48 });
    let mut weight = g.weight.to_f32_vec();
    if full {
        // Stokes I samples, as the pipeline holds them for imaging.
        g.vis = g.vis.chunks_exact(2).map(|p| (p[0] + p[1]) * 0.5).collect();
        weight = weight.chunks_exact(2).map(|w| w[0] + w[1]).collect();
        g.npol = 1;
    }
    let (npix, cell) = if full { (2048, 6.0f64) } else { (1024, 12.0) };
    let epsilons: Vec<f64> = match std::env::var("EPS") {
        Ok(v) => v.split(',').filter_map(|e| e.parse().ok()).collect(),
        Err(_) if full => vec![1e-4],
        Err(_) => vec![1e-4, 1e-6],
    };
    let (uvw, dw) = rephase_geometry(&g, centre, &EarthOrientation::none());
    let nt = g.times_jd.len();
    let use_row: Vec<bool> = (0..uvw.len())
        .map(|r| g.baselines[r / nt].0 != g.baselines[r / nt].1)
        .collect();
    // Correlations (both polarizations, as ducc0's figure counts them).
    let nvis = use_row.iter().filter(|&&u| u).count() * g.freqs.len() * 2;
    println!(
        "{} visibilities (cross-correlations x channels x pols), {} rayon threads",
        nvis,
        rayon::current_num_threads()
    );
    for &eps in &epsilons {
        let mut opt = wgridder::Options::new(npix, (cell / 3600.0).to_radians(), eps);
        opt.npol = g.npol;
        if let Some(mib) = std::env::var("BUDGET_MIB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        {
            opt.plane_budget_bytes = mib << 20;
        }
        opt.row_mask = Some(&use_row);
        opt.row_delay_m = Some(&dw);
        let mut model = vec![0.0; npix * npix];
        for k in 0..40 {
            model[(200 + 15 * k) * npix + 180 + 16 * k] = 1.0 + k as f64 * 0.1;
        }
        let mut out = vec![Complex32::new(0.0, 0.0); uvw.len() * g.freqs.len()];
        let only = std::env::var("ONLY").ok();
        for (name, psf) in [("dirty", false), ("dirty+psf", true), ("degrid", false)] {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let mut best = (f64::INFINITY, 0.0);
            let mut choice = None;
            for _ in 0..reps {
                let (cpu, wall, c) = cpu_time(|| {
                    if name == "degrid" {
                        wgridder::dirty2vis(&uvw, &g.freqs, &model, &opt, &mut out).unwrap()
                    } else {
                        let want = wgridder::Want {
                            dirty: true,
                            psf,
                            ..Default::default()
                        };
                        wgridder::vis2dirty(&uvw, &g.freqs, &g.vis, &weight, &opt, want)
                            .unwrap()
                            .1
                    }
                });
                if cpu < best.0 {
                    best = (cpu, wall);
                }
                choice = c;
            }
            println!(
                "eps {eps:e} {name:>9}: {:.2} CPU s ({:.2} s wall) -> {:.2} M vis per CPU-second; {:?}",
                best.0,
                best.1,
                nvis as f64 / best.0 / 1e6,
                choice
            );
        }
    }
}
