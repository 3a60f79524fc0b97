//! Gridding throughput on DSA-110-shaped data: 96 antennas from the station table, one
//! subband (48 channels, 2 pols) of a 24-integration group, rephased to the group centre.
//! Reports visibilities per second (cross-correlations x channels x pols) through
//! rephasing + w-stacked gridding + FFTs into a 1024 x 1024 image at 12", and through
//! degridding a model image (40 point components) back to every visibility. With the
//! `wgridder_*`: the self-contained w-gridder alone (dirty only, as ducc0's vis2dirty;
//! dirty + PSF; prediction). With the
//! `gpu` feature and a device, the same blocks gridded and degridded on the GPU too
//! (`gpu_...`); without one the bench says it skipped them.

mod common;
use common::dsa110_group;
use contimg::compute::dft::{predict_points, DftBlock, Point};
use contimg::imaging::{
    degridder::degrid, grid_group, rephase_geometry, GridPair, GridSpec, VisBlock,
};
use contimg::primitives::iers::EarthOrientation;
use contimg::primitives::wgridder;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let (g, centre) = dsa110_group(48);
    let weight = g.weight.to_f32_vec();
    let n_cross =
        g.baselines.iter().filter(|(a, b)| a != b).count() * g.times_jd.len() * g.freqs.len() * 2;
    let mut group = c.benchmark_group("gridding");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n_cross as u64));
    for eps in [1e-4, 1e-6] {
        let spec = GridSpec::new(1024, (12.0f64 / 3600.0).to_radians(), eps);
        group.bench_function(format!("dsa110_subband_eps{eps:e}"), |b| {
            b.iter(|| {
                let mut grids = GridPair::new(spec);
                grid_group(&mut grids, &g, centre, &EarthOrientation::none());
                grids.sum_w
            })
        });
    }
    // Degridding: the model's visibilities for every row (the major cycle's prediction).
    let (uvw, dw) = rephase_geometry(&g, centre, &EarthOrientation::none());
    let nt = g.times_jd.len();
    let use_row: Vec<bool> = (0..uvw.len())
        .map(|r| g.baselines[r / nt].0 != g.baselines[r / nt].1)
        .collect();
    let block = VisBlock {
        freqs: &g.freqs,
        npol: g.npol,
        uvw_m: &uvw,
        dw_m: &dw,
        vis: &g.vis,
        weight: &weight,
        use_row: &use_row,
        workspace: None,
        resident: None,
    };
    for eps in [1e-4, 1e-6] {
        let spec = GridSpec::new(1024, (12.0f64 / 3600.0).to_radians(), eps);
        let mut model = vec![0.0; 1024 * 1024];
        for k in 0..40 {
            model[(200 + 15 * k) * 1024 + 180 + 16 * k] = 1.0 + k as f64 * 0.1;
        }
        group.bench_function(format!("degrid_dsa110_subband_eps{eps:e}"), |b| {
            b.iter(|| degrid(&spec, &model, &block).len())
        });
    }
    // The same 40 components predicted directly (compute::dft: a direct Fourier sum, the
    // channel average and any per-integration amplitude exact): its cost per component,
    // against the degridder's per image, is what `imaging.predict: auto` weighs.
    let (points, amp) = {
        let spec = GridSpec::new(1024, (12.0f64 / 3600.0).to_radians(), 1e-4);
        let c = 512.0;
        let points: Vec<Point> = (0..40)
            .map(|k| Point {
                l: (c - (180 + 16 * k) as f64) * spec.cell_rad,
                m: ((200 + 15 * k) as f64 - c) * spec.cell_rad,
            })
            .collect();
        let nc = g.freqs.len();
        let amp: Vec<f32> = (0..40)
            .flat_map(|k| std::iter::repeat_n(1.0 + k as f32 * 0.1, nc * nt))
            .collect();
        (points, amp)
    };
    let direct = DftBlock {
        uvw_m: &uvw,
        dw_m: &dw,
        use_row: &use_row,
        n_times: nt,
        freqs: &g.freqs,
        dnu: g.channel_width_hz.abs(),
    };
    let mut out = vec![num_complex::Complex32::new(0.0, 0.0); uvw.len() * g.freqs.len()];
    group.bench_function("direct_40_points_dsa110_subband", |b| {
        b.iter(|| {
            predict_points(&direct, &points, &amp, &mut out);
            out.len()
        })
    });
    // The self-contained w-gridder alone (primitives::wgridder, what the CPU path above
    // calls): the dirty image only (ducc0's vis2dirty does this: 15.8 M correlations per
    // second per core at eps 1e-4 with w-correction, issue 20), dirty + PSF from one pass,
    // and the prediction (dirty2vis).
    let threads = rayon::current_num_threads() as f64;
    for eps in [1e-4, 1e-6] {
        let mut opt = wgridder::Options::new(1024, (12.0f64 / 3600.0).to_radians(), eps);
        opt.npol = g.npol;
        opt.row_mask = Some(&use_row);
        opt.row_delay_m = Some(&dw);
        let (_, choice) = wgridder::vis2dirty(
            &uvw,
            &g.freqs,
            &g.vis,
            &weight,
            &opt,
            wgridder::Want {
                dirty: true,
                ..Default::default()
            },
        )
        .unwrap();
        eprintln!("wgridder eps {eps:e}: {choice:?}; {threads} threads; per-core figures = throughput / {threads}");
        for (name, psf) in [("dirty", false), ("dirty_psf", true)] {
            let want = wgridder::Want {
                dirty: true,
                psf,
                ..Default::default()
            };
            group.bench_function(format!("wgridder_{name}_eps{eps:e}"), |b| {
                b.iter(|| {
                    wgridder::vis2dirty(&uvw, &g.freqs, &g.vis, &weight, &opt, want)
                        .unwrap()
                        .0
                        .sum_weights
                })
            });
        }
        let mut model = vec![0.0; 1024 * 1024];
        for k in 0..40 {
            model[(200 + 15 * k) * 1024 + 180 + 16 * k] = 1.0 + k as f64 * 0.1;
        }
        let mut out = vec![num_complex::Complex32::new(0.0, 0.0); uvw.len() * g.freqs.len()];
        group.bench_function(format!("wgridder_degrid_eps{eps:e}"), |b| {
            b.iter(|| {
                wgridder::dirty2vis(&uvw, &g.freqs, &model, &opt, &mut out).unwrap();
                out.len()
            })
        });
        // A major cycle's prediction with two spectral terms and the quadratic drifting
        // beam: 6 models (here the model scaled), each with its weights per row and
        // channel, in one weighted pass (compare 6 x wgridder_degrid).
        let models: Vec<Vec<f64>> = (0..6)
            .map(|k| model.iter().map(|x| x * (1.0 - 0.1 * k as f64)).collect())
            .collect();
        let images: Vec<&[f64]> = models.iter().map(|m| m.as_slice()).collect();
        let row_w: Vec<f32> = (0..uvw.len()).map(|r| (r % 24) as f32 / 24.0).collect();
        let chan_w: Vec<f32> = (0..g.freqs.len()).map(|c| c as f32 * 1e-3).collect();
        let weights: Vec<wgridder::Weights> = (0..6)
            .map(|k| wgridder::Weights {
                row: Some(&row_w),
                chan: (k >= 3).then_some(chan_w.as_slice()),
            })
            .collect();
        group.bench_function(format!("wgridder_degrid_sum6_eps{eps:e}"), |b| {
            b.iter(|| {
                wgridder::dirty2vis_sum(&uvw, &g.freqs, &images, &weights, &opt, &mut out).unwrap();
                out.len()
            })
        });
    }
    #[cfg(feature = "gpu")]
    match contimg::compute::device::Gpu::open(0, 1, 0.0) {
        Err(why) => eprintln!("SKIPPED: GPU gridding benches: {why}"),
        Ok(gpu) => {
            // A device failure falls back to the CPU with a warning: show it.
            let _ = env_logger::builder()
                .filter_level(log::LevelFilter::Warn)
                .try_init();
            eprintln!("GPU benches on {}", contimg::compute::Compute::name(&gpu));
            for eps in [1e-4, 1e-6] {
                let spec = GridSpec::new(1024, (12.0f64 / 3600.0).to_radians(), eps);
                group.bench_function(format!("gpu_dsa110_subband_eps{eps:e}"), |b| {
                    b.iter(|| {
                        let mut grids = GridPair::new(spec);
                        grids.add_with(&block, &gpu);
                        grids.sum_w
                    })
                });
                let mut model = vec![0.0; 1024 * 1024];
                for k in 0..40 {
                    model[(200 + 15 * k) * 1024 + 180 + 16 * k] = 1.0 + k as f64 * 0.1;
                }
                group.bench_function(format!("gpu_degrid_dsa110_subband_eps{eps:e}"), |b| {
                    b.iter(|| {
                        contimg::imaging::degridder::degrid_with(&spec, &model, &block, &gpu).len()
                    })
                });
            }
            // The same 40 components summed directly on the device (dft.cu).
            group.bench_function("gpu_direct_40_points_dsa110_subband", |b| {
                b.iter(|| {
                    contimg::compute::Compute::predict_points(
                        &gpu, &direct, &points, &amp, &mut out,
                    )
                    .unwrap();
                    out.len()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
