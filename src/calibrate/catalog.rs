//! The VLA calibrator list (NRAO calibrator-manual format) and calibrator selection for a
//! DSA-110 pointing: which calibrators transit through the primary beam, and when.

use crate::primitives::astrometry::{radec_to_vec, FrameOfDate, Site};
use crate::primitives::beam::airy_power;
use crate::primitives::iers::EarthOrientation;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{path}: cannot read calibrator list ({source})")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {problem}")]
    Parse {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibrator {
    /// J2000 name, e.g. "0542+498".
    pub name: String,
    pub ra_rad: f64,
    pub dec_rad: f64,
    /// 20cm (L band) flux density (Jy).
    pub flux_jy: f64,
    /// From the 20cm and 6cm fluxes when both are listed.
    pub spectral_index: Option<f64>,
}

impl Calibrator {
    /// Flux density at `freq_hz` (the 20cm band is centred on 1.4 GHz).
    pub fn flux_at(&self, freq_hz: f64) -> f64 {
        self.flux_jy * (freq_hz / 1.4e9).powf(self.spectral_index.unwrap_or(0.0))
    }
}

fn parse_sexagesimal(s: &str, hours: bool) -> Option<f64> {
    // "00h01m08.621563s" or "19d14'33.801860\"" (sign on degrees).
    let t = s.trim();
    let neg = t.starts_with('-');
    let t = t.trim_start_matches(['-', '+']);
    let seps: &[char] = if hours {
        &['h', 'm', 's']
    } else {
        &['d', '\'', '"']
    };
    let mut parts = Vec::new();
    let mut rest = t;
    for &sep in seps {
        let (a, b) = rest.split_once(sep)?;
        parts.push(a.parse::<f64>().ok()?);
        rest = b;
    }
    let v = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0;
    let deg = if hours { v * 15.0 } else { v };
    Some(if neg { -deg } else { deg }.to_radians())
}

/// Parses the list: a J2000 position line starts each entry; band lines follow.
pub fn parse_calibrators(text: &str, path: &Path) -> Result<Vec<Calibrator>, CatalogError> {
    let mut out: Vec<Calibrator> = Vec::new();
    let mut cur: Option<(Calibrator, Option<f64>)> = None; // (cal, 6cm flux)
    let finish = |cur: Option<(Calibrator, Option<f64>)>, out: &mut Vec<Calibrator>| {
        if let Some((mut c, f6)) = cur {
            if c.flux_jy > 0.0 {
                if let Some(f6) = f6 {
                    if f6 > 0.0 {
                        c.spectral_index = Some((f6 / c.flux_jy).ln() / (4.86f64 / 1.4).ln());
                    }
                }
                out.push(c);
            }
        }
    };
    for (i, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 5 && cols[1] == "J2000" {
            finish(cur.take(), &mut out);
            let err = |p: &str| CatalogError::Parse {
                path: path.into(),
                line: i + 1,
                problem: p.into(),
            };
            let ra = parse_sexagesimal(cols[3], true).ok_or_else(|| err("bad RA"))?;
            let dec = parse_sexagesimal(cols[4], false).ok_or_else(|| err("bad Dec"))?;
            cur = Some((
                Calibrator {
                    name: cols[0].to_string(),
                    ra_rad: ra,
                    dec_rad: dec,
                    flux_jy: 0.0,
                    spectral_index: None,
                },
                None,
            ));
        } else if let Some((c, f6)) = cur.as_mut() {
            // Band lines: "20cm    L  X X X S        2.2 ..." — the flux follows 4 quality codes.
            if cols.len() >= 7 && (cols[0] == "20cm" || cols[0] == "6cm") {
                if let Ok(f) = cols[6].parse::<f64>() {
                    if cols[0] == "20cm" {
                        c.flux_jy = f;
                    } else {
                        *f6 = Some(f);
                    }
                }
            }
        }
    }
    finish(cur, &mut out);
    Ok(out)
}

/// The VLA calibrator list compiled into contimg (configs/dsa110/vlacalibrators.txt).
pub const BUILTIN_LIST: &str = include_str!("../../configs/dsa110/vlacalibrators.txt");

/// The calibrator list from `path`, or the built-in one when None.
pub fn load_calibrators(path: Option<&Path>) -> Result<Vec<Calibrator>, CatalogError> {
    match path {
        Some(p) => read_calibrators(p),
        None => parse_calibrators(BUILTIN_LIST, Path::new("built-in vlacalibrators.txt")),
    }
}

/// A list from `path`: a `.csv` file is a sky catalogue (`parse_sky_csv`), anything else
/// the VLA calibrator-list format.
pub fn read_calibrators(path: &Path) -> Result<Vec<Calibrator>, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
        path: path.into(),
        source,
    })?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        parse_sky_csv(&text, path)
    } else {
        parse_calibrators(&text, path)
    }
}

/// A sky catalogue as CSV: `name,ra_deg,dec_deg,flux_jy[,spectral_index]` per source (J2000
/// degrees, flux density at 1.4 GHz, S ~ nu^alpha), a header record whose first field
/// starts with "name" and `#` comment lines skipped (what `contimg simulate` writes as
/// `sky.csv`; an NVSS/FIRST extract in these columns serves as well).
pub fn parse_sky_csv(text: &str, path: &Path) -> Result<Vec<Calibrator>, CatalogError> {
    let err = |line: u64, problem: String| CatalogError::Parse {
        path: path.into(),
        line: line as usize,
        problem,
    };
    let records = crate::primitives::table::catalogue_records(text.as_bytes()).map_err(|e| {
        let line = e.position().map_or(0, |p| p.line());
        err(line, e.to_string())
    })?;
    let mut out = Vec::new();
    for (line, f) in records {
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok());
        let alpha =
            match f.get(4).filter(|s| !s.is_empty()) {
                None => None,
                Some(_) => Some(num(4).filter(|a| a.is_finite()).ok_or_else(|| {
                    err(line, format!("spectral index {:?} is not a number", f[4]))
                })?),
            };
        match (f.first(), num(1), num(2), num(3)) {
            (Some(n), Some(ra), Some(dec), Some(flux))
                if !n.is_empty()
                    && ra.is_finite()
                    && (-90.0..=90.0).contains(&dec)
                    && flux.is_finite()
                    && flux >= 0.0 =>
            {
                out.push(Calibrator {
                    name: n.to_string(),
                    ra_rad: ra.to_radians(),
                    dec_rad: dec.to_radians(),
                    flux_jy: flux,
                    spectral_index: alpha,
                })
            }
            _ => {
                return Err(err(
                    line,
                    format!("expected name,ra_deg,dec_deg,flux_jy[,spectral_index]: {f:?}"),
                ))
            }
        }
    }
    Ok(out)
}

/// A calibrator seen during a set of integrations, with its weight.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transit {
    pub calibrator: Calibrator,
    /// UTC JD of the closest approach to the meridian (among `times`).
    pub transit_jd: f64,
    /// Airy response at transit (1.4 GHz) and flux x response.
    pub beam: f64,
    pub weight_jy: f64,
}

/// Calibrators that pass within `max_offset_deg` of the pointing (HA = 0, `dec_app`)
/// during the given integrations, strongest (flux x beam) first.
pub fn transits(
    cals: &[Calibrator],
    times_jd: &[f64],
    dec_app: f64,
    site: &Site,
    eop: &EarthOrientation,
    max_offset_deg: f64,
    min_flux_jy: f64,
) -> Vec<Transit> {
    if times_jd.is_empty() {
        return vec![];
    }
    let lim = max_offset_deg.to_radians();
    // Cheap declination pre-filter (precession moves a J2000 dec by < 0.5 deg until 2050).
    let cand: Vec<&Calibrator> = cals
        .iter()
        .filter(|c| c.flux_jy >= min_flux_jy && (c.dec_rad - dec_app).abs() < lim + 0.01)
        .collect();
    let frames: Vec<(f64, FrameOfDate)> = times_jd
        .iter()
        .map(|&t| (t, FrameOfDate::new(eop.epoch(t), site)))
        .collect();
    let mut out = Vec::new();
    for c in cand {
        let p = radec_to_vec(c.ra_rad, c.dec_rad);
        let best = frames
            .iter()
            .map(|(t, f)| {
                (
                    *t,
                    crate::primitives::astrometry::separation(
                        f.icrs_to_apparent(p),
                        f.hadec_to_apparent(0.0, dec_app),
                    ),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((t, sep)) = best {
            if sep <= lim {
                let beam = airy_power(sep, 1.4e9, crate::core::telescope::DISH_DIAMETER_M);
                out.push(Transit {
                    calibrator: c.clone(),
                    transit_jd: t,
                    beam,
                    weight_jy: c.flux_jy * beam,
                });
            }
        }
    }
    out.sort_by(|a, b| b.weight_jy.total_cmp(&a.weight_jy));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_fluxes() {
        let text = "\
0542+498   J2000  A 05h42m36.137916s  49d51'07.233560\"  Aug01  3C147
0538+498   B1950  A 05h38m43.509000s  49d49'42.830000\"
-----------------------------------------------------
BAND        A B C D    FLUX(Jy)    UVMIN(kL)  UVMAX(kL)
=====================================================
 90cm    P  X X X X      66.0
 20cm    L  X X X X      22.5
  6cm    C  X S S P       8.18
 
0006-063   J2000  A 00h06m13.892894s -06d23'35.335300\"  Aug01
-----------------------------------------------------
 20cm    L  S X X X       1.60           45
";
        let c = parse_calibrators(text, Path::new("t")).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "0542+498");
        assert!(
            (c[0].ra_rad.to_degrees() - (5.0 + 42.0 / 60.0 + 36.137916 / 3600.0) * 15.0).abs()
                < 1e-9
        );
        assert!((c[0].dec_rad.to_degrees() - (49.0 + 51.0 / 60.0 + 7.23356 / 3600.0)).abs() < 1e-9);
        assert_eq!(c[0].flux_jy, 22.5);
        assert!(
            (c[0].spectral_index.unwrap() - (8.18f64 / 22.5).ln() / (4.86f64 / 1.4).ln()).abs()
                < 1e-12
        );
        assert!(c[1].dec_rad < 0.0 && c[1].flux_jy == 1.6 && c[1].spectral_index.is_none());
    }

    #[test]
    fn sky_csv_reads_sources_and_names_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sky.csv");
        std::fs::write(
            &p,
            "name,ra_deg,dec_deg,flux_jy,spectral_index\n# a comment\n\
             \"3C 147, core\",85.6505,49.852,22.5,-0.84\nflat,10.0,-5.5,0.3\n",
        )
        .unwrap();
        let c = read_calibrators(&p).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "3C 147, core");
        assert!((c[0].ra_rad.to_degrees() - 85.6505).abs() < 1e-12);
        assert!((c[0].flux_at(1.4e9) - 22.5).abs() < 1e-12);
        assert_eq!(c[0].spectral_index, Some(-0.84));
        assert!(c[1].dec_rad < 0.0 && c[1].spectral_index.is_none());
        std::fs::write(&p, "name,ra,dec,flux\nx,10.0,95.0,1.0\n").unwrap();
        let e = read_calibrators(&p).unwrap_err().to_string();
        assert!(e.contains("sky.csv") && e.contains("line 2"), "{e}");
        std::fs::write(&p, "x,10.0,45.0,1.0,steep\n").unwrap();
        let e = read_calibrators(&p).unwrap_err().to_string();
        assert!(e.contains("spectral index"), "{e}");
    }

    #[test]
    fn the_shipped_list_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/dsa110/vlacalibrators.txt");
        let c = read_calibrators(&p).unwrap();
        assert!(c.len() > 1000, "{}", c.len());
        let c147 = c.iter().find(|c| c.name == "0542+498").unwrap();
        assert!(c147.flux_jy > 20.0);
    }
}
