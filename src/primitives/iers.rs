//! Earth orientation from an IERS `finals2000A` file (Bulletin A format): UT1 - UTC and the
//! polar motion, interpolated linearly between daily values (across leap seconds too).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum IersError {
    #[error("{path}: cannot read IERS table ({source})")]
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
    #[error("{path}: no UT1-UTC values")]
    Empty { path: PathBuf },
}

/// Earth orientation at an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eop {
    /// UT1 - UTC (s).
    pub dut1_s: f64,
    /// Polar motion (arcsec).
    pub xp_arcsec: f64,
    pub yp_arcsec: f64,
}

/// Daily Earth orientation values.
#[derive(Debug, Clone, PartialEq)]
pub struct IersTable {
    pub path: PathBuf,
    mjd: Vec<f64>,
    dut1: Vec<f64>,
    xp: Vec<f64>,
    yp: Vec<f64>,
}

fn field(line: &str, a: usize, b: usize) -> Option<&str> {
    line.get(a - 1..b.min(line.len()))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl IersTable {
    pub fn load(path: &Path) -> Result<Self, IersError> {
        let text = std::fs::read_to_string(path).map_err(|source| IersError::Io {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses finals2000A: MJD in columns 8-15; Bulletin A PM-x 19-27, PM-y 38-46, UT1-UTC
    /// 59-68; Bulletin B PM-x 135-144, PM-y 145-154, UT1-UTC 155-165 (1-based, inclusive),
    /// B preferred as astropy does. Rows without UT1-UTC (beyond the predictions) end it.
    pub fn parse(text: &str, path: &Path) -> Result<Self, IersError> {
        let mut t = IersTable {
            path: path.into(),
            mjd: vec![],
            dut1: vec![],
            xp: vec![],
            yp: vec![],
        };
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let err = |problem: String| IersError::Parse {
                path: path.into(),
                line: i + 1,
                problem,
            };
            let mjd: f64 = field(line, 8, 15)
                .ok_or_else(|| err("no MJD in columns 8-15".into()))?
                .parse()
                .map_err(|_| err("MJD is not a number".into()))?;
            // Bulletin B values (columns 135-165) where IERS has them, else Bulletin A.
            let Some(dut1) = field(line, 155, 165).or_else(|| field(line, 59, 68)) else {
                break;
            };
            let dut1: f64 = dut1
                .parse()
                .map_err(|_| err("UT1-UTC is not a number".into()))?;
            let num = |(a, b): (usize, usize), (c, d): (usize, usize)| {
                field(line, a, b)
                    .or_else(|| field(line, c, d))
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            if let Some(&last) = t.mjd.last() {
                if mjd <= last {
                    return Err(err(format!("MJD {mjd} does not follow {last}")));
                }
            }
            t.mjd.push(mjd);
            t.dut1.push(dut1);
            t.xp.push(num((135, 144), (19, 27)));
            t.yp.push(num((145, 154), (38, 46)));
        }
        if t.mjd.is_empty() {
            return Err(IersError::Empty { path: path.into() });
        }
        Ok(t)
    }

    /// MJD range covered.
    pub fn range(&self) -> (f64, f64) {
        (self.mjd[0], *self.mjd.last().expect("non-empty"))
    }

    /// Earth orientation at a UTC Julian date; None outside the table.
    pub fn at(&self, jd_utc: f64) -> Option<Eop> {
        let mjd = jd_utc - 2_400_000.5;
        let (lo, hi) = self.range();
        if !(lo..=hi).contains(&mjd) {
            return None;
        }
        let i = self
            .mjd
            .partition_point(|&m| m <= mjd)
            .saturating_sub(1)
            .min(self.mjd.len().saturating_sub(2));
        if self.mjd.len() == 1 {
            return Some(Eop {
                dut1_s: self.dut1[0],
                xp_arcsec: self.xp[0],
                yp_arcsec: self.yp[0],
            });
        }
        let f = (mjd - self.mjd[i]) / (self.mjd[i + 1] - self.mjd[i]);
        let lin = |v: &[f64]| v[i] + f * (v[i + 1] - v[i]);
        // A leap second makes UT1 - UTC jump by 1 s between two days: interpolate the
        // continuous UT1 - TAI instead.
        let (a, mut b) = (self.dut1[i], self.dut1[i + 1]);
        if b - a > 0.5 {
            b -= 1.0;
        } else if a - b > 0.5 {
            b += 1.0;
        }
        Some(Eop {
            dut1_s: a + f * (b - a),
            xp_arcsec: lin(&self.xp),
            yp_arcsec: lin(&self.yp),
        })
    }
}

/// The IERS finals2000A table compiled into contimg (2020 to its predictions' end; see
/// configs/iers/README.md for its source).
pub const BUILTIN: &str = include_str!("../../configs/iers/finals2000A.all");
pub const BUILTIN_NAME: &str = "the built-in IERS finals2000A (astropy-iers-data 0.2026.11.2)";

/// Where UT1 - UTC comes from: a table, or 0 (with a stated error bound).
#[derive(Debug, Clone, Default)]
pub struct EarthOrientation {
    table: Option<IersTable>,
}

/// |UT1 - UTC| is kept below 0.9 s by leap seconds: the largest error of assuming 0.
pub const DUT1_BOUND_S: f64 = 0.9;

impl EarthOrientation {
    pub fn none() -> Self {
        EarthOrientation { table: None }
    }

    pub fn from_table(table: IersTable) -> Self {
        EarthOrientation { table: Some(table) }
    }

    /// Loads the table when a path is given; otherwise the built-in one (`BUILTIN`).
    pub fn load(path: Option<&Path>) -> Result<Self, IersError> {
        match path {
            Some(p) => Ok(Self::from_table(IersTable::load(p)?)),
            None => Ok(Self::from_table(IersTable::parse(
                BUILTIN,
                Path::new(BUILTIN_NAME),
            )?)),
        }
    }

    /// Whether UT1 - UTC at `jd_utc` comes from a table (false: taken as 0).
    pub fn covers(&self, jd_utc: f64) -> bool {
        self.table.as_ref().is_some_and(|t| t.at(jd_utc).is_some())
    }

    /// UT1 - UTC at a UTC Julian date (0 without a table or outside it; the caller is told
    /// once, in `describe`).
    pub fn dut1(&self, jd_utc: f64) -> f64 {
        self.table
            .as_ref()
            .and_then(|t| t.at(jd_utc))
            .map_or(0.0, |e| e.dut1_s)
    }

    /// The epoch with UT1 - UTC and the polar motion applied.
    pub fn epoch(&self, jd_utc: f64) -> super::time::Epoch {
        match self.table.as_ref().and_then(|t| t.at(jd_utc)) {
            Some(e) => {
                let as_rad = std::f64::consts::PI / 180.0 / 3600.0;
                super::time::Epoch {
                    jd_utc,
                    dut1_s: e.dut1_s,
                    xp_rad: e.xp_arcsec * as_rad,
                    yp_rad: e.yp_arcsec * as_rad,
                }
            }
            None => super::time::Epoch::from_jd_utc(jd_utc),
        }
    }

    /// A sentence for the log about the accuracy this gives at `jd_utc`.
    pub fn describe(&self, jd_utc: f64) -> String {
        match &self.table {
            Some(t) => match t.at(jd_utc) {
                Some(e) => format!("UT1-UTC = {:+.4} s from {}", e.dut1_s, t.path.display()),
                None => format!(
                    "{} does not cover MJD {:.1} (covers {:.1}-{:.1}): UT1-UTC taken as 0, sidereal time error up to {DUT1_BOUND_S} s (field centres up to {:.1} arcsec in RA)",
                    t.path.display(),
                    jd_utc - 2_400_000.5,
                    t.range().0,
                    t.range().1,
                    DUT1_BOUND_S * 15.04
                ),
            },
            None => format!(
                "no IERS table configured (astrometry.iers_file): UT1-UTC taken as 0, sidereal time error up to {DUT1_BOUND_S} s (field centres up to {:.1} arcsec in RA)",
                DUT1_BOUND_S * 15.04
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real finals2000A rows (truncated after the Bulletin A columns); the leap second at the
    // end of 2016-12-31 makes UT1-UTC jump by +1 s.
    const SAMPLE: &str = "\
16 1 1 57388.00 I  0.051141 0.000026  0.256823 0.000026  I 0.0815795 0.0000045  
16 1 2 57389.00 I  0.048904 0.000028  0.257326 0.000018  I 0.0796373 0.0000051  
161231 57753.00 I  0.081400 0.000052  0.263094 0.000039  I-0.4077601 0.0000078  
17 1 1 57754.00 I  0.080504 0.000028  0.263145 0.000028  I 0.5912821 0.0000077  
271218 61757.00
";

    #[test]
    fn parses_and_interpolates_across_a_leap_second() {
        let t = IersTable::parse(SAMPLE, Path::new("sample")).unwrap();
        assert_eq!(
            t.range(),
            (57388.0, 57754.0),
            "the row without UT1-UTC ends the table"
        );
        let e = t.at(57388.5 + 2_400_000.5).unwrap();
        assert!((e.dut1_s - 0.5 * (0.0815795 + 0.0796373)).abs() < 1e-12);
        assert!((e.xp_arcsec - 0.5 * (0.051141 + 0.048904)).abs() < 1e-12);
        // Half way through 2016-12-31 (leap second at its end): UT1 - TAI is continuous.
        let e = t.at(57753.5 + 2_400_000.5).unwrap();
        assert!(
            (e.dut1_s - 0.5 * (-0.4077601 + 0.5912821 - 1.0)).abs() < 1e-12,
            "{}",
            e.dut1_s
        );
        assert!(t.at(2_400_000.5 + 58000.0).is_none());
        assert!(IersTable::parse(
            "junk line that is long enough to have columns\n",
            Path::new("x")
        )
        .is_err());
    }
}

/// `astrometry:` in the settings file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AstrometryConfig {
    /// IERS `finals2000A` file (e.g. finals2000A.all) for UT1 - UTC and polar motion. Unset
    /// (null): the table built into contimg (2020 to its predictions' end, configs/iers/);
    /// past a table's end UT1 = UTC is assumed with a warning (up to 0.9 s of sidereal
    /// time, 13.5" in RA).
    pub iers_file: Option<PathBuf>,
}
