//! The calibration solve: StefCal on the combined sufficient statistics of one solution
//! cell (one channel and polarization) for the full array (96 antennas, 4560 baselines),
//! the unit of work of which a night's bandpass solves 768 x 2.

use contimg::calibrate::solve::{solve_cell, CellStats, SolveParams};
use criterion::{criterion_group, criterion_main, Criterion};
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

fn bench(c: &mut Criterion) {
    let n_ant = 96;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let truth: Vec<Complex64> = (0..n_ant).map(|_| Complex64::from_polar(rng.random_range(0.8..1.2), rng.random_range(-3.0..3.0))).collect();
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
            let v = truth[a] * truth[b].conj() * m + Complex64::new(noise.sample(&mut rng), noise.sample(&mut rng));
            s.add(k, 1.0, v, m);
        }
    }
    let p = SolveParams { max_iter: 200, tolerance: 1e-10, min_baselines: 4, min_snr: 3.0 };
    c.bench_function("stefcal_cell_96_antennas", |b| b.iter(|| solve_cell(&s, &bl, n_ant, &[0], &p).unwrap().iterations));
}

criterion_group!(benches, bench);
criterion_main!(benches);
