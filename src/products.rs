//! Products written atomically (temporary name, then rename): FITS images with a
//! WSClean-like WCS, and small text files.

use fitsio::images::{ImageDescription, ImageType};
use fitsio::FitsFile;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    #[error("{path}: cannot write FITS ({source})")]
    Fits {
        path: PathBuf,
        source: fitsio::errors::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes bytes to `path` via `path.part` and a rename, so readers never see half a file.
/// The data are on disk (fsync) before the rename, the rename is made durable by syncing the
/// folder, and on any error the `.part` file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = part_path(path);
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        sync_dir(path);
    }
    res
}

/// Makes a rename into `path`'s folder durable (best effort: not every filesystem allows it).
fn sync_dir(path: &Path) {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(f) = std::fs::File::open(d) {
            let _ = f.sync_all();
        }
    }
}

fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Provenance written into every FITS this process makes: the telescope's geocentric
/// position (OBSGEO-X/Y/Z, m) and HISTORY lines (the contimg version and the settings that
/// shaped the images). Set once per run by the pipeline; OBSGEO defaults to DSA-110's site.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub obsgeo_m: Option<[f64; 3]>,
    pub history: Vec<String>,
}

static PROVENANCE: std::sync::RwLock<Option<Provenance>> = std::sync::RwLock::new(None);

pub fn set_provenance(p: Provenance) {
    *PROVENANCE.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
}

/// The telescope position of the data being imaged (geocentric, m).
pub fn set_obsgeo(ecef_m: [f64; 3]) {
    PROVENANCE
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Default::default)
        .obsgeo_m = Some(ecef_m);
}

/// The HISTORY lines for a run's settings: the version, then each named section as compact
/// JSON, cut into 68-character cards.
pub fn settings_history(sections: &[(&str, serde_json::Value)]) -> Vec<String> {
    let mut out = vec![format!("contimg {}", crate::VERSION)];
    for (name, v) in sections {
        let text: Vec<char> = format!("{name}: {v}").chars().collect();
        out.extend(text.chunks(68).map(|c| c.iter().collect::<String>()));
    }
    out
}

/// DSA-110's nominal site (OVRO; WGS84), for OBSGEO when the data gave none.
const DSA110_SITE_DEG: (f64, f64, f64) = (37.233_386_982, -118.283_405_115, 1188.0);

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
pub fn write_fits_image(
    path: &Path,
    n: usize,
    data: &[f32],
    m: &ImageMeta,
) -> Result<(), ProductError> {
    let centre = (n / 2 + 1) as f64;
    let axes = Axes {
        code: "SIN",
        nx: n,
        ny: n,
        crpix: [centre, centre],
        cdelt: [-m.cell_deg, m.cell_deg],
        crval: [m.ra_deg, m.dec_deg],
    };
    write_fits_plane(path, data, m, &axes)
}

/// Writes a plane with the given celestial axes (FREQ and STOKES=I axes of length 1 added).
pub fn write_fits_plane(
    path: &Path,
    data: &[f32],
    m: &ImageMeta,
    a: &Axes,
) -> Result<(), ProductError> {
    let (nx, ny) = (a.nx, a.ny);
    assert_eq!(data.len(), nx * ny);
    let tmp = part_path(path);
    let _ = std::fs::remove_file(&tmp);
    let res = write_fits_tmp(&tmp, path, data, m, a);
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn write_fits_tmp(
    tmp: &Path,
    path: &Path,
    data: &[f32],
    m: &ImageMeta,
    a: &Axes,
) -> Result<(), ProductError> {
    let (nx, ny) = (a.nx, a.ny);
    let ferr = |source| ProductError::Fits {
        path: path.into(),
        source,
    };
    let ioerr = |source| ProductError::Io {
        path: path.into(),
        source,
    };
    {
        let desc = ImageDescription {
            data_type: ImageType::Float,
            dimensions: &[1, 1, ny, nx],
        };
        let mut f = FitsFile::create(&tmp)
            .with_custom_primary(&desc)
            .open()
            .map_err(ferr)?;
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
        for (k, v) in [
            ("CTYPE1", c1.as_str()),
            ("CUNIT1", "deg"),
            ("CTYPE2", c2.as_str()),
            ("CUNIT2", "deg"),
            ("CTYPE3", "FREQ"),
            ("CUNIT3", "Hz"),
            ("CTYPE4", "STOKES"),
            ("CUNIT4", ""),
        ] {
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
        hdu.write_key(&mut f, "DATE-OBS", m.date_obs.as_str())
            .map_err(ferr)?;
        hdu.write_key(&mut f, "TELESCOP", "DSA-110").map_err(ferr)?;
        hdu.write_key(&mut f, "INSTRUME", "DSA").map_err(ferr)?;
        hdu.write_key(&mut f, "OBJECT", m.object.as_str())
            .map_err(ferr)?;
        hdu.write_key(
            &mut f,
            "ORIGIN",
            concat!("contimg ", env!("CARGO_PKG_VERSION")),
        )
        .map_err(ferr)?;
        // Times: MJD-OBS from DATE-OBS (UTC), DATE the moment the file was written.
        if let Some(jd) = crate::primitives::time::iso_to_jd(&m.date_obs) {
            hdu.write_key(&mut f, "MJD-OBS", jd - 2_400_000.5)
                .map_err(ferr)?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        hdu.write_key(
            &mut f,
            "DATE",
            crate::primitives::time::jd_to_iso(2_440_587.5 + now / 86_400.0, 0).as_str(),
        )
        .map_err(ferr)?;
        let prov = PROVENANCE
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        let geo = prov.obsgeo_m.unwrap_or_else(|| {
            let (lat, lon, h) = DSA110_SITE_DEG;
            crate::primitives::astrometry::Site::from_geodetic_deg(lat, lon, h).ecef
        });
        for (k, v) in ["OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z"].into_iter().zip(geo) {
            hdu.write_key(&mut f, k, v).map_err(ferr)?;
        }
        // Proper HISTORY cards (commentary, no value): CFITSIO continues a long line.
        for h in m.history.iter().chain(&prov.history) {
            let line = std::ffi::CString::new(h.replace('\0', " ")).expect("no NUL");
            let mut status = 0;
            // SAFETY: `f` is an open file and `line` a NUL-terminated string.
            unsafe { fitsio::sys::ffphis(f.as_raw(), line.as_ptr(), &mut status) };
            if status != 0 {
                return Err(ioerr(std::io::Error::other(format!(
                    "cannot write HISTORY (CFITSIO status {status})"
                ))));
            }
        }
        hdu.write_image(&mut f, data).map_err(ferr)?;
        // CFITSIO buffers: a full disk shows only when the buffers go out, and dropping the
        // file would ignore that error. Flush here and check.
        let mut status = 0;
        // SAFETY: `f` is an open file; ffflus only writes its buffers.
        unsafe { fitsio::sys::ffflus(f.as_raw(), &mut status) };
        if status != 0 {
            return Err(ioerr(std::io::Error::other(format!(
                "cannot write the image to disk (CFITSIO status {status}; disk full or read-only?)"
            ))));
        }
    }
    // On disk before the rename, and whole: the header and the data in 2880-byte blocks.
    let f = std::fs::File::open(tmp).map_err(ioerr)?;
    f.sync_all().map_err(ioerr)?;
    let len = f.metadata().map_err(ioerr)?.len();
    let data_bytes = (4 * nx * ny).div_ceil(2880) as u64 * 2880;
    if len % 2880 != 0 || len < 2880 + data_bytes {
        return Err(ioerr(std::io::Error::other(format!(
            "only {len} bytes reached the disk, at least {} expected (disk full?)",
            2880 + data_bytes
        ))));
    }
    drop(f);
    std::fs::rename(tmp, path).map_err(ioerr)?;
    sync_dir(path);
    Ok(())
}
