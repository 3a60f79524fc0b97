//! Time scales: UTC Julian dates to TT and UT1, and apparent sidereal time (IAU 2006/2000A).

/// Seconds per day.
pub const SEC_PER_DAY: f64 = 86_400.0;

/// Leap seconds (TAI - UTC) in force from the given UTC Julian date (IERS Bulletin C).
/// No leap second has been announced after 2017-01-01 as of this writing.
const LEAP_SECONDS: [(f64, f64); 7] = [
    (2_451_179.5, 32.0), // 1999-01-01
    (2_453_736.5, 33.0), // 2006-01-01
    (2_454_832.5, 34.0), // 2009-01-01
    (2_456_109.5, 35.0), // 2012-07-01
    (2_457_204.5, 36.0), // 2015-07-01
    (2_457_754.5, 37.0), // 2017-01-01
    (f64::INFINITY, 37.0),
];

/// TAI - UTC in seconds at the given UTC Julian date (dates before 1999 use 32 s; contimg
/// only handles DSA-110 data, taken from 2021 on).
pub fn tai_minus_utc(jd_utc: f64) -> f64 {
    let mut dat = 32.0;
    for &(start, value) in LEAP_SECONDS.iter() {
        if jd_utc >= start {
            dat = value;
        } else {
            break;
        }
    }
    dat
}

/// An instant, kept as a UTC Julian date plus the UT1-UTC offset in force.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epoch {
    /// UTC Julian date.
    pub jd_utc: f64,
    /// UT1 - UTC in seconds (0 when no IERS table is configured).
    pub dut1_s: f64,
    /// Polar motion (rad; 0 without an IERS table).
    pub xp_rad: f64,
    pub yp_rad: f64,
}

impl Epoch {
    pub fn from_jd_utc(jd_utc: f64) -> Self {
        Epoch {
            jd_utc,
            dut1_s: 0.0,
            xp_rad: 0.0,
            yp_rad: 0.0,
        }
    }

    pub fn with_dut1(jd_utc: f64, dut1_s: f64) -> Self {
        Epoch {
            jd_utc,
            dut1_s,
            xp_rad: 0.0,
            yp_rad: 0.0,
        }
    }

    /// TT as a two-part Julian date (2400000.5, MJD part) for precision.
    pub fn tt(&self) -> (f64, f64) {
        let mjd = self.jd_utc - 2_400_000.5;
        let dt = (tai_minus_utc(self.jd_utc) + 32.184) / SEC_PER_DAY;
        (2_400_000.5, mjd + dt)
    }

    /// UT1 as a two-part Julian date.
    pub fn ut1(&self) -> (f64, f64) {
        let mjd = self.jd_utc - 2_400_000.5;
        (2_400_000.5, mjd + self.dut1_s / SEC_PER_DAY)
    }

    /// Greenwich apparent sidereal time (rad), IAU 2006/2000A.
    pub fn gast(&self) -> f64 {
        let (u1, u2) = self.ut1();
        let (t1, t2) = self.tt();
        erfa::time::gst06a(u1, u2, t1, t2)
    }

    /// Local apparent sidereal time (rad, 0..2pi) at east longitude `lon_rad`.
    pub fn last(&self, lon_rad: f64) -> f64 {
        (self.gast() + lon_rad).rem_euclid(std::f64::consts::TAU)
    }
}

/// Converts a UTC Julian date to a calendar string `YYYY-MM-DDTHH:MM:SS(.fff)`.
pub fn jd_to_iso(jd: f64, decimals: usize) -> String {
    // Fliegel & Van Flandern style conversion on the integer day.
    let z = (jd + 0.5).floor();
    let mut frac = jd + 0.5 - z;
    let mut zi = z as i64;
    // Round the seconds first so that 59.9996 does not print as 60.
    let scale = 10f64.powi(decimals as i32);
    let mut secs_of_day = (frac * SEC_PER_DAY * scale).round() / scale;
    if secs_of_day >= SEC_PER_DAY {
        secs_of_day -= SEC_PER_DAY;
        zi += 1;
    }
    frac = secs_of_day;
    let a = if zi < 2_299_161 {
        zi
    } else {
        let alpha = ((zi as f64 - 1_867_216.25) / 36_524.25).floor() as i64;
        zi + 1 + alpha - alpha / 4
    };
    let b = a + 1524;
    let c = ((b as f64 - 122.1) / 365.25).floor() as i64;
    let d = (365.25 * c as f64).floor() as i64;
    let e = ((b - d) as f64 / 30.6001).floor() as i64;
    let day = b - d - (30.6001 * e as f64).floor() as i64;
    let month = if e < 14 { e - 1 } else { e - 13 };
    let year = if month > 2 { c - 4716 } else { c - 4715 };
    let h = (frac / 3600.0).floor();
    let m = ((frac - h * 3600.0) / 60.0).floor();
    let s = frac - h * 3600.0 - m * 60.0;
    if decimals == 0 {
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            h as u32,
            m as u32,
            s.round() as u32
        )
    } else {
        let w = 3 + decimals;
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:0w$.decimals$}",
            h as u32, m as u32, s
        )
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS` (fractional seconds allowed) to a UTC Julian date.
pub fn iso_to_jd(s: &str) -> Option<f64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let mut t = time.split(':');
    let h: f64 = t.next()?.parse().ok()?;
    let m: f64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || h >= 24.0
        || m >= 60.0
        || sec >= 61.0
    {
        return None;
    }
    // Gregorian calendar date to JD at 0h (valid for all dates after 1582).
    let a = (14 - month) / 12;
    let y = year + 4800 - a;
    let mm = month + 12 * a - 3;
    let jdn = day + (153 * mm + 2) / 5 + 365 * y + y / 4 - y / 100 + y / 400 - 32045;
    Some(jdn as f64 - 0.5 + (h * 3600.0 + m * 60.0 + sec) / SEC_PER_DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip() {
        let jd = iso_to_jd("2026-03-14T05:06:07").unwrap();
        assert_eq!(jd_to_iso(jd, 0), "2026-03-14T05:06:07");
        // J2000.0 = 2000-01-01T12:00:00 TT; as a UTC calendar date it is JD 2451545.0.
        assert_eq!(iso_to_jd("2000-01-01T12:00:00").unwrap(), 2_451_545.0);
        assert_eq!(jd_to_iso(2_451_545.0, 3), "2000-01-01T12:00:00.000");
        assert!(iso_to_jd("2026-13-01T00:00:00").is_none());
    }

    #[test]
    fn leap_seconds() {
        assert_eq!(tai_minus_utc(2_460_000.0), 37.0);
        assert_eq!(tai_minus_utc(2_457_000.0), 35.0);
    }

    #[test]
    fn gast_matches_erfa_test_value() {
        // SOFA/ERFA test: eraGst06a(2453736.0, 0.5, 2453736.0, 0.5) = 1.754166137675019159 rad.
        let g = erfa::time::gst06a(2_453_736.0, 0.5, 2_453_736.0, 0.5);
        assert!((g - 1.754_166_137_675_019_2).abs() < 1e-12);
    }
}
