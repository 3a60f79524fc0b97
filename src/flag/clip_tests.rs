//! Unit tests of the amplitude clip's statistics (src/flag/mod.rs).
use super::*;

/// The stride steps through every channel and integration of a baseline (no factor shared
/// with its samples per polarization) and keeps the subset at most CLIP_STATS_SAMPLES;
/// small groups use every sample.
#[test]
fn the_clip_subset_is_spread_over_every_channel_and_small_groups_use_all() {
    let tf = 24 * 768; // 2^11 x 9
    assert_eq!(clip_stats_stride(CLIP_STATS_SAMPLES, tf), 1);
    assert_eq!(clip_stats_stride(1000, tf), 1);
    let n = 4560 * tf; // a full-size group's cross-correlations, one polarization
    let k = clip_stats_stride(n, tf);
    assert!(n.div_ceil(k) <= CLIP_STATS_SAMPLES, "{k}");
    assert!(
        k >= n.div_ceil(CLIP_STATS_SAMPLES) && !k.is_multiple_of(2) && !k.is_multiple_of(3),
        "{k}"
    );
    let mut seen = vec![false; 768];
    (0..n.div_ceil(k)).for_each(|j| seen[(j * k) % tf % 768] = true);
    assert!(seen.iter().all(|&s| s));
}

/// On 3 x CLIP_STATS_SAMPLES amplitudes of noise whose level follows the channel (a
/// bandpass) with flagged (NaN) samples, the subset's median and MAD sigma are the whole
/// set's to within 2e-3 sigma: the subset/whole differences have standard errors of ~5e-4
/// sigma (seeds 11-14 gave 1e-4 to 1.5e-3).
#[test]
fn the_clip_statistics_of_the_subset_are_those_of_the_whole() {
    use rand::{Rng, SeedableRng};
    let tf = 24 * 768;
    let n = 3 * CLIP_STATS_SAMPLES;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let amps: Vec<f32> = (0..n)
        .map(|i| {
            let gain = 1.0 + 0.3 * ((i % 768) as f32 * 0.02).sin();
            let (a, b): (f32, f32) = (rng.random(), rng.random());
            // Rayleigh amplitude of complex Gaussian noise, 1 % flagged.
            if a < 0.01 {
                f32::NAN
            } else {
                gain * (-2.0 * (1.0 - b).ln()).sqrt()
            }
        })
        .collect();
    assert!(clip_stats_stride(n, tf) > 1);
    let (med, sig) = clip_stats(n, tf, |i| amps[i]).unwrap();
    let (m0, s0) = crate::primitives::stats::median_and_mad_sigma_par(&amps).unwrap();
    assert!(
        (med - m0).abs() < 2e-3 * s0,
        "median {med} vs {m0} (sigma {s0})"
    );
    assert!((sig - s0).abs() < 2e-3 * s0, "sigma {sig} vs {s0}");
}
