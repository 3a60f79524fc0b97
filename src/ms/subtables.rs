//! The MS subtables: ANTENNA, FIELD, SPECTRAL_WINDOW, POLARIZATION, DATA_DESCRIPTION,
//! OBSERVATION, FEED, PROCESSOR, HISTORY, and the (empty) POINTING, STATE and FLAG_CMD.

use super::casa::{fill, mjd, shape, sub, CasaError};
use super::schema;
use super::MsContent;
use rubbl_casatables::{Array, Complex, Table};
use std::path::Path;

/// Stokes codes of the correlations (casacore Stokes::StokesTypes): XX = 9, YY = 12.
const CORR_XX_YY: [i32; 2] = [9, 12];

pub fn write_all(
    main: &mut Table,
    dir: &Path,
    m: &MsContent,
    history: &str,
) -> Result<(), CasaError> {
    let g = m.g;
    let nant = g.ant_pos.len();
    let nt = g.n_times();
    let half = 0.5 * g.meta.integration_s;
    let (t0, t1) = (mjd(g.times_jd[0]) - half, mjd(g.times_jd[nt - 1]) + half);
    let tmid = 0.5 * (t0 + t1);
    main.put_keyword("MS_VERSION", &2.0f32)?;

    sub(main, dir, "ANTENNA", schema::ANTENNA, nant, |t| {
        for a in 0..nant {
            let r = a as u64;
            let p = g.ant_pos[a];
            t.put_cell(
                "POSITION",
                r,
                &vec![
                    g.site.ecef[0] + p[0],
                    g.site.ecef[1] + p[1],
                    g.site.ecef[2] + p[2],
                ],
            )?;
            t.put_cell("OFFSET", r, &vec![0.0f64; 3])?;
            let name = g
                .antenna_names
                .get(a)
                .cloned()
                .unwrap_or_else(|| format!("{a}"));
            t.put_cell("NAME", r, &name)?;
            t.put_cell("STATION", r, &format!("DSA-{name}"))?;
            t.put_cell(
                "DISH_DIAMETER",
                r,
                &g.meta
                    .dish_diameter_m
                    .get(a)
                    .copied()
                    .unwrap_or(crate::core::telescope::DISH_DIAMETER_M),
            )?;
        }
        fill(t, "TYPE", nant, &"GROUND-BASED".to_string())?;
        fill(t, "MOUNT", nant, &"ALT-AZ".to_string())?;
        fill(t, "FLAG_ROW", nant, &false)
    })?;

    sub(main, dir, "FIELD", schema::FIELD, 1, |t| {
        let dir = Array::from_shape_vec((1, 2), vec![m.centre.ra_rad, m.centre.dec_rad])
            .map_err(shape("PHASE_DIR"))?;
        for col in ["DELAY_DIR", "PHASE_DIR", "REFERENCE_DIR"] {
            t.put_cell(col, 0, &dir)?;
        }
        t.put_cell(
            "NAME",
            0,
            &format!(
                "drift_{:.4}_{:+.4}",
                m.centre.ra_rad.to_degrees(),
                m.centre.dec_rad.to_degrees()
            ),
        )?;
        t.put_cell("CODE", 0, &String::new())?;
        t.put_cell("FLAG_ROW", 0, &false)?;
        t.put_cell("NUM_POLY", 0, &0i32)?;
        t.put_cell("SOURCE_ID", 0, &-1i32)?;
        t.put_cell("TIME", 0, &tmid)?;
        Ok(())
    })?;

    let nw = m.windows.len();
    sub(
        main,
        dir,
        "SPECTRAL_WINDOW",
        schema::SPECTRAL_WINDOW,
        nw,
        |t| {
            for (w, win) in m.windows.iter().enumerate() {
                let r = w as u64;
                let f: Vec<f64> = g.freqs[win.clone()].to_vec();
                let width = vec![g.channel_width_hz; f.len()];
                t.put_cell("CHAN_FREQ", r, &f)?;
                for col in ["CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"] {
                    t.put_cell(col, r, &width)?;
                }
                t.put_cell("NUM_CHAN", r, &(f.len() as i32))?;
                t.put_cell("REF_FREQUENCY", r, &f[0])?;
                t.put_cell(
                    "TOTAL_BANDWIDTH",
                    r,
                    &(f[f.len() - 1] - f[0] + g.channel_width_hz),
                )?;
                t.put_cell(
                    "NAME",
                    r,
                    &if nw == 1 {
                        "merged".to_string()
                    } else {
                        format!("subband_{w:02}")
                    },
                )?;
            }
            fill(t, "MEAS_FREQ_REF", nw, &5i32)?; // TOPO
            fill(t, "NET_SIDEBAND", nw, &1i32)?;
            fill(t, "FREQ_GROUP", nw, &0i32)?;
            fill(t, "IF_CONV_CHAIN", nw, &0i32)?;
            fill(t, "FREQ_GROUP_NAME", nw, &String::new())?;
            fill(t, "FLAG_ROW", nw, &false)
        },
    )?;

    sub(main, dir, "POLARIZATION", schema::POLARIZATION, 1, |t| {
        t.put_cell("CORR_TYPE", 0, &CORR_XX_YY.to_vec())?;
        t.put_cell(
            "CORR_PRODUCT",
            0,
            &Array::from_shape_vec((2, 2), vec![0i32, 0, 1, 1]).map_err(shape("CORR_PRODUCT"))?,
        )?;
        t.put_cell("NUM_CORR", 0, &2i32)?;
        t.put_cell("FLAG_ROW", 0, &false)?;
        Ok(())
    })?;

    sub(
        main,
        dir,
        "DATA_DESCRIPTION",
        schema::DATA_DESCRIPTION,
        nw,
        |t| {
            for w in 0..nw {
                t.put_cell("SPECTRAL_WINDOW_ID", w as u64, &(w as i32))?;
            }
            fill(t, "POLARIZATION_ID", nw, &0i32)?;
            fill(t, "FLAG_ROW", nw, &false)
        },
    )?;

    write_observation_to_history(main, dir, m, history, (t0, t1))
}

/// OBSERVATION, FEED, PROCESSOR and HISTORY over the group's span [t0, t1] (MJD seconds),
/// and the empty POINTING, STATE and FLAG_CMD.
fn write_observation_to_history(
    main: &mut Table,
    dir: &Path,
    m: &MsContent,
    history: &str,
    (t0, t1): (f64, f64),
) -> Result<(), CasaError> {
    let g = m.g;
    let nant = g.ant_pos.len();
    let tmid = 0.5 * (t0 + t1);
    sub(main, dir, "OBSERVATION", schema::OBSERVATION, 1, |t| {
        t.put_cell("TIME_RANGE", 0, &vec![t0, t1])?;
        t.put_cell("TELESCOPE_NAME", 0, &g.meta.telescope_name)?;
        t.put_cell("OBSERVER", 0, &"DSA-110".to_string())?;
        t.put_cell("PROJECT", 0, &"contimg".to_string())?;
        t.put_cell("SCHEDULE_TYPE", 0, &String::new())?;
        t.put_cell("RELEASE_DATE", 0, &0.0f64)?;
        t.put_cell("LOG", 0, &vec![String::new()])?;
        t.put_cell("SCHEDULE", 0, &vec![String::new()])?;
        t.put_cell("FLAG_ROW", 0, &false)?;
        Ok(())
    })?;

    sub(main, dir, "FEED", schema::FEED, nant, |t| {
        for a in 0..nant {
            t.put_cell("ANTENNA_ID", a as u64, &(a as i32))?;
        }
        fill(t, "POSITION", nant, &vec![0.0f64; 3])?;
        fill(
            t,
            "BEAM_OFFSET",
            nant,
            &Array::from_shape_vec((2, 2), vec![0.0f64; 4]).map_err(shape("BEAM_OFFSET"))?,
        )?;
        fill(
            t,
            "POLARIZATION_TYPE",
            nant,
            &vec!["X".to_string(), "Y".to_string()],
        )?;
        let one = Complex::new(1.0f32, 0.0);
        let zero = Complex::new(0.0f32, 0.0);
        fill(
            t,
            "POL_RESPONSE",
            nant,
            &Array::from_shape_vec((2, 2), vec![one, zero, zero, one])
                .map_err(shape("POL_RESPONSE"))?,
        )?;
        fill(
            t,
            "RECEPTOR_ANGLE",
            nant,
            &vec![0.0f64, std::f64::consts::FRAC_PI_2],
        )?;
        fill(t, "BEAM_ID", nant, &-1i32)?;
        fill(t, "FEED_ID", nant, &0i32)?;
        fill(t, "NUM_RECEPTORS", nant, &2i32)?;
        fill(t, "SPECTRAL_WINDOW_ID", nant, &-1i32)?;
        fill(t, "TIME", nant, &tmid)?;
        fill(t, "INTERVAL", nant, &(t1 - t0))
    })?;

    sub(main, dir, "PROCESSOR", schema::PROCESSOR, 1, |t| {
        t.put_cell("TYPE", 0, &"CORRELATOR".to_string())?;
        t.put_cell("SUB_TYPE", 0, &g.meta.telescope_name)?;
        t.put_cell("TYPE_ID", 0, &-1i32)?;
        t.put_cell("MODE_ID", 0, &-1i32)?;
        t.put_cell("FLAG_ROW", 0, &false)?;
        Ok(())
    })?;

    sub(main, dir, "HISTORY", schema::HISTORY, 1, |t| {
        let cli: Vec<String> = std::env::args().collect();
        t.put_cell("TIME", 0, &tmid)?;
        t.put_cell("MESSAGE", 0, &history.to_string())?;
        t.put_cell(
            "APPLICATION",
            0,
            &format!("contimg {}", env!("CARGO_PKG_VERSION")),
        )?;
        t.put_cell("ORIGIN", 0, &"contimg::ms".to_string())?;
        t.put_cell("PRIORITY", 0, &"NORMAL".to_string())?;
        t.put_cell("OBJECT_ID", 0, &0i32)?;
        t.put_cell("OBSERVATION_ID", 0, &0i32)?;
        t.put_cell("CLI_COMMAND", 0, &cli)?;
        t.put_cell("APP_PARAMS", 0, &vec![String::new()])?;
        Ok(())
    })?;

    for (name, cols) in [
        ("POINTING", schema::POINTING),
        ("STATE", schema::STATE),
        ("FLAG_CMD", schema::FLAG_CMD),
    ] {
        sub(main, dir, name, cols, 0, |_| Ok(()))?;
    }
    Ok(())
}
