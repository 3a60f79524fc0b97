//! The casacore side of the MS export (rubbl_casatables): tables, subtables and the main
//! table's rows, written one (time, window) block at a time.

use super::schema::{self, Col};
use super::MsContent;
use rubbl_casatables::{Array, CasaDataType, GlueDataType, Table, TableCreateMode};
use std::path::Path;

/// What casacore refused while a Measurement Set was written (the caller adds the MS path).
#[derive(Debug, thiserror::Error)]
pub enum CasaError {
    #[error(transparent)]
    Table(#[from] rubbl_casatables::TableError),
    #[error(transparent)]
    Casacore(#[from] rubbl_casatables::CasacoreError),
    /// A column's values did not fill the array shape prepared for them.
    #[error("{column}: the values do not fill the cell shape ({source})")]
    Shape {
        column: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{table}: {source}")]
    Subtable {
        table: &'static str,
        source: Box<CasaError>,
    },
}

/// The error of an array for column `column` whose values do not fill its shape.
pub(super) fn shape<E: std::error::Error + Send + Sync + 'static>(
    column: &'static str,
) -> impl FnOnce(E) -> CasaError {
    move |e| CasaError::Shape {
        column,
        source: Box::new(e),
    }
}

/// MJD seconds (the MS epoch scale) from a UTC Julian date.
pub(super) fn mjd(jd: f64) -> f64 {
    (jd - 2_400_000.5) * 86_400.0
}

/// A subtable with `rows` rows, filled by `fill`, linked from `main` under `name`.
pub(super) fn sub(
    main: &mut Table,
    dir: &Path,
    name: &'static str,
    cols: &[Col],
    rows: usize,
    fill: impl FnOnce(&mut Table) -> Result<(), CasaError>,
) -> Result<(), CasaError> {
    let in_table = |e: CasaError| CasaError::Subtable {
        table: name,
        source: Box::new(e),
    };
    let mut t = Table::new(
        dir.join(name),
        schema::desc(cols).map_err(in_table)?,
        rows,
        TableCreateMode::NewNoReplace,
    )
    .map_err(|e| in_table(e.into()))?;
    fill(&mut t).map_err(in_table)?;
    main.put_table_keyword(name, t)
        .map_err(|e| in_table(e.into()))
}

/// Writes the same value to every row of `col`.
pub(super) fn fill<V: CasaDataType>(
    t: &mut Table,
    col: &str,
    rows: usize,
    v: &V,
) -> Result<(), CasaError> {
    for r in 0..rows {
        t.put_cell(col, r as u64, v)?;
    }
    Ok(())
}

pub fn write(path: &Path, m: &MsContent, history: &str) -> Result<(), CasaError> {
    let g = m.g;
    let np = g.npol;
    let nbl = m.baselines.len();
    let nw = m.windows.len();
    let nch_max = m.windows.iter().map(|w| w.len()).max().unwrap_or(0);
    let fixed = m.windows.iter().all(|w| w.len() == nch_max);
    let n_rows = m.n_rows();
    let mut main = Table::new(
        path,
        schema::desc(schema::MAIN)?,
        0,
        TableCreateMode::NewNoReplace,
    )?;
    // The bulk columns in tiled storage, ~1 MB tiles of whole rows.
    let cell = [nch_max as u64, np as u64];
    let tile_rows = (131_072 / (nch_max * np).max(1)).max(1) as u64;
    let tile = [tile_rows, nch_max as u64, np as u64];
    for (ty, name) in [
        (GlueDataType::TpComplex, "DATA"),
        (GlueDataType::TpBool, "FLAG"),
        (GlueDataType::TpFloat, "WEIGHT_SPECTRUM"),
    ] {
        main.add_tiled_array_column(ty, name, None, &cell, &tile, &format!("Tiled{name}"), fixed)?;
    }
    main.put_column_keyword("DATA", "QuantumUnits", &vec!["Jy".to_string()])?;
    main.put_column_keyword("FLAG_CATEGORY", "CATEGORY", &Vec::<String>::new())?;
    main.add_rows(n_rows)?;

    let nt = g.n_times();
    let ant1: Vec<i32> = m
        .baselines
        .iter()
        .map(|&b| g.baselines[b].0 as i32)
        .collect();
    let ant2: Vec<i32> = m
        .baselines
        .iter()
        .map(|&b| g.baselines[b].1 as i32)
        .collect();
    let zeros = vec![0i32; nbl];
    let minus1 = vec![-1i32; nbl];
    let interval = vec![g.meta.integration_s; nbl];
    for t in 0..nt {
        let time = vec![mjd(g.times_jd[t]); nbl];
        let uvw: Vec<f64> = m.uvw_at(t).iter().flatten().copied().collect();
        let uvw = Array::from_shape_vec((nbl, 3), uvw).map_err(shape("UVW"))?;
        for w in 0..nw {
            let start = ((t * nw + w) * nbl) as u64;
            let nch = m.windows[w].len();
            let (data, flags, wts) = m.cells(t, w);
            // WEIGHT: the mean unflagged spectral weight per correlation; SIGMA = 1/sqrt(WEIGHT).
            let mut weight = vec![0f32; nbl * np];
            for (r, row) in wts.chunks(nch * np).enumerate() {
                for p in 0..np {
                    let (s, n) = row
                        .iter()
                        .skip(p)
                        .step_by(np)
                        .filter(|&&x| x > 0.0)
                        .fold((0.0f64, 0usize), |a, &x| (a.0 + x as f64, a.1 + 1));
                    weight[r * np + p] = if n > 0 { (s / n as f64) as f32 } else { 0.0 };
                }
            }
            let sigma: Vec<f32> = weight
                .iter()
                .map(|&x| if x > 0.0 { 1.0 / x.sqrt() } else { 0.0 })
                .collect();
            let flag_row: Vec<bool> = flags
                .chunks(nch * np)
                .map(|r| r.iter().all(|&f| f))
                .collect();
            main.put_column_range_array(
                "DATA",
                start,
                &Array::from_shape_vec((nbl, nch, np), data).map_err(shape("DATA"))?,
            )?;
            main.put_column_range_array(
                "FLAG",
                start,
                &Array::from_shape_vec((nbl, nch, np), flags).map_err(shape("FLAG"))?,
            )?;
            main.put_column_range_array(
                "WEIGHT_SPECTRUM",
                start,
                &Array::from_shape_vec((nbl, nch, np), wts).map_err(shape("WEIGHT_SPECTRUM"))?,
            )?;
            main.put_column_range_array(
                "WEIGHT",
                start,
                &Array::from_shape_vec((nbl, np), weight).map_err(shape("WEIGHT"))?,
            )?;
            main.put_column_range_array(
                "SIGMA",
                start,
                &Array::from_shape_vec((nbl, np), sigma).map_err(shape("SIGMA"))?,
            )?;
            main.put_column_range_array("UVW", start, &uvw)?;
            main.put_column_range_scalar("FLAG_ROW", start, &flag_row)?;
            main.put_column_range_scalar("ANTENNA1", start, &ant1)?;
            main.put_column_range_scalar("ANTENNA2", start, &ant2)?;
            main.put_column_range_scalar("DATA_DESC_ID", start, &vec![w as i32; nbl])?;
            for col in [
                "ARRAY_ID",
                "FEED1",
                "FEED2",
                "FIELD_ID",
                "OBSERVATION_ID",
                "PROCESSOR_ID",
            ] {
                main.put_column_range_scalar(col, start, &zeros)?;
            }
            main.put_column_range_scalar("SCAN_NUMBER", start, &vec![1i32; nbl])?;
            main.put_column_range_scalar("STATE_ID", start, &minus1)?;
            main.put_column_range_scalar("TIME", start, &time)?;
            main.put_column_range_scalar("TIME_CENTROID", start, &time)?;
            main.put_column_range_scalar("INTERVAL", start, &interval)?;
            main.put_column_range_scalar("EXPOSURE", start, &interval)?;
        }
    }
    super::subtables::write_all(&mut main, path, m, history)
}
