//! The DSA-110 station table (`DSA110_Station_Coordinates.csv`: WGS84 lat/lon/elevation).

use crate::primitives::astrometry::{geodetic_to_ecef, V3};
use std::path::{Path, PathBuf};

/// Elevation used where the table has none (station 117).
pub const DEFAULT_ELEVATION_M: f64 = 1182.6;

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error("{path}: cannot read station table ({source})")]
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
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: no header row with 'Station Number' found")]
    NoHeader { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    /// Station number, 1..117.
    pub number: u32,
    pub lat_deg: f64,
    pub lon_deg: f64,
    pub elev_m: f64,
}

impl Station {
    /// Geocentric ECEF position (m).
    pub fn ecef(&self) -> V3 {
        geodetic_to_ecef(
            self.lat_deg.to_radians(),
            self.lon_deg.to_radians(),
            self.elev_m,
        )
    }
}

/// The DSA-110 station table compiled into contimg (configs/dsa110/).
pub const BUILTIN_CSV: &str = include_str!("../../configs/dsa110/DSA110_Station_Coordinates.csv");

/// The station table from `path`, or the built-in one when None.
pub fn load_stations(path: Option<&Path>) -> Result<Vec<Station>, StationError> {
    match path {
        Some(p) => read_stations(p),
        None => parse_stations(
            BUILTIN_CSV,
            Path::new("built-in DSA110_Station_Coordinates.csv"),
        ),
    }
}

/// Reads the station table, sorted by station number.
pub fn read_stations(path: &Path) -> Result<Vec<Station>, StationError> {
    let text = std::fs::read_to_string(path).map_err(|source| StationError::Io {
        path: path.into(),
        source,
    })?;
    parse_stations(&text, path)
}

pub fn parse_stations(text: &str, path: &Path) -> Result<Vec<Station>, StationError> {
    // The file has title rows above its header; rows are read with the csv crate (quoted
    // fields, ragged rows).
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes())
        .into_records();
    let mut found = false;
    for r in rows.by_ref() {
        if r.is_ok_and(|r| r.iter().any(|c| c.contains("Station Number"))) {
            found = true;
            break;
        }
    }
    if !found {
        return Err(StationError::NoHeader { path: path.into() });
    }
    let mut out = Vec::new();
    for r in rows {
        let line = r
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(0, |p| p.line() as usize);
        let err = |problem: String| StationError::Parse {
            path: path.into(),
            line,
            problem,
        };
        let r = r.map_err(|source| StationError::Csv {
            path: path.into(),
            source,
        })?;
        let cols: Vec<&str> = r.iter().collect();
        if cols.iter().all(|c| c.is_empty()) {
            continue;
        }
        if cols.len() < 4 {
            return Err(err(format!(
                "expected name, latitude, longitude, elevation; got {cols:?}"
            )));
        }
        let name = cols[1];
        let number: u32 = name
            .trim_start_matches("DSA-")
            .parse()
            .map_err(|_| err(format!("station name {name:?} is not DSA-NNN")))?;
        let lat_deg: f64 = cols[2]
            .parse()
            .map_err(|_| err(format!("latitude {:?}", cols[2])))?;
        let lon_deg: f64 = cols[3]
            .parse()
            .map_err(|_| err(format!("longitude {:?}", cols[3])))?;
        let elev_m = match cols.get(4).copied().unwrap_or("") {
            "" => DEFAULT_ELEVATION_M,
            s => s.parse().map_err(|_| err(format!("elevation {s:?}")))?,
        };
        out.push(Station {
            number,
            lat_deg,
            lon_deg,
            elev_m,
        });
    }
    out.sort_by_key(|s| s.number);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_table_with_preamble_and_missing_elevation() {
        let text = ",,,,\n,DSA-110 Station Coordinates,,,\n,Station Number,Latitude,Longitude,Elevation (meters)\n,DSA-002,37.2333752,-118.2855760,1182.6\n,DSA-117,37.2315343,-118.2966607,\n";
        let s = parse_stations(text, Path::new("t.csv")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].number, 117);
        assert_eq!(s[1].elev_m, DEFAULT_ELEVATION_M);
        assert!(parse_stations("nothing", Path::new("t.csv")).is_err());
    }
}
