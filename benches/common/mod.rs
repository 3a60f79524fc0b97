//! DSA-110-shaped test data shared by the benches: 96 antennas from the station table, one
//! subband (n_chan channels, 2 pols) of a 24-integration group, random visibilities.
#![allow(dead_code)]

use contimg::core::stations::read_stations;
use contimg::core::Centre;
use contimg::core::GroupVis;
use contimg::primitives::astrometry::{median_meridian_icrs, sub, Site};
use contimg::primitives::iers::EarthOrientation;
use contimg::simulate::{channel_freq, default_antennas};
use num_complex::Complex32;
use rand::{Rng, SeedableRng};

pub fn dsa110_group(n_chan: usize) -> (GroupVis, Centre) {
    let stations = read_stations(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/dsa110/DSA110_Station_Coordinates.csv"
    )))
    .unwrap();
    let site = Site::from_geodetic_deg(37.233386982, -118.283405115, 1188.0);
    let ant_pos: Vec<[f64; 3]> = stations.iter().map(|s| sub(s.ecef(), site.ecef)).collect();
    let active: Vec<usize> = default_antennas(96)
        .iter()
        .map(|&s| s as usize - 1)
        .collect();
    let mut baselines = Vec::new();
    for j in 0..active.len() {
        for i in 0..=j {
            baselines.push((active[i], active[j]));
        }
    }
    let t0 = 2_461_113.7;
    let times_jd: Vec<f64> = (0..24)
        .map(|k| t0 + (k as f64 + 0.5) * 12.884901888 / 86400.0)
        .collect();
    let mut freqs: Vec<f64> = (0..n_chan).map(|c| channel_freq(7, c, 48)).collect();
    freqs.sort_by(|a, b| a.total_cmp(b));
    let n = baselines.len() * times_jd.len() * n_chan * 2;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let vis = (0..n)
        .map(|_| Complex32::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
        .collect();
    let dec = 54.6f64.to_radians();
    let (ra, dec_c) = median_meridian_icrs(&times_jd, dec, &site, &EarthOrientation::none());
    let g = GroupVis {
        times_jd,
        freqs,
        channel_width_hz: 244_140.625,
        npol: 2,
        baselines,
        ant_pos,
        antenna_names: (1..=117).map(|i| i.to_string()).collect(),
        site,
        pointing_dec_rad: dec,
        vis,
        weight: contimg::core::Weights::filled(n, 1.0),
        meta: Default::default(),
    };
    (
        g,
        Centre {
            ra_rad: ra,
            dec_rad: dec_c,
        },
    )
}
