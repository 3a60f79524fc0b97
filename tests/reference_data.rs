//! The reference data compiled into contimg (station table, VLA calibrator list, IERS
//! table) parse.

/// The built-in reference data parse: all 117 stations, the VLA list with 3C147, and
/// the IERS table covering 2020 to its predictions (UT1-UTC within the 0.9 s bound).
#[test]
fn built_in_reference_data_load() {
    let s = contimg::core::stations::load_stations(None).unwrap();
    assert_eq!((s.len(), s[0].number, s[116].number), (117, 1, 117));
    let cals = contimg::calibrate::catalog::load_calibrators(None).unwrap();
    assert!(
        cals.len() > 1000 && cals.iter().any(|c| c.name == "0542+498"),
        "{} calibrators",
        cals.len()
    );
    let eop = contimg::primitives::iers::EarthOrientation::load(None).unwrap();
    for iso in [
        "2020-01-01T00:00:00",
        "2026-03-14T05:00:00",
        "2027-06-01T00:00:00",
    ] {
        let jd = contimg::primitives::time::iso_to_jd(iso).unwrap();
        assert!(eop.covers(jd) && eop.dut1(jd).abs() < 0.9, "{iso}");
    }
    assert!(!eop.covers(contimg::primitives::time::iso_to_jd("2031-01-01T00:00:00").unwrap()));
}
