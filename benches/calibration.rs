//! The calibration solve: StefCal on the combined sufficient statistics of one solution
//! cell (one channel and polarization) for the full array (96 antennas, 4560 baselines),
//! the unit of work of which a night's bandpass solves 768 x 2; a whole night's solve
//! (model prediction, accumulation of the sums, bandpass and gains) on one subband of a
//! calibrator group and on a whole one (on a GPU too, with the `gpu` feature and a
//! device); and a table applied to a full-size group, per polarization or while
//! Stokes I is formed.

use contimg::calibrate::solve::{solve_cell, CellStats, SolveParams};
use criterion::{criterion_group, criterion_main, Criterion};
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

fn bench(c: &mut Criterion) {
    let n_ant = 96;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let truth: Vec<Complex64> = (0..n_ant)
        .map(|_| Complex64::from_polar(rng.random_range(0.8..1.2), rng.random_range(-3.0..3.0)))
        .collect();
    let mut bl = Vec::new();
    for a in 0..n_ant {
        for b in a + 1..n_ant {
            bl.push((a, b));
        }
    }
    let noise = Normal::new(0.0, 0.3).unwrap();
    let mut s = CellStats::new(bl.len());
    for (k, &(a, b)) in bl.iter().enumerate() {
        for t in 0..72 {
            let m = Complex64::from_polar(1.0, 0.01 * (k * t) as f64);
            let v = truth[a] * truth[b].conj() * m
                + Complex64::new(noise.sample(&mut rng), noise.sample(&mut rng));
            s.add(k, 1.0, v, m);
        }
    }
    let p = SolveParams {
        max_iter: 200,
        tolerance: 1e-10,
        noise_tolerance: 0.02,
        outlier_sigma: 6.0,
        min_baselines: 4,
        min_snr: 3.0,
    };
    c.bench_function("stefcal_cell_96_antennas", |b| {
        b.iter(|| solve_cell(&s, &bl, n_ant, &[0], &p).iterations)
    });
}

mod common;

/// A calibrator group of `nchan` channels (the 20 Jy calibrator through random antenna
/// gains, plus the group's random values as noise: |n| <= 1.4 Jy per sample), its plan and
/// the solve's settings.
fn calibrator_night(
    nchan: usize,
) -> (
    contimg::core::GroupVis,
    contimg::calibrate::CalPlan,
    contimg::config::CalConfig,
    contimg::primitives::iers::EarthOrientation,
) {
    use contimg::calibrate::{catalog::Calibrator, CalPlan};
    let (mut g, centre) = common::dsa110_group(nchan);
    let mut baselines: Vec<(usize, usize)> = g
        .baselines
        .iter()
        .filter(|(a, b)| a != b)
        .map(|&(a, b)| (a.min(b), a.max(b)))
        .collect();
    baselines.sort_unstable();
    let calibrator = Calibrator {
        name: "bench".into(),
        ra_rad: centre.ra_rad,
        dec_rad: centre.dec_rad,
        flux_jy: 20.0,
        spectral_index: None,
    };
    let antenna_names = (1..=g.ant_pos.len() as u32).collect();
    let plan = CalPlan {
        calibrator,
        transit_jd: g.times_jd[12],
        groups: vec![0],
        baselines,
        antenna_names,
        freq_hz: g.freqs.clone(),
        field: Vec::new(),
    };
    let cfg = contimg::config::CalConfig::default();
    let eop = contimg::primitives::iers::EarthOrientation::none();
    let model = contimg::calibrate::calibrator_model(&g, &plan.calibrator, &plan.field, &eop);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let gain: Vec<Complex64> = (0..g.ant_pos.len())
        .map(|_| Complex64::from_polar(rng.random_range(0.8..1.2), rng.random_range(-3.0..3.0)))
        .collect();
    for k in 0..g.baselines.len() {
        let (a, b) = g.baselines[k];
        for t in 0..g.n_times() {
            for ch in 0..g.n_chan() {
                let v = gain[a] * gain[b].conj() * model.vis(a, b, t, ch);
                for p in 0..g.npol {
                    let i = g.index(k, t, ch, p);
                    g.vis[i] += num_complex::Complex32::new(v.re as f32, v.im as f32);
                }
            }
        }
    }
    (g, plan, cfg, eop)
}

/// A whole solve on one subband of a calibrator group (48 channels), and on a full-size
/// calibrator group (768 channels) on the CPU backend and, with the `gpu` feature and a
/// device, on the GPU (`gpu_...`: the solver's statistics summed there).
fn bench_night(c: &mut Criterion) {
    use contimg::calibrate::solve_night;
    use contimg::compute::Compute;
    let mut grp = c.benchmark_group("calibration");
    grp.sample_size(10);
    for (name, nchan) in [("one_subband", 48), ("full_group", 768)] {
        let (g, plan, cfg, eop) = calibrator_night(nchan);
        let groups = [g];
        let solve = |compute: &dyn Compute| {
            solve_night(
                &contimg::comm::SingleComm,
                compute,
                &plan,
                &groups,
                &cfg,
                &eop,
            )
            .map(|t| t.flags.iter().filter(|&&f| !f).count())
            .unwrap_or(0)
        };
        eprintln!(
            "solve_night ({name}): {} of {} solutions valid",
            solve(&contimg::compute::Cpu),
            groups[0].ant_pos.len() * nchan * 2
        );
        grp.throughput(criterion::Throughput::Elements(groups[0].vis.len() as u64));
        grp.bench_function(format!("solve_night_{name}"), |b| {
            b.iter(|| solve(&contimg::compute::Cpu))
        });
        #[cfg(feature = "gpu")]
        match contimg::compute::device::Gpu::open(0, 1, 0.0) {
            Err(why) => eprintln!("GPU benches skipped: {why}"),
            Ok(gpu) => {
                eprintln!("GPU benches on {}", gpu.name());
                grp.bench_function(format!("gpu_solve_night_{name}"), |b| {
                    b.iter(|| solve(&gpu))
                });
            }
        }
    }
    grp.finish();
}

/// A table applied to a full-size group (4656 baselines x 24 times x 768 channels x 2
/// pols): per polarization on the CPU backend then Stokes I (what a run writing a
/// Measurement Set does), against while Stokes I is formed, in one pass (what the imaging
/// does). Both in the group's own buffers.
fn bench_apply(c: &mut Criterion) {
    use contimg::calibrate::apply::{apply, stokes_i_calibrated, StokesInto};
    use contimg::calibrate::table::CalTable;
    let (g, _) = common::dsa110_group(768);
    let n_ant = g.ant_pos.len();
    let nf = g.freqs.len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let gains: Vec<Complex64> = (0..n_ant * nf * 2)
        .map(|_| Complex64::from_polar(rng.random_range(0.05..0.2), rng.random_range(-3.0..3.0)))
        .collect();
    let t = CalTable {
        flags: vec![false; gains.len()],
        snr: vec![50.0; gains.len()],
        reasons: vec![0; gains.len()],
        gains,
        antenna_names: (1..=n_ant as u32).collect(),
        time_jd: vec![g.times_jd[12]],
        freq_hz: g.freqs.clone(),
        refant: 1,
        calibrator: "bench".into(),
        provenance: "{}".into(),
        delay_ns: vec![0.0; n_ant * 2],
        delay_ref_hz: g.freqs[0],
        solve_info: String::new(),
    };
    let mut grp = c.benchmark_group("calibrate_apply");
    grp.sample_size(10);
    grp.throughput(criterion::Throughput::Elements(g.vis.len() as u64));
    grp.bench_function("per_polarization_then_stokes_i", |b| {
        b.iter_batched(
            || g.clone(),
            |mut g| {
                apply(&mut g, &t);
                g.into_stokes_i().vis.len()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    grp.bench_function("stokes_i_alone", |b| {
        b.iter_batched(
            || g.clone(),
            |g| g.into_stokes_i().vis.len(),
            criterion::BatchSize::LargeInput,
        )
    });
    grp.bench_function("while_forming_stokes_i", |b| {
        b.iter_batched(
            || g.clone(),
            |g| {
                stokes_i_calibrated(g, &t, StokesInto::OwnBuffer)
                    .0
                    .stokes
                    .vis
                    .len()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    grp.finish();
}

criterion_group!(benches, bench, bench_night, bench_apply);
criterion_main!(benches);
