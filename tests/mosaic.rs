//! A night's mosaic: a source in the overlap of two consecutive tiles has the same forced
//! flux in the mosaic as in each tile (2 %), through the mosaic's CAR WCS.

mod common;
use common::*;
use contimg::photometry::Image;
use contimg::simulate::Truth;

#[test]
fn source_in_the_overlap_keeps_its_flux_in_the_mosaic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = small_config(d);
    c.simulate.n_groups = 2;
    c.simulate.n_antennas = 48;
    c.simulate.n_times = 24;
    c.simulate.noise.enabled = true;
    // Half-way (on the sky) between the two tiles' centres, which are ~0.72 deg apart.
    c.simulate.sources = vec![source(0.36, 0.15, 3.0)];
    c.imaging.npix = 512;
    c.imaging.cell_arcsec = 20.0;
    c.imaging.niter = 1000;
    let cfg = simulate_night(&c, d);
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = run_bin(&["mosaic", c.output.dir.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    let truth = Truth::load(&c.input.dir).unwrap();
    let s = &truth.sources[0];
    let mut tiles: Vec<_> = std::fs::read_dir(c.output.dir.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".pbcor.fits"))
        .collect();
    tiles.sort();
    assert_eq!(tiles.len(), 2);
    let flux = |p: &std::path::Path| {
        let img = Image::read(p).unwrap();
        let rms = img.rms();
        img.forced(s.ra_deg, s.dec_deg, rms).unwrap().0
    };
    let t: Vec<f64> = tiles.iter().map(|p| flux(p)).collect();
    let m = flux(&c.output.dir.join("mosaic/mosaic.fits"));
    println!("tiles {t:?}, mosaic {m:.4} (intrinsic {})", s.flux_jy);
    for x in &t {
        assert!((m / x - 1.0).abs() < 0.02, "mosaic {m} vs tile {x}");
    }
    let rms = Image::read(&c.output.dir.join("mosaic/mosaic.rms.fits")).unwrap();
    let (x, y) = rms.world_to_pixel(s.ra_deg, s.dec_deg).unwrap();
    assert!(rms.sample(x, y).unwrap() > 0.0);
}
