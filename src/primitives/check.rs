//! The shapes of a settings check, shared by every section's `validate()`: each names the
//! full YAML key and says the allowed range and the value found
//! (`calibration.tolerance must be finite and in (0, 1), got NaN`).

/// A setting out of its range: the full key (`flagging.sumthreshold.eta`) and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} {problem}")]
pub struct SettingError {
    pub key: String,
    pub problem: String,
}

/// The error for `key` with `problem` (a phrase such as "must be at least 1, got 0").
pub fn fail(key: &str, problem: impl Into<String>) -> SettingError {
    SettingError {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// `Err(fail(key, problem))` unless `ok`.
pub fn ensure(ok: bool, key: &str, problem: impl FnOnce() -> String) -> Result<(), SettingError> {
    if ok {
        Ok(())
    } else {
        Err(fail(key, problem()))
    }
}

fn real(key: &str, v: f64, ok: bool, range: &str) -> Result<(), SettingError> {
    ensure(v.is_finite() && ok, key, || {
        format!("must be finite and {range}, got {v}")
    })
}

/// Finite (any sign).
pub fn finite(key: &str, v: f64) -> Result<(), SettingError> {
    real(key, v, true, "a number")
}

/// Finite and > 0.
pub fn positive(key: &str, v: f64) -> Result<(), SettingError> {
    real(key, v, v > 0.0, "> 0")
}

/// Finite and >= 0 (`what_zero` says what 0 means, e.g. "0 = off"; empty: nothing).
pub fn non_negative(key: &str, v: f64, what_zero: &str) -> Result<(), SettingError> {
    if what_zero.is_empty() {
        real(key, v, v >= 0.0, ">= 0")
    } else {
        real(key, v, v >= 0.0, &format!(">= 0 ({what_zero})"))
    }
}

/// Finite and >= `lo`.
pub fn at_least(key: &str, v: f64, lo: f64) -> Result<(), SettingError> {
    real(key, v, v >= lo, &format!(">= {lo}"))
}

/// Finite and in [lo, hi].
pub fn closed(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), SettingError> {
    real(key, v, v >= lo && v <= hi, &format!("in [{lo}, {hi}]"))
}

/// Finite and in [lo, hi).
pub fn closed_open(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), SettingError> {
    real(key, v, v >= lo && v < hi, &format!("in [{lo}, {hi})"))
}

/// Finite and in (lo, hi].
pub fn open_closed(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), SettingError> {
    real(key, v, v > lo && v <= hi, &format!("in ({lo}, {hi}]"))
}

/// Finite and in (lo, hi).
pub fn open(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), SettingError> {
    real(key, v, v > lo && v < hi, &format!("in ({lo}, {hi})"))
}

/// A count in [lo, hi].
pub fn count(key: &str, n: usize, lo: usize, hi: usize) -> Result<(), SettingError> {
    ensure((lo..=hi).contains(&n), key, || {
        format!("must be in [{lo}, {hi}], got {n}")
    })
}

/// A range [lo, hi] of finite values with lo <= hi, both >= `min`.
pub fn pair(key: &str, r: [f64; 2], min: f64) -> Result<(), SettingError> {
    ensure(
        r.iter().all(|x| x.is_finite()) && r[0] >= min && r[0] <= r[1],
        key,
        || format!("must be [lo, hi] with {min} <= lo <= hi, finite, got {r:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_key_the_range_and_the_value() {
        let e = positive("calibration.tolerance", f64::NAN).unwrap_err();
        assert_eq!(
            e.to_string(),
            "calibration.tolerance must be finite and > 0, got NaN"
        );
        let e = closed_open("flagging.sir_eta", 1.0, 0.0, 1.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "flagging.sir_eta must be finite and in [0, 1), got 1"
        );
        assert!(closed_open("flagging.sir_eta", 0.0, 0.0, 1.0).is_ok());
        assert!(open_closed("x", 0.0, 0.0, 1.0).is_err());
        assert!(open("x", 1.0, 0.0, 1.0).is_err());
        assert!(closed("x", f64::INFINITY, 0.0, f64::INFINITY).is_err());
        assert!(non_negative("x", -0.5, "0 = off").is_err());
        assert!(non_negative("x", 0.0, "0 = off").is_ok());
        assert!(at_least("x", 0.5, 1.0).is_err());
        assert!(finite("x", -1e300).is_ok());
        let e = count("imaging.max_major_cycles", 0, 1, 1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "imaging.max_major_cycles must be in [1, 1000], got 0"
        );
        assert!(pair("r", [2.0, 1.0], 0.0).is_err());
        assert!(pair("r", [-1.0, 1.0], 0.0).is_err());
        assert!(pair("r", [1.0, 1.0], 0.0).is_ok());
    }
}
