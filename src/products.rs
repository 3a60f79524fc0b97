//! Products written atomically (temporary name, then rename): FITS images with a
//! WSClean-like WCS, and small text files.

use fitsio::images::{ImageDescription, ImageType};
use fitsio::FitsFile;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    #[error("{path}: cannot write FITS ({source})")]
    Fits { path: PathBuf, source: fitsio::errors::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Writes bytes to `path` via `path.part` and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = part_path(path);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Metadata of an image plane.
#[derive(Debug, Clone)]
pub struct ImageMeta {
    pub ra_deg: f64,
    pub dec_deg: f64,
    pub cell_deg: f64,
    pub freq_hz: f64,
    pub bandwidth_hz: f64,
    pub date_obs: String,
    pub bunit: &'static str,
    pub object: String,
    /// Restoring beam (BMAJ, BMIN in deg, BPA in deg).
    pub beam_deg: Option<[f64; 3]>,
    pub history: Vec<String>,
}

/// The celestial axes of a plane: projection code ("SIN", "CAR"), FITS CRPIX (1-based),
/// CDELT and CRVAL (deg) per axis, and the size.
#[derive(Debug, Clone, PartialEq)]
pub struct Axes {
    pub code: &'static str,
    pub nx: usize,
    pub ny: usize,
    pub crpix: [f64; 2],
    pub cdelt: [f64; 2],
    pub crval: [f64; 2],
}

/// Writes an n x n image (row-major, y then x; x = RA axis, RA increasing to the left)
/// as a 4-D FITS cube (RA---SIN, DEC--SIN, FREQ, STOKES=I).
pub fn write_fits_image(path: &Path, n: usize, data: &[f32], m: &ImageMeta) -> Result<(), ProductError> {
    let centre = (n / 2 + 1) as f64;
    let axes = Axes { code: "SIN", nx: n, ny: n, crpix: [centre, centre], cdelt: [-m.cell_deg, m.cell_deg], crval: [m.ra_deg, m.dec_deg] };
    write_fits_plane(path, data, m, &axes)
}

/// Writes a plane with the given celestial axes (FREQ and STOKES=I axes of length 1 added).
pub fn write_fits_plane(path: &Path, data: &[f32], m: &ImageMeta, a: &Axes) -> Result<(), ProductError> {
    let (nx, ny) = (a.nx, a.ny);
    assert_eq!(data.len(), nx * ny);
    let tmp = part_path(path);
    let ferr = |source| ProductError::Fits { path: path.into(), source };
    let _ = std::fs::remove_file(&tmp);
    {
        let desc = ImageDescription { data_type: ImageType::Float, dimensions: &[1, 1, ny, nx] };
        let mut f = FitsFile::create(&tmp).with_custom_primary(&desc).open().map_err(ferr)?;
        let hdu = f.primary_hdu().map_err(ferr)?;
        let keys_f: [(&str, f64); 14] = [
            ("CRPIX1", a.crpix[0]),
            ("CDELT1", a.cdelt[0]),
            ("CRVAL1", a.crval[0]),
            ("CRPIX2", a.crpix[1]),
            ("CDELT2", a.cdelt[1]),
            ("CRVAL2", a.crval[1]),
            ("CRPIX3", 1.0),
            ("CDELT3", m.bandwidth_hz),
            ("CRVAL3", m.freq_hz),
            ("CRPIX4", 1.0),
            ("CDELT4", 1.0),
            ("CRVAL4", 1.0),
            ("OBSRA", m.ra_deg),
            ("OBSDEC", m.dec_deg),
        ];
        let (c1, c2) = (format!("RA---{}", a.code), format!("DEC--{}", a.code));
        for (k, v) in [("CTYPE1", c1.as_str()), ("CUNIT1", "deg"), ("CTYPE2", c2.as_str()), ("CUNIT2", "deg"), ("CTYPE3", "FREQ"), ("CUNIT3", "Hz"), ("CTYPE4", "STOKES"), ("CUNIT4", "")] {
            hdu.write_key(&mut f, k, v).map_err(ferr)?;
        }
        for (k, v) in keys_f {
            hdu.write_key(&mut f, k, v).map_err(ferr)?;
        }
        hdu.write_key(&mut f, "EQUINOX", 2000.0).map_err(ferr)?;
        if let Some([bmaj, bmin, bpa]) = m.beam_deg {
            hdu.write_key(&mut f, "BMAJ", bmaj).map_err(ferr)?;
            hdu.write_key(&mut f, "BMIN", bmin).map_err(ferr)?;
            hdu.write_key(&mut f, "BPA", bpa).map_err(ferr)?;
        }
        hdu.write_key(&mut f, "RADESYS", "ICRS").map_err(ferr)?;
        hdu.write_key(&mut f, "SPECSYS", "TOPOCENT").map_err(ferr)?;
        hdu.write_key(&mut f, "BUNIT", m.bunit).map_err(ferr)?;
        hdu.write_key(&mut f, "DATE-OBS", m.date_obs.as_str()).map_err(ferr)?;
        hdu.write_key(&mut f, "TELESCOP", "DSA-110").map_err(ferr)?;
        hdu.write_key(&mut f, "INSTRUME", "DSA").map_err(ferr)?;
        hdu.write_key(&mut f, "OBJECT", m.object.as_str()).map_err(ferr)?;
        hdu.write_key(&mut f, "ORIGIN", concat!("contimg ", env!("CARGO_PKG_VERSION"))).map_err(ferr)?;
        for h in &m.history {
            let line: String = h.chars().take(68).collect();
            hdu.write_key(&mut f, "HISTORY", line.as_str()).map_err(ferr)?;
        }
        hdu.write_image(&mut f, data).map_err(ferr)?;
    }
    std::fs::rename(&tmp, path).map_err(|source| ProductError::Io { path: path.into(), source })
}
