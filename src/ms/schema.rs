//! Column definitions of the MS v2 main table and its required subtables (the MeasurementSet
//! definition, CASA memo 229), with units (QuantumUnits) and measure (MEASINFO) keywords.
//! Shapes are casacore's read row-major, as rubbl writes them: DATA is `[nchan, ncorr]`.

use rubbl_casatables::{GlueDataType as T, TableDesc, TableDescCreateMode, TableRecord};

#[derive(Clone, Copy)]
pub enum Shape {
    Scalar,
    Fixed(&'static [u64]),
    /// Variable shape with a fixed number of dimensions.
    Ndim(u64),
}

#[derive(Clone, Copy)]
pub enum Meas {
    None,
    /// A measure with a fixed reference frame: (type, Ref).
    Fixed(&'static str, &'static str),
    /// Frequencies whose frame is the row's MEAS_FREQ_REF.
    FreqVarRef,
}

pub struct Col {
    pub name: &'static str,
    pub ty: T,
    pub shape: Shape,
    pub units: &'static [&'static str],
    pub meas: Meas,
}

const fn c(name: &'static str, ty: T) -> Col {
    Col {
        name,
        ty,
        shape: Shape::Scalar,
        units: &[],
        meas: Meas::None,
    }
}
const fn arr(name: &'static str, ty: T, shape: Shape) -> Col {
    Col {
        name,
        ty,
        shape,
        units: &[],
        meas: Meas::None,
    }
}
const fn q(
    name: &'static str,
    ty: T,
    shape: Shape,
    units: &'static [&'static str],
    meas: Meas,
) -> Col {
    Col {
        name,
        ty,
        shape,
        units,
        meas,
    }
}

const S: &[&str] = &["s"];
const M3: &[&str] = &["m", "m", "m"];
const RAD2: &[&str] = &["rad", "rad"];
const HZ: &[&str] = &["Hz"];
const UTC: Meas = Meas::Fixed("epoch", "UTC");
const J2000: Meas = Meas::Fixed("direction", "J2000");
const TIME: Col = q("TIME", T::TpDouble, Shape::Scalar, S, UTC);
const INTERVAL: Col = q("INTERVAL", T::TpDouble, Shape::Scalar, S, Meas::None);
const FLAG_ROW: Col = c("FLAG_ROW", T::TpBool);

/// Main table except DATA, FLAG and WEIGHT_SPECTRUM, which get tiled storage managers.
pub const MAIN: &[Col] = &[
    q(
        "UVW",
        T::TpDouble,
        Shape::Fixed(&[3]),
        M3,
        Meas::Fixed("uvw", "J2000"),
    ),
    arr("FLAG_CATEGORY", T::TpBool, Shape::Ndim(3)),
    arr("WEIGHT", T::TpFloat, Shape::Ndim(1)),
    arr("SIGMA", T::TpFloat, Shape::Ndim(1)),
    c("ANTENNA1", T::TpInt),
    c("ANTENNA2", T::TpInt),
    c("ARRAY_ID", T::TpInt),
    c("DATA_DESC_ID", T::TpInt),
    q("EXPOSURE", T::TpDouble, Shape::Scalar, S, Meas::None),
    c("FEED1", T::TpInt),
    c("FEED2", T::TpInt),
    c("FIELD_ID", T::TpInt),
    FLAG_ROW,
    INTERVAL,
    c("OBSERVATION_ID", T::TpInt),
    c("PROCESSOR_ID", T::TpInt),
    c("SCAN_NUMBER", T::TpInt),
    c("STATE_ID", T::TpInt),
    TIME,
    q("TIME_CENTROID", T::TpDouble, Shape::Scalar, S, UTC),
];

pub const ANTENNA: &[Col] = &[
    q(
        "OFFSET",
        T::TpDouble,
        Shape::Fixed(&[3]),
        M3,
        Meas::Fixed("position", "ITRF"),
    ),
    q(
        "POSITION",
        T::TpDouble,
        Shape::Fixed(&[3]),
        M3,
        Meas::Fixed("position", "ITRF"),
    ),
    c("TYPE", T::TpString),
    q(
        "DISH_DIAMETER",
        T::TpDouble,
        Shape::Scalar,
        &["m"],
        Meas::None,
    ),
    FLAG_ROW,
    c("MOUNT", T::TpString),
    c("NAME", T::TpString),
    c("STATION", T::TpString),
];

pub const FIELD: &[Col] = &[
    q("DELAY_DIR", T::TpDouble, Shape::Ndim(2), RAD2, J2000),
    q("PHASE_DIR", T::TpDouble, Shape::Ndim(2), RAD2, J2000),
    q("REFERENCE_DIR", T::TpDouble, Shape::Ndim(2), RAD2, J2000),
    c("CODE", T::TpString),
    FLAG_ROW,
    c("NAME", T::TpString),
    c("NUM_POLY", T::TpInt),
    c("SOURCE_ID", T::TpInt),
    TIME,
];

pub const SPECTRAL_WINDOW: &[Col] = &[
    q(
        "CHAN_FREQ",
        T::TpDouble,
        Shape::Ndim(1),
        HZ,
        Meas::FreqVarRef,
    ),
    q("CHAN_WIDTH", T::TpDouble, Shape::Ndim(1), HZ, Meas::None),
    q("EFFECTIVE_BW", T::TpDouble, Shape::Ndim(1), HZ, Meas::None),
    q("RESOLUTION", T::TpDouble, Shape::Ndim(1), HZ, Meas::None),
    FLAG_ROW,
    c("FREQ_GROUP", T::TpInt),
    c("FREQ_GROUP_NAME", T::TpString),
    c("IF_CONV_CHAIN", T::TpInt),
    c("MEAS_FREQ_REF", T::TpInt),
    c("NAME", T::TpString),
    c("NET_SIDEBAND", T::TpInt),
    c("NUM_CHAN", T::TpInt),
    q(
        "REF_FREQUENCY",
        T::TpDouble,
        Shape::Scalar,
        HZ,
        Meas::FreqVarRef,
    ),
    q(
        "TOTAL_BANDWIDTH",
        T::TpDouble,
        Shape::Scalar,
        HZ,
        Meas::None,
    ),
];

pub const POLARIZATION: &[Col] = &[
    arr("CORR_TYPE", T::TpInt, Shape::Ndim(1)),
    arr("CORR_PRODUCT", T::TpInt, Shape::Ndim(2)),
    FLAG_ROW,
    c("NUM_CORR", T::TpInt),
];

pub const DATA_DESCRIPTION: &[Col] = &[
    FLAG_ROW,
    c("POLARIZATION_ID", T::TpInt),
    c("SPECTRAL_WINDOW_ID", T::TpInt),
];

pub const OBSERVATION: &[Col] = &[
    q("TIME_RANGE", T::TpDouble, Shape::Fixed(&[2]), S, UTC),
    arr("LOG", T::TpString, Shape::Ndim(1)),
    arr("SCHEDULE", T::TpString, Shape::Ndim(1)),
    FLAG_ROW,
    c("OBSERVER", T::TpString),
    c("PROJECT", T::TpString),
    q("RELEASE_DATE", T::TpDouble, Shape::Scalar, S, UTC),
    c("SCHEDULE_TYPE", T::TpString),
    c("TELESCOPE_NAME", T::TpString),
];

pub const FEED: &[Col] = &[
    q(
        "POSITION",
        T::TpDouble,
        Shape::Fixed(&[3]),
        M3,
        Meas::Fixed("position", "ITRF"),
    ),
    q("BEAM_OFFSET", T::TpDouble, Shape::Ndim(2), RAD2, J2000),
    arr("POLARIZATION_TYPE", T::TpString, Shape::Ndim(1)),
    arr("POL_RESPONSE", T::TpComplex, Shape::Ndim(2)),
    q(
        "RECEPTOR_ANGLE",
        T::TpDouble,
        Shape::Ndim(1),
        &["rad"],
        Meas::None,
    ),
    c("ANTENNA_ID", T::TpInt),
    c("BEAM_ID", T::TpInt),
    c("FEED_ID", T::TpInt),
    INTERVAL,
    c("NUM_RECEPTORS", T::TpInt),
    c("SPECTRAL_WINDOW_ID", T::TpInt),
    TIME,
];

pub const POINTING: &[Col] = &[
    q("DIRECTION", T::TpDouble, Shape::Ndim(2), RAD2, J2000),
    c("ANTENNA_ID", T::TpInt),
    INTERVAL,
    c("NAME", T::TpString),
    c("NUM_POLY", T::TpInt),
    q("TARGET", T::TpDouble, Shape::Ndim(2), RAD2, J2000),
    TIME,
    q("TIME_ORIGIN", T::TpDouble, Shape::Scalar, S, UTC),
    c("TRACKING", T::TpBool),
];

pub const PROCESSOR: &[Col] = &[
    FLAG_ROW,
    c("MODE_ID", T::TpInt),
    c("TYPE", T::TpString),
    c("TYPE_ID", T::TpInt),
    c("SUB_TYPE", T::TpString),
];

pub const STATE: &[Col] = &[
    q("CAL", T::TpDouble, Shape::Scalar, &["K"], Meas::None),
    FLAG_ROW,
    q("LOAD", T::TpDouble, Shape::Scalar, &["K"], Meas::None),
    c("OBS_MODE", T::TpString),
    c("REF", T::TpBool),
    c("SIG", T::TpBool),
    c("SUB_SCAN", T::TpInt),
];

pub const HISTORY: &[Col] = &[
    c("APPLICATION", T::TpString),
    arr("APP_PARAMS", T::TpString, Shape::Ndim(1)),
    arr("CLI_COMMAND", T::TpString, Shape::Ndim(1)),
    c("MESSAGE", T::TpString),
    c("OBJECT_ID", T::TpInt),
    c("OBSERVATION_ID", T::TpInt),
    c("ORIGIN", T::TpString),
    c("PRIORITY", T::TpString),
    TIME,
];

pub const FLAG_CMD: &[Col] = &[
    c("APPLIED", T::TpBool),
    c("COMMAND", T::TpString),
    INTERVAL,
    c("LEVEL", T::TpInt),
    c("REASON", T::TpString),
    c("SEVERITY", T::TpInt),
    TIME,
    c("TYPE", T::TpString),
];

/// casacore's frequency reference codes (MFrequency::Types) for a MEAS_FREQ_REF column.
const FREQ_REF_TYPES: [&str; 10] = [
    "REST",
    "LSRK",
    "LSRD",
    "BARY",
    "GEO",
    "TOPO",
    "GALACTO",
    "LGROUP",
    "CMB",
    "Undefined",
];
const FREQ_REF_CODES: [u32; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 64];

/// A table description holding `cols`.
pub fn desc(cols: &[Col]) -> Result<TableDesc, super::casa::CasaError> {
    let mut d = TableDesc::new("", TableDescCreateMode::TDM_SCRATCH)?;
    for col in cols {
        match col.shape {
            Shape::Scalar => d.add_scalar_column(col.ty, col.name, None, false, false)?,
            Shape::Fixed(s) => d.add_array_column(col.ty, col.name, None, Some(s), true, false)?,
            Shape::Ndim(n) => {
                d.add_array_column(col.ty, col.name, None, None, false, false)?;
                d.set_ndims(col.name, n)?;
            }
        }
        if !col.units.is_empty() {
            let u: Vec<String> = col.units.iter().map(|s| s.to_string()).collect();
            d.put_column_keyword(col.name, "QuantumUnits", &u)?;
        }
        let mut rec = TableRecord::new()?;
        match col.meas {
            Meas::None => continue,
            Meas::Fixed(ty, r) => {
                rec.put_field("type", &ty.to_string())?;
                rec.put_field("Ref", &r.to_string())?;
            }
            Meas::FreqVarRef => {
                rec.put_field("type", &"frequency".to_string())?;
                rec.put_field("VarRefCol", &"MEAS_FREQ_REF".to_string())?;
                rec.put_field(
                    "TabRefTypes",
                    &FREQ_REF_TYPES
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                )?;
                rec.put_field("TabRefCodes", &FREQ_REF_CODES.to_vec())?;
            }
        }
        d.put_column_keyword(col.name, "MEASINFO", &rec)?;
    }
    Ok(d)
}
