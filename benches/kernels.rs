//! The other hot kernels on DSA-110-shaped data (one subband of a group: 96 antennas, 48
//! channels, 24 integrations, 2 pols): UVW and rephasing geometry for a phase centre,
//! applying the rephasing to the visibilities (the Measurement Set export's cells), and
//! the gridder's 2048^2 centred FFT (a 1024^2 image, padding 2).

mod common;
use common::dsa110_group;
use contimg::imaging::rephase_geometry;
use contimg::ms::{MsConfig, MsContent};
use contimg::primitives::fft::centred_fft2_forward;
use contimg::primitives::iers::EarthOrientation;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use num_complex::Complex64;

fn bench(c: &mut Criterion) {
    let (g, centre) = dsa110_group(48);
    let eop = EarthOrientation::none();
    let mut group = c.benchmark_group("kernels");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        (g.baselines.len() * g.times_jd.len()) as u64,
    ));
    group.bench_function("uvw_rephase_geometry_rows", |b| {
        b.iter(|| rephase_geometry(&g, centre, &eop).0.len())
    });
    group.throughput(Throughput::Elements(g.vis.len() as u64));
    let content = MsContent::new(&g, centre, &eop, &MsConfig::default());
    group.bench_function("rephase_visibilities", |b| {
        b.iter(|| {
            (0..g.times_jd.len())
                .map(|t| content.cells(t, 0).0.len())
                .sum::<usize>()
        })
    });
    let n = 2048;
    let mut grid: Vec<Complex64> = (0..n * n)
        .map(|i| Complex64::new((i % 7) as f64, (i % 5) as f64))
        .collect();
    group.throughput(Throughput::Elements((n * n) as u64));
    group.bench_function("centred_fft2_2048", |b| {
        b.iter(|| centred_fft2_forward(&mut grid, n))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
