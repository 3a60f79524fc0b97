//! Flagging throughput on group-shaped planes: 500 baselines (of a group's 4560) x 24
//! integrations x 768 channels x 2 pols of noise with narrowband RFI, through the whole
//! default flagging stage. Reports visibilities per second.

use contimg::config::FlagConfig;
use contimg::core::GroupVis;
use contimg::primitives::astrometry::Site;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use num_complex::Complex32;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

fn planes(n_bl: usize) -> GroupVis {
    let (nt, nf, np) = (24, 768, 2);
    let n_ant = 117;
    let mut baselines = Vec::new();
    'outer: for a in 0..n_ant {
        for b in a + 1..n_ant {
            baselines.push((a, b));
            if baselines.len() == n_bl {
                break 'outer;
            }
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let nrm = Normal::new(0.0f32, 1.0).unwrap();
    let n = n_bl * nt * nf * np;
    let mut vis: Vec<Complex32> = (0..n)
        .map(|_| Complex32::new(nrm.sample(&mut rng), nrm.sample(&mut rng)))
        .collect();
    for (i, v) in vis.iter_mut().enumerate() {
        let c = (i / np) % nf;
        if c == 100 || c == 101 || c == 500 {
            *v += Complex32::new(8.0, 0.0);
        }
    }
    GroupVis {
        times_jd: (0..nt)
            .map(|t| 2_461_113.7 + t as f64 * 12.884901888 / 86400.0)
            .collect(),
        freqs: (0..nf).map(|c| 1.311e9 + c as f64 * 244_140.625).collect(),
        channel_width_hz: 244_140.625,
        npol: np,
        baselines,
        ant_pos: vec![[0.0; 3]; n_ant],
        antenna_names: (1..=n_ant).map(|i| i.to_string()).collect(),
        site: Site::from_geodetic_deg(37.2334, -118.2834, 1188.0),
        pointing_dec_rad: 0.95,
        vis,
        weight: contimg::core::Weights::filled(n, 1.0),
        meta: Default::default(),
    }
}

fn bench(c: &mut Criterion) {
    let g0 = planes(500);
    let cfg = FlagConfig::default();
    let mut group = c.benchmark_group("flagging");
    group.sample_size(10);
    group.throughput(Throughput::Elements(g0.vis.len() as u64));
    group.bench_function("default_stage_500_baselines", |b| {
        b.iter_batched(
            || g0.clone(),
            |mut g| contimg::flag::run(&mut g, &cfg).fraction_total,
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
