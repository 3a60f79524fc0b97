//! `kernels/dft.cu` run on the host (kernels/host/run.cpp) against the exact formula and its
//! CPU twin, `compute::dft::predict_points` (tests only).

use super::dft::tests::{max_difference, LongBand};
use super::dft::{predict_points, DftBlock, Point};
use super::host_kernels::{host_kernels, run_host};
use num_complex::{Complex32, Complex64};

/// dft.cu's `predict_points` run on the host as `device_dft.rs` launches it (one thread a
/// row and run of channels), added to `out`.
pub(crate) fn kernel_on_host(
    exe: &std::path::Path,
    b: &DftBlock,
    points: &[Point],
    amp: &[f32],
    out: &mut [Complex32],
) {
    let (nrow, nc) = (b.uvw_m.len(), b.freqs.len());
    let mut rec: Vec<u8> = Vec::new();
    for v in [nrow, b.n_times, nc, points.len()] {
        rec.extend((v as i64).to_le_bytes());
    }
    let lmn: Vec<f64> = points.iter().flat_map(|p| [p.l, p.m, p.nm1()]).collect();
    let f64s = b.uvw_m.iter().flatten().chain(b.dw_m);
    rec.extend(
        std::iter::once(&b.dnu)
            .chain(f64s)
            .flat_map(|x| x.to_le_bytes()),
    );
    rec.extend(b.use_row.iter().map(|&u| u8::from(u)));
    rec.extend(b.freqs.iter().chain(&lmn).flat_map(|x| x.to_le_bytes()));
    let f32s = amp.iter().chain(out.iter().flat_map(|v| [&v.re, &v.im]));
    rec.extend(f32s.flat_map(|x| x.to_le_bytes()));
    let back = run_host(exe, "dft", &rec);
    assert_eq!(back.len(), out.len() * 8, "dft: output size");
    for (o, b) in out.iter_mut().zip(back.chunks_exact(8)) {
        let f = |k: usize| f32::from_le_bytes(b[k..k + 4].try_into().unwrap());
        *o = Complex32::new(f(0), f(4));
    }
}

/// Values a prediction adds to (and must leave on the rows not in use).
pub(crate) fn starting_values(n: usize) -> Vec<Complex32> {
    (0..n)
        .map(|i| Complex32::new((i % 5) as f32 * 0.25, -((i % 3) as f32)))
        .collect()
}

/// On a full band of 768 channels, baselines up to 2.8 km and components up to 2.5 deg out:
/// the kernel adds the formula (f64 throughout, one f32 rounding) to the visibilities,
/// leaves the rows not in use alone, and agrees with its f32 twin to the twin's accuracy.
#[test]
fn kernel_run_on_the_host_is_the_exact_formula() {
    let Some(exe) = host_kernels() else {
        return;
    };
    for nt in [5, 24] {
        let case = LongBand::new(nt);
        let (b, nc) = (case.block(), case.freqs.len());
        let start = starting_values(case.uvw_m.len() * nc);
        let mut got = start.clone();
        kernel_on_host(&exe, &b, &case.points, &case.amp, &mut got);
        for (r, &u) in case.use_row.iter().enumerate() {
            if !u {
                assert_eq!(got[r * nc..(r + 1) * nc], start[r * nc..(r + 1) * nc]);
            }
        }
        let plus_start = |v: &[Complex64]| -> Vec<Complex64> {
            v.iter()
                .zip(&start)
                .map(|(w, s)| w + Complex64::new(s.re as f64, s.im as f64))
                .collect()
        };
        let (err, scale) = max_difference(&got, &plus_start(&case.exact()));
        let mut twin = start.clone();
        predict_points(&b, &case.points, &case.amp, &mut twin);
        let twin: Vec<Complex64> = twin
            .iter()
            .map(|v| Complex64::new(v.re as f64, v.im as f64))
            .collect();
        let (off_twin, _) = max_difference(&got, &twin);
        println!(
            "dft.cu on the host, {nt} integrations: {err:.2e} of {scale:.2} from the formula, {off_twin:.2e} from the twin"
        );
        assert!(err <= 1e-7 * scale, "{err:e} of {scale}");
        assert!(off_twin <= 1.5e-6 * scale, "{off_twin:e} of {scale}");
    }
}

/// Channels in two runs of equal spacing with a gap between them (as between subbands that
/// do not abut), fewer than a thread's run, a wide channel, rows not in use: each channel's
/// phasor afresh where the spacing breaks, against the formula.
#[test]
fn kernel_run_on_the_host_follows_uneven_channels() {
    let Some(exe) = host_kernels() else {
        return;
    };
    let blk = super::stack::tests::block();
    let (freqs, points, amp) = super::dft::tests::uneven_case(&blk);
    let b = DftBlock {
        freqs: &freqs,
        ..blk.dft_block(3, 2.0e6)
    };
    let mut got = vec![Complex32::new(0.0, 0.0); blk.uvw.len() * freqs.len()];
    kernel_on_host(&exe, &b, &points, &amp, &mut got);
    let (err, scale) = max_difference(&got, &super::dft::tests::exact(&b, &points, &amp));
    println!("dft.cu on the host, uneven channels: {err:.2e} of {scale:.2}");
    assert!(scale > 1.0);
    assert!(err <= 1e-7 * scale, "{err:e} of {scale}");
}
