//! Multi-term CLEAN (nterms 2 and 3) with its major cycles, in process: a bright point source with
//! spectral index -0.8 over DSA-110's 13 % band, the visibilities written by a direct model
//! (S(nu) = S0 (nu / nu0)^alpha times the phase of the source's (l, m) in the image basis;
//! not src/simulate), thermal noise added. CLEAN must converge: the residual peak falls
//! from major cycle to major cycle and the residual ends at the thermal noise, the source's
//! flux and spectral index recovered.

use contimg::comm::SingleComm;
use contimg::compute::Cpu;
use contimg::core::stations::read_stations;
use contimg::core::{Centre, GroupVis};
use contimg::imaging::clean::MinorAlgorithm;
use contimg::imaging::deconvolve::{clean_image, CleanSetup, CleanStart, HeldGroup};
use contimg::imaging::gridder::{GridPair, GridSpec};
use contimg::imaging::rephase_geometry;
use contimg::imaging::settings::ImagingConfig;
use contimg::primitives::astrometry::{median_meridian_icrs, sub, Site};
use contimg::primitives::iers::EarthOrientation;
use contimg::simulate::{channel_freq, default_antennas};
use num_complex::Complex32;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

const C: f64 = 299_792_458.0;

/// A 24-antenna, 24-integration group over the whole band (16 subbands of `nch` channels).
fn group(nch: usize) -> (GroupVis, Centre) {
    let stations = read_stations(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/dsa110/DSA110_Station_Coordinates.csv"
    )))
    .unwrap();
    let site = Site::from_geodetic_deg(37.233386982, -118.283405115, 1188.0);
    let ant_pos: Vec<[f64; 3]> = stations.iter().map(|s| sub(s.ecef(), site.ecef)).collect();
    let active: Vec<usize> = default_antennas(24)
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
    let mut freqs: Vec<f64> = (0..16)
        .flat_map(|sb| (0..nch).map(move |c| channel_freq(sb, c, nch)))
        .collect();
    freqs.sort_by(|a, b| a.total_cmp(b));
    let n = baselines.len() * times_jd.len() * freqs.len() * 2;
    let dec = 54.6f64.to_radians();
    let (ra, dec_c) = median_meridian_icrs(&times_jd, dec, &site, &EarthOrientation::none());
    let g = GroupVis {
        times_jd,
        freqs,
        channel_width_hz: 244_140.625 * (48 / nch) as f64,
        npol: 2,
        baselines,
        ant_pos,
        antenna_names: (1..=117).map(|i| i.to_string()).collect(),
        site,
        pointing_dec_rad: dec,
        vis: vec![Complex32::new(0.0, 0.0); n],
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

/// A point source at (l, m) (rad, image basis: l east, m north) with flux s0 at nu0,
/// spectral index alpha and curvature beta (ln S = ln s0 + alpha ln(nu / nu0) + beta
/// ln(nu / nu0)^2), added to every cross-correlation by a direct sum in the data's own
/// phasing: exp(+2 pi i nu / c (u l + v m + w (n - 1))) in the image basis, rotated back
/// by exp(+2 pi i dw nu / c) (dw = w_image - w_data), the convention of the degridder;
/// averaged over the channel's width (sinc(dnu tau), tau the delay from the data's phase
/// centre).
#[allow(clippy::too_many_arguments)]
fn add_source(
    g: &mut GroupVis,
    uvw: &[[f64; 3]],
    dw: &[f64],
    l: f64,
    m: f64,
    s0: f64,
    nu0: f64,
    alpha: f64,
    beta: f64,
) {
    let nm1 = (1.0 - l * l - m * m).sqrt() - 1.0;
    let (nc, np) = (g.freqs.len(), g.npol);
    for (r, (b, d)) in uvw.iter().zip(dw).enumerate() {
        let delay = b[0] * l + b[1] * m + b[2] * nm1 + d;
        // The channel's average of the fringe (bandwidth smearing), as a correlator makes it.
        let x = std::f64::consts::PI * g.channel_width_hz * delay / C;
        let smear = if x.abs() < 1e-12 { 1.0 } else { x.sin() / x };
        for (c, &f) in g.freqs.iter().enumerate() {
            let lf = (f / nu0).ln();
            let s = s0 * (alpha * lf + beta * lf * lf).exp() * smear;
            let ph = std::f64::consts::TAU * f / C * delay;
            let v = Complex32::new((s * ph.cos()) as f32, (s * ph.sin()) as f32);
            for p in 0..np {
                g.vis[(r * nc + c) * np + p] += v;
            }
        }
    }
}

struct Cleaned {
    models: Vec<Vec<f64>>,
    /// The band-averaged (MFS) model and the imaging-weighted mean frequency.
    mfs: Vec<f64>,
    mfs_hz: Option<f64>,
    residual: Vec<f64>,
    /// The residual peak at the start of every minor cycle, last the final one.
    peaks: Vec<f64>,
    thermal: f64,
    iterations: usize,
    major_cycles: usize,
}

/// CLEANs one group with `nterms` spectral terms as the pipeline does (dirty image and
/// x-weighted dirty image, 2T - 1 PSFs of twice the image's size; the demo's defaults:
/// Clark, gain 0.1, mgain 0.8, auto-threshold 3 sigma).
fn clean_group(
    g: GroupVis,
    centre: Centre,
    spec: &GridSpec,
    nterms: usize,
    niter: usize,
) -> Cleaned {
    let params = ImagingConfig {
        minor_cycle: MinorAlgorithm::Clark,
        niter,
        gain: 0.1,
        mgain: 0.8,
        threshold_jy: 0.0,
        auto_threshold: 3.0,
        auto_mask: 0.0,
        psf_patch: 256,
        clean_border: 0.0,
        ..ImagingConfig::default()
    };
    clean_group_with(g, centre, spec, nterms, &params).0
}

/// `clean_group` with the given settings; also returns the held group (its visibilities
/// now the residual's).
fn clean_group_with(
    g: GroupVis,
    centre: Centre,
    spec: &GridSpec,
    nterms: usize,
    params: &ImagingConfig,
) -> (Cleaned, Vec<HeldGroup>) {
    let eop = EarthOrientation::none();
    let n = spec.n_image;
    let ref_hz = 0.5 * (g.freqs[0] + g.freqs[g.freqs.len() - 1]);
    // Thermal noise of a naturally weighted image: the per-visibility sigma of each part
    // (1 Jy) over the square root of the cross-correlation samples (both polarizations).
    let n_cross = g.baselines.iter().filter(|(a, b)| a != b).count()
        * g.times_jd.len()
        * g.freqs.len()
        * g.npol;
    let thermal = 1.0 / (n_cross as f64).sqrt();
    let mut held = vec![HeldGroup::new(g, centre, &eop)];
    let mut dirty = Vec::new();
    for t in 0..nterms {
        let mut gp = GridPair::spectral(*spec, ref_hz, Some(t as u8), None);
        held[0].grid(&mut gp, &Cpu);
        dirty.push(gp.finish_f64().unwrap().0);
    }
    let spec2 = spec.doubled();
    let psfs: Vec<Vec<f64>> = (0..2 * nterms - 1)
        .map(|k| {
            let mut gp = GridPair::spectral(spec2, ref_hz, None, Some(k as u8));
            held[0].grid(&mut gp, &Cpu);
            gp.finish_f64().unwrap().1
        })
        .collect();
    let setup = CleanSetup {
        owner: 0,
        distributed: false,
        spec,
        params,
        max_major: 20,
        nterms,
        ref_hz,
        beam: None,
        compute: &Cpu,
    };
    let start = CleanStart {
        residuals: dirty,
        psfs,
    };
    let out = clean_image(&SingleComm, &setup, &mut held, Some(start)).unwrap();
    assert_eq!(out.residual.len(), n * n);
    let cleaned = Cleaned {
        mfs: out.model,
        mfs_hz: out.mfs_hz,
        models: out.models,
        residual: out.residual,
        peaks: out.cycle_peaks,
        thermal,
        iterations: out.iterations,
        major_cycles: out.major_cycles,
    };
    (cleaned, held)
}

/// The demo's case: 3C147-like, 20 Jy with spectral index -0.8, two thirds of a pixel off a
/// pixel centre, 2.5' from the tile centre, and a 0.5 Jy flat-spectrum source 16' away;
/// noise 1 Jy per visibility in each of the real and imaginary parts (thermal 1.5 mJy/beam:
/// a dynamic range of 1.3 x 10^4). Cells of 5" (the longest baselines, 12.6 k lambda, want
/// <= 5.5" for 3 pixels per fringe; at 10" the same CLEAN spends 3000 iterations and ends
/// at 1.5x thermal with a halo of +-2 Jy components around the source).
///
/// Measured (5" cells, 2026-12-03): major-cycle start peaks 19.5, 3.66, 0.70, 0.141,
/// 0.0279, 0.0293, 0.0074 Jy/beam, ending at 0.0059 after 1803 iterations (near the two-term
/// floor, ~0.02 Jy, and the 3-sigma threshold the peak wanders); residual rms 1.02x
/// thermal; fluxes (components within 4 pixels) -0.06 % and -1.3 %; spectral index -0.788
/// (bright) and +0.132 (flat source).
/// In 10" cells: peaks 19.5, 3.89, 0.77, 0.156, 0.032, 0.0101, 0.0075, niter 5000 spent,
/// 1.30x thermal, fluxes -1.3 % and -2.2 %, indices -0.775 and +0.026.
#[test]
fn two_terms_converge_on_a_steep_spectrum_source() {
    steep_spectrum_source(512, 5.0, true, 1.5, 0.02);
}

/// The same sky in the demo's 10" cells (the longest baselines past the grid's Nyquist
/// edge, 10.3 k lambda: those visibilities are neither imaged nor in the PSF).
#[test]
fn two_terms_converge_in_coarse_cells() {
    steep_spectrum_source(256, 10.0, false, 2.0, 0.05);
}

/// `finishes`: CLEAN reaches its threshold within niter 5000; `max_rms`: the residual's
/// largest rms over thermal; `flux_tol`: the largest relative flux error.
fn steep_spectrum_source(n: usize, cell_arcsec: f64, finishes: bool, max_rms: f64, flux_tol: f64) {
    let (mut g, centre) = group(2);
    let eop = EarthOrientation::none();
    let (uvw, dw) = rephase_geometry(&g, centre, &eop);
    let cell = (cell_arcsec / 3600.0).to_radians();
    let nu0 = 0.5 * (g.freqs[0] + g.freqs[g.freqs.len() - 1]);
    // Pixel (x, y) is at l = (n/2 - x) cell, m = (y - n/2) cell; the sources at the same
    // sky positions whatever the cell.
    let h = n as f64 / 2.0;
    let k = 5.0 / cell_arcsec;
    let srcs = [
        (h - 30.33 * k, h + 21.7 * k, 20.0, -0.8, 0.1),
        (h + 150.0 * k, h - 160.0 * k, 0.5, 0.0, 0.4),
    ];
    for &(x, y, s, a, _) in &srcs {
        add_source(
            &mut g,
            &uvw,
            &dw,
            (h - x) * cell,
            (y - h) * cell,
            s,
            nu0,
            a,
            0.0,
        );
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    for v in g.vis.iter_mut() {
        *v += Complex32::new(noise.sample(&mut rng), noise.sample(&mut rng));
    }
    let spec = GridSpec::new(n, cell, 1e-6);
    let g_freqs = g.freqs.clone();
    let out = clean_group(g, centre, &spec, 2, 5000);
    let rms = (out.residual.iter().map(|v| v * v).sum::<f64>() / (n * n) as f64).sqrt();
    println!(
        "major-cycle start peaks {:?}, {} iterations",
        out.peaks, out.iterations
    );
    println!(
        "residual rms {rms:.5} Jy/beam = {:.2}x thermal {:.5}",
        rms / out.thermal,
        out.thermal
    );
    // Converging: every major cycle that starts above 10x thermal and above twice the
    // two-term model's own floor more than halves the peak (measured: ~5x per cycle, mgain
    // 0.8); near the 3-sigma threshold or that floor the peak wanders. The floor: a power
    // law's curvature, which two terms leave out, S |alpha (alpha - 1) / 2| x^2 averaged
    // over the band (x = (nu - nu0) / nu0): ~0.02 Jy for the 20 Jy source.
    let x2 = g_freqs
        .iter()
        .map(|f| ((f - nu0) / nu0).powi(2))
        .sum::<f64>()
        / g_freqs.len() as f64;
    let floor: f64 = srcs
        .iter()
        .map(|&(_, _, s, a, _)| s * (a * (a - 1.0) / 2.0).abs() * x2)
        .sum();
    for w in out.peaks.windows(2) {
        if w[0] > (10.0 * out.thermal).max(2.0 * floor) {
            assert!(w[1] < 0.5 * w[0], "the residual peak grew: {:?}", out.peaks);
        }
    }
    assert!(out.peaks.len() <= 9, "{} major cycles", out.peaks.len() - 1);
    if finishes {
        assert!(out.iterations < 5000, "CLEAN ran out of iterations");
    }
    assert!(
        rms < max_rms * out.thermal,
        "residual {:.2}x thermal",
        rms / out.thermal
    );
    for &(x, y, s, a, tol) in &srcs {
        // The components of the source (a source between pixels takes several).
        let near = |img: &[f64]| -> f64 {
            let (x0, y0) = (x.round() as usize, y.round() as usize);
            (y0 - 4..=y0 + 4)
                .flat_map(|yy| (x0 - 4..=x0 + 4).map(move |xx| yy * n + xx))
                .map(|i| img[i])
                .sum()
        };
        let (a0, a1) = (near(&out.models[0]), near(&out.models[1]));
        println!(
            "source {s} Jy alpha {a}: model flux {a0:.4} ({:+.3} %), alpha {:.4}",
            100.0 * (a0 / s - 1.0),
            a1 / a0
        );
        assert!((a0 / s - 1.0).abs() < flux_tol, "flux {a0} vs {s}");
        assert!(
            (a1 / a0 - a).abs() < tol,
            "spectral index {} vs {a}",
            a1 / a0
        );
    }
}

/// Three spectral terms take a curved spectrum that two cannot: 20 Jy with spectral index
/// -0.8 and curvature -12 (ln S quadratic in ln nu: over DSA-110's band the edges fall ~5 %
/// below the power law, a peaked spectrum), 5" cells, thermal noise as above. Measured: two
/// terms end at 1.49x thermal with the flux at nu0 -2.1 %, three at 1.18x and -0.17 %.
#[test]
fn three_terms_take_a_curved_spectrum() {
    let (mut g, centre) = group(2);
    let eop = EarthOrientation::none();
    let (uvw, dw) = rephase_geometry(&g, centre, &eop);
    let n = 256;
    let cell = (5.0f64 / 3600.0).to_radians();
    let nu0 = 0.5 * (g.freqs[0] + g.freqs[g.freqs.len() - 1]);
    let h = n as f64 / 2.0;
    let (x, y) = (h - 30.33, h + 21.7);
    add_source(
        &mut g,
        &uvw,
        &dw,
        (h - x) * cell,
        (y - h) * cell,
        20.0,
        nu0,
        -0.8,
        -12.0,
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    for v in g.vis.iter_mut() {
        *v += Complex32::new(noise.sample(&mut rng), noise.sample(&mut rng));
    }
    let spec = GridSpec::new(n, cell, 1e-6);
    let run = |nterms: usize| {
        let out = clean_group(g.clone(), centre, &spec, nterms, 5000);
        let rms = (out.residual.iter().map(|v| v * v).sum::<f64>() / (n * n) as f64).sqrt();
        let (x0, y0) = (x.round() as usize, y.round() as usize);
        let near = |img: &[f64]| -> f64 {
            (y0 - 4..=y0 + 4)
                .flat_map(|yy| (x0 - 4..=x0 + 4).map(move |xx| yy * n + xx))
                .map(|i| img[i])
                .sum()
        };
        let (flux, mfs) = (near(&out.models[0]), near(&out.mfs));
        println!(
            "nterms {nterms}: peaks {:?}, {} iterations, residual {:.2}x thermal, flux {flux:.4}, band-averaged {mfs:.4} at {:?} Hz",
            out.peaks,
            out.iterations,
            rms / out.thermal,
            out.mfs_hz
        );
        (rms / out.thermal, flux, mfs, out.mfs_hz)
    };
    let (_, two, _, _) = run(2);
    let (rms, three, mfs, mfs_hz) = run(3);
    assert!(rms < 1.5, "three terms: {rms:.2}x thermal");
    assert!(
        (three / 20.0 - 1.0).abs() < 0.005,
        "three terms: flux {three}"
    );
    assert!((two / 20.0 - 1.0).abs() > 0.01, "two terms: flux {two}");
    // The band-averaged model: the spectrum's mean over the band's channels (every channel
    // holds the same visibilities, so the imaging weights differ between channels only
    // through the uv density), 1.6 % below the flux at nu0 for this curvature.
    let spectrum = |f: f64| {
        let x = (f / nu0).ln();
        20.0 * (-0.8 * x - 12.0 * x * x).exp()
    };
    let (freqs, _) = group(2);
    let mean = freqs.freqs.iter().map(|&f| spectrum(f)).sum::<f64>() / freqs.freqs.len() as f64;
    println!(
        "band mean of the spectrum {mean:.4} Jy ({:+.2} % from nu0)",
        100.0 * (mean / 20.0 - 1.0)
    );
    assert!(
        (mfs / mean - 1.0).abs() < 0.004,
        "band-averaged {mfs} vs {mean}"
    );
    let fmean = freqs.freqs.iter().sum::<f64>() / freqs.freqs.len() as f64;
    let mfs_hz = mfs_hz.expect("three terms measure the band's mean frequency");
    assert!((mfs_hz / fmean - 1.0).abs() < 2e-3, "{mfs_hz} vs {fmean}");
}

/// The PSF at twice the image's size holds the same visibilities as the image: its centre
/// is the PSF gridded at the image's size, also where baselines reach past the grid's
/// Nyquist edge (10" cells: the edge is at 10.3 k lambda, the longest baselines 12.6 k
/// lambda). With each grid's own edge, the larger one kept a band of ~2.5 uv cells at the
/// edge that the residual images lack (a ripple at the Nyquist frequency in the PSF, which
/// the minor cycles then "cleaned").
#[test]
fn doubled_psf_holds_the_images_visibilities() {
    let (g, centre) = group(2);
    let eop = EarthOrientation::none();
    let n = 256;
    let spec = GridSpec::new(n, (10.0f64 / 3600.0).to_radians(), 1e-6);
    let mut held = HeldGroup::new(g, centre, &eop);
    let mut gp = GridPair::new(spec);
    held.grid(&mut gp, &Cpu);
    let psf = gp.finish_f64().unwrap().1;
    let mut worst = |spec2: GridSpec| -> f64 {
        let mut gp2 = GridPair::spectral(spec2, 1.4e9, None, Some(0));
        held.grid(&mut gp2, &Cpu);
        let psf2 = contimg::imaging::clean::central(&gp2.finish_f64().unwrap().1, n);
        psf.iter()
            .zip(&psf2)
            .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()))
    };
    let same = worst(spec.doubled());
    // The larger grid's own edge, as before.
    let mut own = spec.doubled();
    own.edge_n_grid = own.n_grid;
    let own = worst(own);
    println!(
        "largest |PSF(n) - centre of PSF(2n)|: {same:.2e} (with the 2n grid's own edge {own:.2e})"
    );
    assert!(same < 1e-4, "{same}");
    assert!(own > 10.0 * same, "the test sees the edge: {own} vs {same}");
}

/// Major cycles before the last re-grid at `imaging.cycle_epsilon` (here a coarse 1e-2),
/// the last at `epsilon` (1e-5): the final residual is exactly the residual visibilities
/// gridded at `epsilon`, and the CLEAN reaches the same model and residual as with
/// `epsilon` throughout. Measured (2026-12-03): 6 major cycles either way; the final
/// residual equal bit for bit to the gridding at epsilon (the one at cycle_epsilon 4.6e-5
/// Jy/beam away); residual rms 0.948x and 0.941x thermal; model flux 20.5016 and 20.5022
/// Jy.
#[test]
fn only_the_final_residual_needs_epsilon() {
    let n = 512;
    let cell = (5.0f64 / 3600.0).to_radians();
    let run = |cycle_epsilon: f64| {
        let (mut g, centre) = group(2);
        let eop = EarthOrientation::none();
        let (uvw, dw) = rephase_geometry(&g, centre, &eop);
        let nu0 = 0.5 * (g.freqs[0] + g.freqs[g.freqs.len() - 1]);
        add_source(
            &mut g,
            &uvw,
            &dw,
            20.3 * cell,
            31.6 * cell,
            20.0,
            nu0,
            0.0,
            0.0,
        );
        add_source(
            &mut g,
            &uvw,
            &dw,
            -60.0 * cell,
            45.0 * cell,
            0.5,
            nu0,
            0.0,
            0.0,
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let noise = Normal::new(0.0f32, 1.0).unwrap();
        for v in g.vis.iter_mut() {
            *v += Complex32::new(noise.sample(&mut rng), noise.sample(&mut rng));
        }
        let spec = GridSpec::new(n, cell, 1e-5);
        let params = ImagingConfig {
            niter: 5000,
            cycle_epsilon,
            ..ImagingConfig::default()
        };
        let (out, mut held) = clean_group_with(g, centre, &spec, 1, &params);
        let mut regrid = |eps: f64| {
            let mut gp = GridPair::new(GridSpec::new(n, cell, eps));
            held[0].grid(&mut gp, &Cpu);
            gp.finish_f64().unwrap().0
        };
        (out, regrid(1e-5), regrid(1e-2))
    };
    let worst = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
    };
    let rms = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
    let flux = |m: &[f64]| m.iter().sum::<f64>();
    let (coarse, at_eps, at_cycle) = run(1e-2);
    let (fine, _, _) = run(0.0);
    let same = worst(&coarse.residual, &at_eps);
    let differs = worst(&at_cycle, &at_eps);
    println!(
        "{} and {} major cycles; final residual vs a gridding at epsilon {same:.2e}, at cycle_epsilon {differs:.2e}",
        coarse.major_cycles, fine.major_cycles
    );
    println!(
        "residual rms {:.3}x / {:.3}x thermal; model flux {:.5} / {:.5} Jy",
        rms(&coarse.residual) / coarse.thermal,
        rms(&fine.residual) / fine.thermal,
        flux(&coarse.models[0]),
        flux(&fine.models[0])
    );
    assert!(
        coarse.major_cycles >= 3,
        "re-griddings at cycle_epsilon took place"
    );
    assert!(same == 0.0, "{same} vs {differs}");
    assert!(differs > 1e-6, "the coarse gridding differs: {differs}");
    let (rc, rf) = (rms(&coarse.residual), rms(&fine.residual));
    assert!((rc / rf - 1.0).abs() < 0.02, "residual rms {rc} vs {rf}");
    let (fc, ff) = (flux(&coarse.models[0]), flux(&fine.models[0]));
    assert!((fc / ff - 1.0).abs() < 1e-4, "model flux {fc} vs {ff}");
}
