//! Light curves from the run's photometry: one point per tile per epoch (the night's mosaic
//! is not a second epoch), errors from the residual near the source over the primary beam,
//! and eta, V from those.

use contimg::photometry::night::{measure_night, photometry_of_run};
use contimg::photometry::{measure_nights, variability, Target, Thresholds};
use contimg::products::{write_fits_image, ImageMeta};
use std::path::Path;

const N: usize = 256;
const CELL_DEG: f64 = 10.0 / 3600.0;
const BEAM_DEG: f64 = 40.0 / 3600.0;
const DEC: f64 = 50.0;
/// Residual rms near the two sources and elsewhere (Jy/beam).
const LOCAL: f64 = 0.006;
const FAR: f64 = 0.001;

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

fn meta(ra: f64, date: &str) -> ImageMeta {
    ImageMeta {
        ra_deg: ra,
        dec_deg: DEC,
        cell_deg: CELL_DEG,
        freq_hz: 1.4e9,
        bandwidth_hz: 1.875e8,
        date_obs: date.into(),
        bunit: "JY/BEAM",
        object: "test".into(),
        beam_deg: Some([BEAM_DEG, BEAM_DEG, 0.0]),
        history: vec![],
    }
}

/// One tile centred on `ra`: restored = sum of beam-shaped sources (apparent flux = flux x
/// pb) plus the residual, pbcor = restored / pb, a constant primary beam `pb`. The residual
/// is LOCAL within 45 pixels of each source and FAR elsewhere.
fn tile(dir: &Path, name: &str, ra: f64, pb: f64, sources: &[(f64, f64)], rng: &mut Rng) {
    let m = meta(ra, name);
    let c = (N / 2) as f64;
    // 0-based pixel of an RA on the tile's central row (SIN, x increases to the west).
    let xpix = |r: f64| {
        c - ((r - ra).to_radians() * DEC.to_radians().cos())
            .sin()
            .to_degrees()
            / CELL_DEG
    };
    let pos: Vec<(f64, f64, f64)> = sources.iter().map(|&(r, f)| (xpix(r), c, f)).collect();
    let mut residual = vec![0f32; N * N];
    let mut restored = vec![0f32; N * N];
    let s = BEAM_DEG / CELL_DEG / (8.0 * std::f64::consts::LN_2).sqrt();
    for y in 0..N {
        for x in 0..N {
            let near = pos
                .iter()
                .any(|p| (x as f64 - p.0).abs() <= 45.0 && (y as f64 - p.1).abs() <= 45.0);
            let r = rng.gauss() * if near { LOCAL } else { FAR };
            let src: f64 = pos
                .iter()
                .map(|p| {
                    let d2 = (x as f64 - p.0).powi(2) + (y as f64 - p.1).powi(2);
                    p.2 * pb * (-0.5 * d2 / (s * s)).exp()
                })
                .sum();
            residual[y * N + x] = r as f32;
            restored[y * N + x] = (src + r) as f32;
        }
    }
    let pbcor: Vec<f32> = restored.iter().map(|v| v / pb as f32).collect();
    let im = dir.join("images");
    std::fs::create_dir_all(&im).unwrap();
    write_fits_image(&im.join(format!("{name}.residual.fits")), N, &residual, &m).unwrap();
    write_fits_image(&im.join(format!("{name}.restored.fits")), N, &restored, &m).unwrap();
    write_fits_image(&im.join(format!("{name}.pbcor.fits")), N, &pbcor, &m).unwrap();
    write_fits_image(
        &im.join(format!("{name}.pb.fits")),
        N,
        &vec![pb as f32; N * N],
        &m,
    )
    .unwrap();
}

#[test]
fn one_point_per_tile_per_epoch_with_local_noise_errors() {
    let root = std::env::temp_dir().join(format!("contimg-nightphot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut rng = Rng(7);
    // Two nights of two overlapping tiles (0.3 deg apart); both sources lie in both tiles.
    // "steady" holds 0.05 Jy; "flare" goes 0.2 -> 0.3 Jy from night 1 to night 2.
    let targets = vec![
        Target {
            name: "steady".into(),
            ra_deg: 100.12,
            dec_deg: DEC,
        },
        Target {
            name: "flare".into(),
            ra_deg: 100.2,
            dec_deg: DEC,
        },
    ];
    let nights = [root.join("n1"), root.join("n2")];
    for (k, night) in nights.iter().enumerate() {
        let flare = if k == 0 { 0.2 } else { 0.3 };
        let srcs = [(100.12, 0.05), (100.2, flare)];
        tile(
            night,
            &format!("2026-03-1{k}T02:03:10.5"),
            100.0,
            0.8,
            &srcs,
            &mut rng,
        );
        tile(
            night,
            &format!("2026-03-1{k}T02:08:19.7"),
            100.3,
            0.5,
            &srcs,
            &mut rng,
        );
        // The night's mosaic (here a copy of a tile) is not a measurement.
        std::fs::create_dir_all(night.join("mosaic")).unwrap();
        std::fs::copy(
            night.join(format!("images/2026-03-1{k}T02:03:10.5.pbcor.fits")),
            night.join("mosaic/mosaic.fits"),
        )
        .unwrap();
    }
    // The run's step: one night's CSV beside its images; the built-in VLA list has no
    // source here (header only), a user's catalogue gives 2 sources x 2 tiles.
    assert_eq!(photometry_of_run(&nights[0], None).unwrap(), 0);
    let csv = std::fs::read_to_string(nights[0].join("photometry/night.csv")).unwrap();
    assert_eq!(
        csv.trim(),
        "source,ra_deg,dec_deg,date_obs,flux_jy,err_jy,image"
    );
    let cat = root.join("targets.csv");
    std::fs::write(
        &cat,
        "name,ra_deg,dec_deg\nsteady,100.12,50\nflare,100.2,50\n",
    )
    .unwrap();
    assert_eq!(photometry_of_run(&nights[0], Some(&cat)).unwrap(), 4);
    let csv = std::fs::read_to_string(nights[0].join("photometry/night.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("steady,100.12,50.0,2026-03-10T02:03:10.5,"),
        "{csv}"
    );
    let own = measure_night(&nights[0], &targets).unwrap();
    assert_eq!(own.len(), 4, "2 sources x 2 tiles: {own:?}");

    let ms = measure_nights(&nights, &targets).unwrap();
    for t in &targets {
        let mine: Vec<_> = ms.iter().filter(|m| m.source == t.name).collect();
        // One point per tile per epoch: 2 tiles x 2 nights, none from the mosaics.
        assert_eq!(mine.len(), 4, "{mine:?}");
        assert!(mine
            .iter()
            .all(|m| m.image.to_string_lossy().ends_with(".pbcor.fits")));
        for m in &mine {
            let pb = if m.image.to_string_lossy().contains("02:03") {
                0.8
            } else {
                0.5
            };
            // The local residual rms over the beam (6 mJy / pb), not the image-wide rms
            // (~1.3 mJy / pb). Measured within 1.4 % (MAD of 81^2 pixels).
            let want = LOCAL / pb;
            assert!((m.err_jy / want - 1.0).abs() < 0.05, "{m:?}: want {want}");
        }
        let v = variability(&t.name, &mine, Thresholds::default());
        if t.name == "steady" {
            // Within its errors: not a candidate (with the image-wide rms as errors its eta
            // would be ~20x larger).
            assert!(v.eta < 5.0 && !v.candidate, "{v:?}");
        } else {
            // 0.2 -> 0.3 Jy: m = 2 (0.3 - 0.2) / 0.5 = 0.4 within the noise.
            assert!(v.candidate && (v.m.abs() - 0.4).abs() < 0.1, "{v:?}");
            assert!(v.v > 0.15, "{v:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
