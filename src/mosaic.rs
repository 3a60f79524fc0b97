//! A night's mosaic: every tile's primary-beam-corrected image on one plate carree (CAR)
//! grid, combined with weights PB^2 / sigma^2 (sigma the tile's residual rms, so sigma / PB
//! is the pbcor noise), down to a PB limit. RA offsets are taken about the tiles' circular
//! mean RA, so a night across RA = 0 is one continuous mosaic. Writes the mosaic, its
//! weight map (sum of PB^2 / sigma^2) and its rms map (1 / sqrt(weight)). Tiles are
//! resampled by cubic convolution (bilinear would smooth a 3-pixel beam by ~3 %).

use crate::photometry::Image;
use crate::products::{write_fits_plane, Axes, ImageMeta, ProductError};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Why a mosaic could not be made (a damaged tile is left out with a warning instead).
#[derive(Debug, thiserror::Error)]
pub enum MosaicError {
    #[error("{}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no tiles (images/*.pbcor.fits with .pb and .residual) to mosaic", night.display())]
    NoTiles { night: PathBuf },
    #[error("{}: mosaic of {nx} x {ny} pixels is too large", night.display())]
    TooLarge {
        night: PathBuf,
        nx: usize,
        ny: usize,
    },
    #[error(transparent)]
    Write(#[from] ProductError),
}

struct Tile {
    pbcor: Image,
    pb: Image,
    sigma: f64,
}

pub struct MosaicSummary {
    pub tiles: usize,
    pub nx: usize,
    pub ny: usize,
    pub products: Vec<PathBuf>,
}

fn robust_rms(img: &Image) -> f64 {
    let v: Vec<f64> = img
        .data
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| x as f64)
        .collect();
    crate::primitives::stats::median_and_mad_sigma(&v)
        .map(|x| x.1)
        .unwrap_or(f64::NAN)
}

fn tiles(images: &Path) -> Result<Vec<Tile>, MosaicError> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(images)
        .map_err(|source| MosaicError::Dir {
            path: images.into(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".pbcor.fits"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        let stem = p
            .to_string_lossy()
            .trim_end_matches(".pbcor.fits")
            .to_string();
        // A damaged tile is left out with a warning naming it; the others are mosaicked.
        let (pbcor, pb) = match Image::read(&p)
            .and_then(|a| Image::read(Path::new(&format!("{stem}.pb.fits"))).map(|b| (a, b)))
        {
            Ok(x) => x,
            Err(e) => {
                log::warn!("mosaic: tile left out: {e}");
                continue;
            }
        };
        if pb.nx != pbcor.nx || pb.ny != pbcor.ny {
            log::warn!(
                "mosaic: tile left out: {stem}.pb.fits is {} x {}, the pbcor image {} x {}",
                pb.nx,
                pb.ny,
                pbcor.nx,
                pbcor.ny
            );
            continue;
        }
        let residual = Image::read(Path::new(&format!("{stem}.residual.fits"))).ok();
        let sigma = residual
            .as_ref()
            .map(robust_rms)
            .unwrap_or_else(|| robust_rms(&pbcor));
        if sigma > 0.0 && sigma.is_finite() {
            out.push(Tile { pbcor, pb, sigma });
        }
    }
    Ok(out)
}

/// The mosaic's grid: plate carree about the tiles' circular mean RA (CRVAL = (ra0, 0)),
/// cells square at their mean Dec, covering the union of the tiles' extents.
struct Grid {
    axes: Axes,
    ra0: f64,
    dec0: f64,
    cell: f64,
    /// Per tile: its extent (wrapped RA offset from ra0 lo, hi; Dec lo, hi), deg.
    extents: Vec<[f64; 4]>,
}

/// Builds `<out_dir>/mosaic.{fits,weight.fits,rms.fits}` from `<night>/images/*.pbcor.fits`.
pub fn build(night: &Path, out_dir: &Path, pblimit: f64) -> Result<MosaicSummary, MosaicError> {
    let tiles = tiles(&night.join("images"))?;
    if tiles.is_empty() {
        return Err(MosaicError::NoTiles {
            night: night.into(),
        });
    }
    let grid = grid(&tiles);
    let (nx, ny) = (grid.axes.nx, grid.axes.ny);
    if nx * ny > 400_000_000 {
        return Err(MosaicError::TooLarge {
            night: night.into(),
            nx,
            ny,
        });
    }
    let (num, wsum) = combine(&tiles, &grid, pblimit);
    let mosaic: Vec<f32> = num
        .iter()
        .zip(&wsum)
        .map(|(n, w)| if *w > 0.0 { (n / w) as f32 } else { f32::NAN })
        .collect();
    let weight: Vec<f32> = wsum.iter().map(|&w| w as f32).collect();
    let rms: Vec<f32> = wsum
        .iter()
        .map(|&w| {
            if w > 0.0 {
                (1.0 / w.sqrt()) as f32
            } else {
                f32::NAN
            }
        })
        .collect();
    let products = write(
        &tiles,
        &grid,
        out_dir,
        pblimit,
        [&mosaic[..], &weight[..], &rms[..]],
    )?;
    Ok(MosaicSummary {
        tiles: tiles.len(),
        nx,
        ny,
        products,
    })
}

/// The mosaic's grid for `tiles` (not empty).
fn grid(tiles: &[Tile]) -> Grid {
    // Reference: circular mean RA, mean Dec of the tile centres; cells square at that Dec.
    let (s, c) = tiles.iter().fold((0.0, 0.0), |a, t| {
        (
            a.0 + t.pbcor.crval[0].to_radians().sin(),
            a.1 + t.pbcor.crval[0].to_radians().cos(),
        )
    });
    let ra0 = s.atan2(c).to_degrees().rem_euclid(360.0);
    let dec0 = tiles.iter().map(|t| t.pbcor.crval[1]).sum::<f64>() / tiles.len() as f64;
    let cell = tiles[0].pbcor.cdelt[1].abs();
    let wrap = |ra: f64| (ra - ra0 + 540.0).rem_euclid(360.0) - 180.0;
    // Each tile's extent (wrapped RA offset, Dec) from its edge pixels; the mosaic's is their union.
    let extent = |t: &Tile| {
        let (nx, ny) = (t.pbcor.nx as f64, t.pbcor.ny as f64);
        let mut e = [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for k in 0..=64 {
            let f = k as f64 / 64.0;
            for (x, y) in [
                (f * (nx - 1.0), 0.0),
                (f * (nx - 1.0), ny - 1.0),
                (0.0, f * (ny - 1.0)),
                (nx - 1.0, f * (ny - 1.0)),
            ] {
                if let Some((ra, dec)) = t.pbcor.pixel_to_world(x, y) {
                    e = [
                        e[0].min(wrap(ra)),
                        e[1].max(wrap(ra)),
                        e[2].min(dec),
                        e[3].max(dec),
                    ];
                }
            }
        }
        e
    };
    let extents: Vec<[f64; 4]> = tiles.iter().map(extent).collect();
    let x0 = extents.iter().map(|e| e[0]).fold(f64::INFINITY, f64::min);
    let x1 = extents
        .iter()
        .map(|e| e[1])
        .fold(f64::NEG_INFINITY, f64::max);
    let y0 = extents.iter().map(|e| e[2]).fold(f64::INFINITY, f64::min);
    let y1 = extents
        .iter()
        .map(|e| e[3])
        .fold(f64::NEG_INFINITY, f64::max);
    let cdelt1 = -cell / dec0.to_radians().cos();
    let nx = ((x1 - x0) / cdelt1.abs()).ceil() as usize + 1;
    let ny = ((y1 - y0) / cell).ceil() as usize + 1;
    // CAR with CRVAL = (ra0, 0): pixel x has RA ra0 + (x + 1 - crpix1) cdelt1, y has Dec (y + 1 - crpix2) cdelt2.
    let axes = Axes {
        code: "CAR",
        nx,
        ny,
        crpix: [1.0 + x1 / cdelt1.abs(), 1.0 - y0 / cell],
        cdelt: [cdelt1, cell],
        crval: [ra0, 0.0],
    };
    Grid {
        axes,
        ra0,
        dec0,
        cell,
        extents,
    }
}

/// Each tile's pb-corrected image resampled onto the grid and summed with weights
/// PB^2 / sigma^2 down to `pblimit`: (weighted sum, weight sum) per mosaic pixel.
fn combine(tiles: &[Tile], grid: &Grid, pblimit: f64) -> (Vec<f64>, Vec<f64>) {
    let (axes, ra0) = (&grid.axes, grid.ra0);
    let (nx, ny) = (axes.nx, axes.ny);
    let mut num = vec![0.0f64; nx * ny];
    let mut wsum = vec![0.0f64; nx * ny];
    // Tile by tile over its own footprint only (a night has hundreds of tiles), rows in parallel.
    for (t, e) in tiles.iter().zip(&grid.extents) {
        let px = |dra: f64| axes.crpix[0] - 1.0 + dra / axes.cdelt[0];
        let py = |dec: f64| axes.crpix[1] - 1.0 + dec / axes.cdelt[1];
        let (xa, xb) = (
            (px(e[1]).floor().max(0.0)) as usize,
            (px(e[0]).ceil() as usize).min(nx - 1),
        );
        let (ya, yb) = (
            (py(e[2]).floor().max(0.0)) as usize,
            (py(e[3]).ceil() as usize).min(ny - 1),
        );
        num[ya * nx..(yb + 1) * nx]
            .par_chunks_mut(nx)
            .zip(wsum[ya * nx..(yb + 1) * nx].par_chunks_mut(nx))
            .enumerate()
            .for_each(|(k, (nrow, wrow))| {
                let dec = (ya as f64 + k as f64 + 1.0 - axes.crpix[1]) * axes.cdelt[1];
                for x in xa..=xb {
                    let ra =
                        (ra0 + (x as f64 + 1.0 - axes.crpix[0]) * axes.cdelt[0]).rem_euclid(360.0);
                    let Some((tx, ty)) = t.pbcor.world_to_pixel(ra, dec) else {
                        continue;
                    };
                    let (Some(v), Some(pb)) = (t.pbcor.sample_cubic(tx, ty), t.pb.sample(tx, ty))
                    else {
                        continue;
                    };
                    if pb < pblimit {
                        continue;
                    }
                    let w = pb * pb / (t.sigma * t.sigma);
                    nrow[x] += w * v;
                    wrow[x] += w;
                }
            });
    }
    (num, wsum)
}

/// Writes the mosaic, its weight and its rms maps into `out_dir` (headers from the tiles:
/// the median restoring beam, the first tile's date).
fn write(
    tiles: &[Tile],
    grid: &Grid,
    out_dir: &Path,
    pblimit: f64,
    [mosaic, weight, rms]: [&[f32]; 3],
) -> Result<Vec<PathBuf>, MosaicError> {
    let (axes, ra0, dec0, cell) = (&grid.axes, grid.ra0, grid.dec0, grid.cell);
    // The median tile beam (tiles of one night have nearly the same).
    let mut beams: Vec<[f64; 3]> = tiles.iter().map(|t| t.pbcor.beam).collect();
    beams.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let beam = beams[beams.len() / 2];
    std::fs::create_dir_all(out_dir).map_err(|source| MosaicError::Dir {
        path: out_dir.into(),
        source,
    })?;
    let mut products = Vec::new();
    for (name, data, bunit) in [
        ("mosaic.fits", mosaic, "JY/BEAM"),
        ("mosaic.weight.fits", weight, ""),
        ("mosaic.rms.fits", rms, "JY/BEAM"),
    ] {
        let meta = ImageMeta {
            ra_deg: ra0,
            dec_deg: dec0,
            cell_deg: cell,
            freq_hz: 1.405e9,
            bandwidth_hz: 187.5e6,
            date_obs: tiles[0].pbcor.date_obs.clone(),
            bunit,
            object: format!("mosaic of {} tiles", tiles.len()),
            beam_deg: (beam[0] > 0.0).then_some(beam),
            history: vec![format!(
                "contimg mosaic: {} tiles, weights PB^2/rms^2, pblimit {pblimit}",
                tiles.len()
            )],
        };
        let path = out_dir.join(name);
        write_fits_plane(&path, data, &meta, axes)?;
        products.push(path);
    }
    Ok(products)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::products::write_fits_image;

    fn tile(dir: &Path, name: &str, ra: f64, value: f32) {
        let n = 64;
        let cell = 0.05;
        let meta = |bunit| ImageMeta {
            ra_deg: ra,
            dec_deg: 30.0,
            cell_deg: cell,
            freq_hz: 1.4e9,
            bandwidth_hz: 1e8,
            date_obs: "2026-03-14T00:00:00".into(),
            bunit,
            object: name.into(),
            beam_deg: Some([0.1, 0.1, 0.0]),
            history: vec![],
        };
        let pb: Vec<f32> = (0..n * n)
            .map(|i| {
                let (x, y) = ((i % n) as f32 - 32.0, (i / n) as f32 - 32.0);
                (-(x * x + y * y) / 400.0).exp()
            })
            .collect();
        let noise: Vec<f32> = (0..n * n)
            .map(|i| if i % 2 == 0 { 0.01 } else { -0.01 })
            .collect();
        write_fits_image(
            &dir.join(format!("{name}.pbcor.fits")),
            n,
            &vec![value; n * n],
            &meta("JY/BEAM"),
        )
        .unwrap();
        write_fits_image(&dir.join(format!("{name}.pb.fits")), n, &pb, &meta("")).unwrap();
        write_fits_image(
            &dir.join(format!("{name}.residual.fits")),
            n,
            &noise,
            &meta("JY/BEAM"),
        )
        .unwrap();
    }

    /// Two tiles either side of RA = 0 make one mosaic centred on RA 0, continuous across it,
    /// with the tiles' common value wherever either tile reaches.
    #[test]
    fn mosaic_across_ra_zero() {
        let d = tempfile::tempdir().unwrap();
        let images = d.path().join("images");
        std::fs::create_dir_all(&images).unwrap();
        tile(&images, "a", 359.2, 2.0);
        tile(&images, "b", 0.8, 2.0);
        let s = build(d.path(), &d.path().join("m"), 0.2).unwrap();
        assert_eq!(s.tiles, 2);
        let m = Image::read(&s.products[0]).unwrap();
        assert!(
            m.crval[0].abs() < 1e-9 || (m.crval[0] - 360.0).abs() < 1e-9,
            "reference RA {}",
            m.crval[0]
        );
        // About 1.6 deg + a tile's width (3.2 deg at dec 30 -> ~3.7 deg of RA), not ~360 deg.
        assert!(s.nx < 200, "{} pixels across", s.nx);
        for ra in [359.0, 359.8, 0.0, 0.2, 1.0] {
            let (x, y) = m.world_to_pixel(ra, 30.0).unwrap();
            let v = m.sample(x, y).unwrap();
            assert!((v - 2.0).abs() < 1e-5, "RA {ra}: {v}");
        }
        let w = Image::read(&s.products[1]).unwrap();
        let (x, y) = w.world_to_pixel(0.0, 30.0).unwrap();
        assert!(w.sample(x, y).unwrap() > 0.0);
    }
}
