//! Forced photometry and light curves. In every tile of one or more nights, each catalogue
//! position inside the primary-beam-corrected image is measured with a matched filter (the
//! restoring beam: S = sum I B / sum B^2, B the beam of peak 1 at the exact position);
//! the error is the image's robust rms. Across all measurements of a source: the weighted
//! mean, the coefficient of variation V = s / mean, eta = the reduced chi^2 about the
//! weighted mean, and the largest two-epoch modulation index m = 2 (Sa - Sb) / (Sa + Sb)
//! with its t-statistic Vs = (Sa - Sb) / sqrt(ea^2 + eb^2) (the VAST/TraP metrics).

pub mod night;

use crate::primitives::stats::median_and_mad_sigma;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PhotometryError {
    /// An image whose header or pixels cannot be measured (the problem in words).
    #[error("{path}: {problem}")]
    Fits { path: PathBuf, problem: String },
    /// cfitsio could not open or read the image.
    #[error("{path}: {source}")]
    FitsRead {
        path: PathBuf,
        source: fitsio::errors::Error,
    },
    /// A header key the measurement needs is missing or unreadable.
    #[error("{path}: {key}: {source}")]
    FitsKey {
        path: PathBuf,
        key: &'static str,
        source: fitsio::errors::Error,
    },
    /// A catalogue record that is not `name,ra_deg,dec_deg` (the problem in words).
    #[error("{path}: {problem}")]
    Catalog { path: PathBuf, problem: String },
    #[error("{path}: {source}")]
    CatalogCsv { path: PathBuf, source: csv::Error },
    /// A file or directory that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The built-in or configured VLA calibrator list (the default targets).
    #[error(transparent)]
    Calibrators(#[from] crate::calibrate::catalog::CatalogError),
}

/// An image as written by contimg (SIN projection, restoring beam in the header).
pub struct Image {
    pub path: PathBuf,
    pub nx: usize,
    pub ny: usize,
    pub data: Vec<f32>,
    /// "SIN" or "CAR" (mosaics).
    pub code: String,
    pub crval: [f64; 2],
    pub crpix: [f64; 2],
    pub cdelt: [f64; 2],
    /// BMAJ, BMIN (deg), BPA (deg east of north); zeros when the image has none.
    pub beam: [f64; 3],
    pub date_obs: String,
}

impl Image {
    pub fn read(path: &Path) -> Result<Image, PhotometryError> {
        let bad = |problem: String| PhotometryError::Fits {
            path: path.into(),
            problem,
        };
        let read = |source| PhotometryError::FitsRead {
            path: path.into(),
            source,
        };
        let key_err = |key, source| PhotometryError::FitsKey {
            path: path.into(),
            key,
            source,
        };
        let mut f = fitsio::FitsFile::open(path).map_err(read)?;
        let hdu = f.primary_hdu().map_err(read)?;
        let mut key = |k: &'static str| hdu.read_key::<f64>(&mut f, k).map_err(|e| key_err(k, e));
        let crval = [key("CRVAL1")?, key("CRVAL2")?];
        let crpix = [key("CRPIX1")?, key("CRPIX2")?];
        let cdelt = [key("CDELT1")?, key("CDELT2")?];
        let (nx, ny) = (key("NAXIS1")? as usize, key("NAXIS2")? as usize);
        let beam = [
            key("BMAJ").unwrap_or(0.0),
            key("BMIN").unwrap_or(0.0),
            key("BPA").unwrap_or(0.0),
        ];
        let ctype = hdu
            .read_key::<String>(&mut f, "CTYPE1")
            .map_err(|e| key_err("CTYPE1", e))?;
        let code = ctype.get(5..).unwrap_or("").to_string();
        if code != "SIN" && code != "CAR" {
            return Err(bad(format!(
                "projection {ctype} (contimg reads SIN tiles and CAR mosaics)"
            )));
        }
        let date_obs = hdu
            .read_key::<String>(&mut f, "DATE-OBS")
            .unwrap_or_default();
        // A WCS that cannot place a pixel (zero, absurd or NaN steps) is refused here, not
        // divided by later.
        let good_step = |d: f64| d.is_finite() && d != 0.0 && d.abs() <= 10.0;
        if !(good_step(cdelt[0])
            && good_step(cdelt[1])
            && crval.iter().chain(&crpix).all(|x| x.is_finite())
            && crval[1].abs() <= 90.0)
        {
            return Err(bad(format!("unusable WCS: CDELT {cdelt:?} (non-zero, at most 10 deg), CRVAL {crval:?}, CRPIX {crpix:?}")));
        }
        if nx == 0 || ny == 0 || !beam.iter().all(|b| b.is_finite()) {
            return Err(bad(format!("{nx} x {ny} pixels, beam {beam:?}")));
        }
        let data: Vec<f32> = hdu.read_image(&mut f).map_err(read)?;
        if data.len() != nx * ny {
            return Err(bad(format!("{} pixels for {nx} x {ny}", data.len())));
        }
        Ok(Image {
            path: path.into(),
            nx,
            ny,
            data,
            code,
            crval,
            crpix,
            cdelt,
            beam,
            date_obs,
        })
    }

    /// 0-based pixel (x, y) of a J2000 position (SIN tiles; CAR mosaics with RA offsets
    /// wrapped into (-180, 180] about CRVAL1, so a mosaic may straddle RA = 0).
    pub fn world_to_pixel(&self, ra_deg: f64, dec_deg: f64) -> Option<(f64, f64)> {
        if self.code == "CAR" {
            let dra = (ra_deg - self.crval[0] + 540.0).rem_euclid(360.0) - 180.0;
            return Some((
                self.crpix[0] - 1.0 + dra / self.cdelt[0],
                self.crpix[1] - 1.0 + (dec_deg - self.crval[1]) / self.cdelt[1],
            ));
        }
        let (a, d) = (ra_deg.to_radians(), dec_deg.to_radians());
        let (a0, d0) = (self.crval[0].to_radians(), self.crval[1].to_radians());
        let cos_c = d.sin() * d0.sin() + d.cos() * d0.cos() * (a - a0).cos();
        if cos_c <= 0.0 {
            return None; // the far hemisphere
        }
        let x = (d.cos() * (a - a0).sin()).to_degrees();
        let y = (d.sin() * d0.cos() - d.cos() * d0.sin() * (a - a0).cos()).to_degrees();
        Some((
            self.crpix[0] + x / self.cdelt[0] - 1.0,
            self.crpix[1] + y / self.cdelt[1] - 1.0,
        ))
    }

    /// J2000 (ra, dec) in degrees of a 0-based pixel (SIN or CAR).
    pub fn pixel_to_world(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (px, py) = (
            (x + 1.0 - self.crpix[0]) * self.cdelt[0],
            (y + 1.0 - self.crpix[1]) * self.cdelt[1],
        );
        if self.code == "CAR" {
            return Some(((self.crval[0] + px).rem_euclid(360.0), self.crval[1] + py));
        }
        let (l, m) = (px.to_radians(), py.to_radians());
        let r2 = l * l + m * m;
        if r2 >= 1.0 {
            return None;
        }
        let n = (1.0 - r2).sqrt();
        let (a0, d0) = (self.crval[0].to_radians(), self.crval[1].to_radians());
        // Direction = n * centre + l * east + m * north.
        let (sa, ca, sd, cd) = (a0.sin(), a0.cos(), d0.sin(), d0.cos());
        let v = [
            n * cd * ca - l * sa - m * sd * ca,
            n * cd * sa + l * ca - m * sd * sa,
            n * sd + m * cd,
        ];
        Some((
            v[1].atan2(v[0]).to_degrees().rem_euclid(360.0),
            v[2].clamp(-1.0, 1.0).asin().to_degrees(),
        ))
    }

    /// Cubic-convolution (Keys, a = -0.5) value at a 0-based pixel position: interpolating,
    /// and far less smoothing than bilinear for beams a few pixels wide (None outside, near
    /// the edge or next to a blank).
    pub fn sample_cubic(&self, x: f64, y: f64) -> Option<f64> {
        let (x0, y0) = (x.floor(), y.floor());
        if x0 < 1.0 || y0 < 1.0 || x0 as usize + 2 >= self.nx || y0 as usize + 2 >= self.ny {
            return None;
        }
        let keys = |t: f64| {
            let t = t.abs();
            if t < 1.0 {
                1.5 * t * t * t - 2.5 * t * t + 1.0
            } else if t < 2.0 {
                -0.5 * t * t * t + 2.5 * t * t - 4.0 * t + 2.0
            } else {
                0.0
            }
        };
        let (i, j) = (x0 as usize, y0 as usize);
        let mut v = 0.0;
        for dy in 0..4 {
            let wy = keys(y - (j + dy - 1) as f64);
            for dx in 0..4 {
                let p = self.data[(j + dy - 1) * self.nx + i + dx - 1] as f64;
                v += p * wy * keys(x - (i + dx - 1) as f64);
            }
        }
        v.is_finite().then_some(v)
    }

    /// Bilinear value at a 0-based pixel position (None outside or next to a blank).
    pub fn sample(&self, x: f64, y: f64) -> Option<f64> {
        let (x0, y0) = (x.floor(), y.floor());
        if x0 < 0.0 || y0 < 0.0 || x0 as usize + 1 >= self.nx || y0 as usize + 1 >= self.ny {
            return None;
        }
        let (i, j, fx, fy) = (x0 as usize, y0 as usize, x - x0, y - y0);
        let at = |a: usize, b: usize| self.data[b * self.nx + a] as f64;
        let v = at(i, j) * (1.0 - fx) * (1.0 - fy)
            + at(i + 1, j) * fx * (1.0 - fy)
            + at(i, j + 1) * (1.0 - fx) * fy
            + at(i + 1, j + 1) * fx * fy;
        v.is_finite().then_some(v)
    }

    /// The matched-filter flux at (ra, dec), or None outside the image or where it is blank.
    pub fn forced(&self, ra_deg: f64, dec_deg: f64, rms: f64) -> Option<(f64, f64)> {
        let (x0, y0) = self.world_to_pixel(ra_deg, dec_deg)?;
        if !(self.beam[0] > 0.0 && self.beam[1] > 0.0) {
            return None;
        }
        let cell = self.cdelt[1].abs();
        let s_maj = self.beam[0] / cell / (8.0 * std::f64::consts::LN_2).sqrt();
        let s_min = self.beam[1] / cell / (8.0 * std::f64::consts::LN_2).sqrt();
        // Position angle east of north: the major axis toward -x (east) rotated from +y.
        let pa = self.beam[2].to_radians();
        let (sp, cp) = pa.sin_cos();
        let r = (3.0 * s_maj).ceil() as i64 + 1;
        let (xi, yi) = (x0.round() as i64, y0.round() as i64);
        if xi - r < 0 || yi - r < 0 || xi + r >= self.nx as i64 || yi + r >= self.ny as i64 {
            return None;
        }
        let (mut num, mut den) = (0.0, 0.0);
        for y in yi - r..=yi + r {
            for x in xi - r..=xi + r {
                let v = self.data[y as usize * self.nx + x as usize] as f64;
                if !v.is_finite() {
                    return None;
                }
                let (dx, dy) = (x as f64 - x0, y as f64 - y0);
                // Along the major axis (north rotated toward east = -x) and across it.
                let a = dy * cp - dx * sp;
                let b = dx * cp + dy * sp;
                let bw = (-0.5 * (a * a / (s_maj * s_maj) + b * b / (s_min * s_min))).exp();
                num += v * bw;
                den += bw * bw;
            }
        }
        (den > 0.0).then(|| (num / den, rms))
    }

    /// Robust rms of the finite pixels.
    pub fn rms(&self) -> f64 {
        let v: Vec<f64> = self
            .data
            .iter()
            .filter(|x| x.is_finite())
            .map(|&x| x as f64)
            .collect();
        median_and_mad_sigma(&v).map(|x| x.1).unwrap_or(f64::NAN)
    }
}

/// A catalogue position.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Target {
    pub name: String,
    pub ra_deg: f64,
    pub dec_deg: f64,
}

/// Reads `name,ra_deg,dec_deg` records (CSV: quoted names may hold commas; a header record
/// whose first field starts with "name" and `#` comment lines are skipped).
pub fn read_catalog(path: &Path) -> Result<Vec<Target>, PhotometryError> {
    let bad = |problem: String| PhotometryError::Catalog {
        path: path.into(),
        problem,
    };
    let text = std::fs::read(path).map_err(|source| PhotometryError::Io {
        path: path.into(),
        source,
    })?;
    let records = crate::primitives::table::catalogue_records(&text).map_err(|source| {
        PhotometryError::CatalogCsv {
            path: path.into(),
            source,
        }
    })?;
    let mut out = Vec::new();
    for (line, f) in records {
        let num = |k: usize| f.get(k).and_then(|s| s.parse::<f64>().ok());
        match (f.first(), num(1), num(2)) {
            (Some(n), _, _) if out.iter().any(|t: &Target| t.name == *n) => {
                return Err(bad(format!(
                    "line {line}: name {n:?} appears twice (light curves are kept by name)"
                )));
            }
            (Some(n), Some(ra), Some(dec))
                if ra.is_finite() && (-90.0..=90.0).contains(&dec) && !n.is_empty() =>
            {
                out.push(Target {
                    name: n.to_string(),
                    ra_deg: ra,
                    dec_deg: dec,
                })
            }
            _ => {
                return Err(bad(format!(
                    "line {line}: expected name,ra_deg,dec_deg: {f:?}"
                )))
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Measurement {
    pub source: String,
    pub image: PathBuf,
    pub date_obs: String,
    pub flux_jy: f64,
    pub err_jy: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Variability {
    pub source: String,
    pub n: usize,
    pub mean_jy: f64,
    pub weighted_mean_jy: f64,
    pub v: f64,
    pub eta: f64,
    pub m: f64,
    pub vs: f64,
    pub candidate: bool,
}

/// Thresholds that make a source a variability candidate (all must hold).
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub eta: f64,
    pub v: f64,
    /// |Vs| of the pair with the largest |m|.
    pub vs: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            eta: 5.0,
            v: 0.1,
            vs: 4.3,
        }
    }
}

/// The metrics of one source's light curve.
pub fn variability(source: &str, ms: &[&Measurement], th: Thresholds) -> Variability {
    let n = ms.len();
    let s: Vec<f64> = ms.iter().map(|m| m.flux_jy).collect();
    let w: Vec<f64> = ms
        .iter()
        .map(|m| 1.0 / (m.err_jy * m.err_jy).max(1e-30))
        .collect();
    let mean = s.iter().sum::<f64>() / n.max(1) as f64;
    let wmean =
        s.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() / w.iter().sum::<f64>().max(1e-300);
    let sd = if n > 1 {
        (s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let v = if mean != 0.0 { sd / mean.abs() } else { 0.0 };
    let eta = if n > 1 {
        s.iter()
            .zip(&w)
            .map(|(x, wi)| wi * (x - wmean).powi(2))
            .sum::<f64>()
            / (n - 1) as f64
    } else {
        0.0
    };
    let (mut m, mut vs) = (0.0f64, 0.0f64);
    for i in 0..n {
        for j in i + 1..n {
            let (a, b) = (ms[i], ms[j]);
            let mm = 2.0 * (a.flux_jy - b.flux_jy) / (a.flux_jy + b.flux_jy);
            if mm.abs() > m.abs() {
                m = mm;
                vs = (a.flux_jy - b.flux_jy) / (a.err_jy.powi(2) + b.err_jy.powi(2)).sqrt();
            }
        }
    }
    Variability {
        source: source.into(),
        n,
        mean_jy: mean,
        weighted_mean_jy: wmean,
        v,
        eta,
        m,
        vs,
        candidate: n > 1 && eta > th.eta && v > th.v && vs.abs() > th.vs,
    }
}

/// Measures every target in every tile of the nights (`*.pbcor.fits`, else
/// `*.restored.fits`, in order of the image names), one point per tile, never the mosaic;
/// errors from the local residual noise (see `crate::photometry::night`).
pub fn measure_nights(
    nights: &[PathBuf],
    targets: &[Target],
) -> Result<Vec<Measurement>, PhotometryError> {
    let mut out = Vec::new();
    for d in nights {
        out.extend(crate::photometry::night::measure_night(d, targets)?);
    }
    Ok(out)
}

/// Writes `lightcurves.csv` and `variability.csv` into `out` (atomically); returns the
/// metrics.
pub fn write_tables(
    out: &Path,
    ms: &[Measurement],
    targets: &[Target],
    th: Thresholds,
) -> std::io::Result<Vec<Variability>> {
    std::fs::create_dir_all(out)?;
    let mut lc = csv::Writer::from_writer(Vec::new());
    lc.write_record([
        "source", "ra_deg", "dec_deg", "date_obs", "flux_jy", "err_jy", "image",
    ])?;
    let mut vars = Vec::new();
    for t in targets {
        let mine: Vec<&Measurement> = ms.iter().filter(|m| m.source == t.name).collect();
        for m in &mine {
            lc.write_record([
                t.name.clone(),
                format!("{:.7}", t.ra_deg),
                format!("{:.7}", t.dec_deg),
                m.date_obs.clone(),
                format!("{:.6}", m.flux_jy),
                format!("{:.6}", m.err_jy),
                m.image.display().to_string(),
            ])?;
        }
        if !mine.is_empty() {
            vars.push(variability(&t.name, &mine, th));
        }
    }
    let mut vt = csv::Writer::from_writer(Vec::new());
    vt.write_record([
        "source",
        "n",
        "mean_jy",
        "weighted_mean_jy",
        "V",
        "eta",
        "m",
        "Vs",
        "candidate",
    ])?;
    for v in &vars {
        vt.write_record([
            v.source.clone(),
            v.n.to_string(),
            format!("{:.6}", v.mean_jy),
            format!("{:.6}", v.weighted_mean_jy),
            format!("{:.4}", v.v),
            format!("{:.3}", v.eta),
            format!("{:.4}", v.m),
            format!("{:.2}", v.vs),
            v.candidate.to_string(),
        ])?;
    }
    let bytes = |w: csv::Writer<Vec<u8>>| w.into_inner().map_err(|e| e.into_error());
    crate::products::write_atomic(&out.join("lightcurves.csv"), &bytes(lc)?)?;
    crate::products::write_atomic(&out.join("variability.csv"), &bytes(vt)?)?;
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(f: f64, e: f64) -> Measurement {
        Measurement {
            source: "s".into(),
            image: PathBuf::new(),
            date_obs: String::new(),
            flux_jy: f,
            err_jy: e,
        }
    }

    #[test]
    fn metrics_of_a_constant_and_a_variable_source() {
        let c = [m(1.0, 0.01), m(1.01, 0.01), m(0.99, 0.01), m(1.0, 0.01)];
        let v = variability("c", &c.iter().collect::<Vec<_>>(), Thresholds::default());
        assert!(v.eta < 1.0 && v.v < 0.02 && !v.candidate, "{v:?}");
        let x = [m(1.0, 0.01), m(1.5, 0.01), m(0.8, 0.01)];
        let v = variability("x", &x.iter().collect::<Vec<_>>(), Thresholds::default());
        // m from the most different pair: 2 (1.5 - 0.8) / 2.3
        assert!((v.m.abs() - 2.0 * 0.7 / 2.3).abs() < 1e-12, "{v:?}");
        assert!((v.v - 0.3605551275463989 / 1.1).abs() < 1e-9, "{v:?}");
        assert!(v.candidate && v.eta > 100.0, "{v:?}");
    }

    #[test]
    fn names_with_commas_and_quotes_survive_the_catalogue_and_the_tables() {
        let d = tempfile::tempdir().unwrap();
        let cat = d.path().join("cat.csv");
        std::fs::write(
            &cat,
            "# a comment\nname,ra_deg,dec_deg\n\"NVSS J1, \"\"b\"\"\", 10.5 ,20.25\nplain,11,-30\n",
        )
        .unwrap();
        let t = read_catalog(&cat).unwrap();
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t[0].name, "NVSS J1, \"b\"");
        assert_eq!((t[0].ra_deg, t[0].dec_deg), (10.5, 20.25));
        assert_eq!((t[1].name.as_str(), t[1].dec_deg), ("plain", -30.0));
        let ms: Vec<Measurement> = [1.0, 1.1]
            .iter()
            .map(|&f| Measurement {
                source: t[0].name.clone(),
                image: PathBuf::from("a,b.fits"),
                date_obs: "2026-01-01T00:00:00".into(),
                flux_jy: f,
                err_jy: 0.01,
            })
            .collect();
        write_tables(d.path(), &ms, &t, Thresholds::default()).unwrap();
        let mut rd = csv::Reader::from_path(d.path().join("lightcurves.csv")).unwrap();
        let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[1][0], "NVSS J1, \"b\"");
        assert_eq!(&rows[1][6], "a,b.fits");
        assert_eq!(rows[1][4].parse::<f64>().unwrap(), 1.1);
        let mut rd = csv::Reader::from_path(d.path().join("variability.csv")).unwrap();
        let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
        assert_eq!(
            (rows.len(), &rows[0][0], &rows[0][1]),
            (1, "NVSS J1, \"b\"", "2")
        );
        // A record with a bad number names its line.
        std::fs::write(&cat, "name,ra,dec\nx,1,2\ny,1,north\n").unwrap();
        let e = read_catalog(&cat).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("cat.csv"), "{e}");
    }

    #[test]
    fn unreadable_catalogues_and_images_are_typed_errors_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let named = |e: &PhotometryError, file: &str| {
            assert!(e.to_string().contains(file), "{e}");
        };
        let e = read_catalog(&d.path().join("none.csv")).unwrap_err();
        assert!(matches!(e, PhotometryError::Io { .. }), "{e:?}");
        named(&e, "none.csv");
        let bad = d.path().join("bad.csv");
        std::fs::write(&bad, b"a,1,2\n\xff\xfe,3,4\n").unwrap();
        let e = read_catalog(&bad).unwrap_err();
        assert!(matches!(e, PhotometryError::CatalogCsv { .. }), "{e:?}");
        named(&e, "bad.csv");
        let junk = d.path().join("junk.fits");
        std::fs::write(&junk, b"not a FITS file").unwrap();
        let e = Image::read(&junk).err().expect("not FITS");
        assert!(matches!(e, PhotometryError::FitsRead { .. }), "{e:?}");
        named(&e, "junk.fits");
        // A FITS file without a WCS: the first missing key is named.
        let bare = d.path().join("bare.fits");
        drop(fitsio::FitsFile::create(&bare).open().unwrap());
        let e = Image::read(&bare).err().expect("no WCS");
        assert!(
            matches!(e, PhotometryError::FitsKey { key: "CRVAL1", .. }),
            "{e:?}"
        );
        named(&e, "bare.fits");
    }
}
