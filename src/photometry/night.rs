//! Forced photometry of a night's tiles: the last step of `contimg run` (rank 0) and the
//! measurements `contimg photometry` joins into light curves.
//!
//! One measurement per source per tile (the `*.pbcor.fits` images, else `*.restored.fits`);
//! the night's mosaic is never measured, so a tile and the mosaic made from it do not enter
//! a light curve as two epochs. Each error is the local noise: the robust rms of the tile's
//! residual image in a box of +-`LOCAL_BEAMS` restoring-beam FWHMs about the source, divided
//! by the primary beam there when the flux is measured in the pbcor image.

use crate::photometry::{Image, Measurement, PhotometryError, Target};
use crate::primitives::stats::median_and_mad_sigma;
use std::path::{Path, PathBuf};

/// Half-width of the local-noise box, in restoring-beam FWHMs.
pub const LOCAL_BEAMS: f64 = 10.0;

/// The tiles of a night (`images/*.pbcor.fits`, else `images/*.restored.fits`), sorted by
/// name (UTC).
pub fn tile_images(night: &Path) -> Result<Vec<PathBuf>, PhotometryError> {
    let dir = night.join("images");
    let all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|source| PhotometryError::Io {
            path: dir.clone(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let pick = |suffix: &str| {
        let mut v: Vec<PathBuf> = all
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .cloned()
            .collect();
        v.sort();
        v
    };
    let pbcor = pick(".pbcor.fits");
    Ok(if pbcor.is_empty() {
        pick(".restored.fits")
    } else {
        pbcor
    })
}

/// `images/<name>.pbcor.fits` -> `images/<name>.<product>.fits`.
fn sibling(tile: &Path, product: &str) -> PathBuf {
    let s = tile.to_string_lossy();
    let stem = s
        .strip_suffix(".pbcor.fits")
        .or_else(|| s.strip_suffix(".restored.fits"))
        .unwrap_or(&s);
    PathBuf::from(format!("{stem}.{product}.fits"))
}

/// Robust rms of the finite pixels of `img` within +-`half` pixels of (x, y) (0-based), or
/// None when fewer than 25 pixels are there.
pub fn local_rms(img: &Image, x: f64, y: f64, half: usize) -> Option<f64> {
    let (xi, yi) = (x.round() as i64, y.round() as i64);
    let h = half as i64;
    let mut v = Vec::with_capacity((2 * half + 1).pow(2));
    for yy in (yi - h).max(0)..=(yi + h).min(img.ny as i64 - 1) {
        for xx in (xi - h).max(0)..=(xi + h).min(img.nx as i64 - 1) {
            let p = img.data[yy as usize * img.nx + xx as usize];
            if p.is_finite() {
                v.push(p as f64);
            }
        }
    }
    if v.len() < 25 {
        return None;
    }
    median_and_mad_sigma(&v).map(|m| m.1).filter(|s| *s > 0.0)
}

/// Measures every target inside one tile. The error of each measurement is the residual's
/// local robust rms (over the primary beam there for a pbcor tile); a tile without its
/// residual (or pbcor without its pb) takes the local robust rms of the tile itself.
pub fn measure_tile(tile: &Path, targets: &[Target]) -> Result<Vec<Measurement>, PhotometryError> {
    let img = Image::read(tile)?;
    let pbcor = tile.to_string_lossy().ends_with(".pbcor.fits");
    let residual = Image::read(&sibling(tile, "residual")).ok();
    let pb = if pbcor {
        Image::read(&sibling(tile, "pb")).ok()
    } else {
        None
    };
    // The residual is in the tile's units when the tile is restored, or with its pb.
    let residual = residual.filter(|_| !pbcor || pb.is_some());
    let cell = img.cdelt[1].abs();
    let half = if img.beam[0] > 0.0 {
        ((LOCAL_BEAMS * img.beam[0] / cell).ceil() as usize).max(8)
    } else {
        32
    };
    let fallback = img.rms();
    let mut out = Vec::new();
    for t in targets {
        let Some((x, y)) = img.world_to_pixel(t.ra_deg, t.dec_deg) else {
            continue;
        };
        let err = match (&residual, &pb) {
            (Some(r), Some(p)) => match p.sample(x, y) {
                Some(b) if b > 0.0 => local_rms(r, x, y, half).map(|n| n / b),
                _ => continue,
            },
            (Some(r), None) => local_rms(r, x, y, half),
            (None, _) => local_rms(&img, x, y, half),
        }
        .unwrap_or(fallback);
        if let Some((flux, _)) = img.forced(t.ra_deg, t.dec_deg, err) {
            out.push(Measurement {
                source: t.name.clone(),
                image: tile.into(),
                date_obs: img.date_obs.clone(),
                flux_jy: flux,
                err_jy: err,
            });
        }
    }
    Ok(out)
}

/// Every target in every tile of a night (not its mosaic), in order of the tiles.
pub fn measure_night(
    night: &Path,
    targets: &[Target],
) -> Result<Vec<Measurement>, PhotometryError> {
    let mut out = Vec::new();
    for tile in tile_images(night)? {
        out.extend(measure_tile(&tile, targets)?);
    }
    Ok(out)
}

/// The photometry catalogue: a name,ra_deg,dec_deg CSV, or the built-in VLA calibrator list.
pub fn targets(catalog: Option<&Path>) -> Result<Vec<Target>, PhotometryError> {
    match catalog {
        Some(p) => crate::photometry::read_catalog(p),
        None => Ok(crate::calibrate::catalog::load_calibrators(None)?
            .iter()
            .map(|c| Target {
                name: c.name.clone(),
                ra_deg: c.ra_rad.to_degrees(),
                dec_deg: c.dec_rad.to_degrees(),
            })
            .collect()),
    }
}

#[derive(serde::Serialize)]
struct Row<'a> {
    source: &'a str,
    ra_deg: f64,
    dec_deg: f64,
    date_obs: &'a str,
    flux_jy: f64,
    err_jy: f64,
    image: String,
}

/// Writes the measurements as CSV (source,ra_deg,dec_deg,date_obs,flux_jy,err_jy,image),
/// atomically.
pub fn write_csv(path: &Path, ms: &[Measurement], targets: &[Target]) -> std::io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    // The header even for a night without measurements.
    w.write_record([
        "source", "ra_deg", "dec_deg", "date_obs", "flux_jy", "err_jy", "image",
    ])
    .map_err(std::io::Error::other)?;
    for m in ms {
        let (ra, dec) = targets
            .iter()
            .find(|t| t.name == m.source)
            .map(|t| (t.ra_deg, t.dec_deg))
            .unwrap_or((f64::NAN, f64::NAN));
        w.serialize(Row {
            source: &m.source,
            ra_deg: ra,
            dec_deg: dec,
            date_obs: &m.date_obs,
            flux_jy: m.flux_jy,
            err_jy: m.err_jy,
            image: m.image.display().to_string(),
        })
        .map_err(std::io::Error::other)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    crate::products::write_atomic(path, &bytes)
}

/// The run's photometry step: the night's tiles measured at the catalogue's positions into
/// `<out>/photometry/night.csv`. Returns the number of measurements.
pub fn photometry_of_run(out: &Path, catalog: Option<&Path>) -> Result<usize, PhotometryError> {
    let t = targets(catalog)?;
    let ms = measure_night(out, &t)?;
    let path = out.join("photometry").join("night.csv");
    write_csv(&path, &ms, &t).map_err(|source| PhotometryError::Io { path, source })?;
    Ok(ms.len())
}
