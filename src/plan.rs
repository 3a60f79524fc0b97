//! Planning (rank 0): valid groups -> images -> ranks. The plan is broadcast to every rank,
//! so every rank knows every collective it must join.

use crate::calibrate::CalConfig;
use crate::core::Centre;
use crate::discover::{discover, Discovery, InputConfig};
use crate::primitives::astrometry::{median_meridian_icrs, Site};
use crate::primitives::iers::EarthOrientation;
use crate::uvh5::read_header;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why planning failed (discovery), or why the night's calibration cannot be planned (the
/// plan then carries this as its calibration note).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Discover(#[from] crate::discover::DiscoverError),
    #[error(transparent)]
    Catalog(#[from] crate::calibrate::catalog::CatalogError),
    #[error(transparent)]
    Header(#[from] crate::uvh5::Uvh5Error),
    #[error("calibrator group {group} has no files")]
    NoFiles { group: String },
}

/// What planning reads of the settings (the settings layer builds this from its `Config`).
#[derive(Debug, Clone, Copy)]
pub struct PlanInputs<'a> {
    pub input: &'a InputConfig,
    /// `imaging.groups_per_image`.
    pub groups_per_image: usize,
    pub calibration: &'a CalConfig,
    /// The station table (None: the built-in one).
    pub station_table: Option<&'a Path>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedGroup {
    pub id: String,
    pub files: Vec<Option<PathBuf>>,
    /// Rank that converts and grids this group.
    pub rank: usize,
    /// Index into `Plan::images`.
    pub image: usize,
    pub times_jd: Vec<f64>,
    pub pointing_dec_rad: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedImage {
    pub name: String,
    /// Indices into `Plan::groups`.
    pub groups: Vec<usize>,
    /// Rank that reduces, transforms and writes the image.
    pub owner: usize,
    pub centre: Centre,
}

impl PlannedImage {
    /// Distinct ranks holding this image's groups, ascending.
    pub fn contributors(&self, plan: &Plan) -> Vec<usize> {
        let mut r: Vec<usize> = self.groups.iter().map(|&g| plan.groups[g].rank).collect();
        r.sort_unstable();
        r.dedup();
        r
    }

    /// Whether the grids must be reduced over ranks (more than the owner contributes).
    pub fn needs_reduce(&self, plan: &Plan) -> bool {
        self.contributors(plan) != vec![self.owner]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Plan {
    pub n_ranks: usize,
    pub groups: Vec<PlannedGroup>,
    pub images: Vec<PlannedImage>,
    /// Groups not processed: (id, reason).
    pub skipped: Vec<(String, String)>,
    pub bad_files: Vec<(PathBuf, String)>,
    /// The night's calibrator solve, if a calibrator transits.
    pub calibration: Option<crate::calibrate::CalPlan>,
    /// Why there is none (or a note about the choice).
    pub calibration_note: String,
    /// Resume (see `resume`): per image, its input hash and whether it is already done.
    #[serde(default)]
    pub image_hash: Vec<String>,
    #[serde(default)]
    pub image_done: Vec<bool>,
    /// Groups not retried: (id, reason).
    #[serde(default)]
    pub retired: Vec<(String, String)>,
    /// The registry already holds a valid table covering the calibrator's transit.
    #[serde(default)]
    pub cal_reuse: bool,
}

impl Plan {
    pub fn image_is_done(&self, i: usize) -> bool {
        self.image_done.get(i).copied().unwrap_or(false)
    }
    pub fn is_retired(&self, id: &str) -> bool {
        self.retired.iter().any(|r| r.0 == id)
    }
}

/// Largest tolerated difference between a file's antenna position and the station table.
pub const POSITION_TOLERANCE_M: f64 = 0.05;

/// Compares the header's antenna positions (ECEF offsets) with the station table; warns for
/// each antenna in use that is more than 5 cm off. Returns the offenders (station, metres).
pub fn check_positions(
    h: &crate::uvh5::Uvh5Header,
    site: &Site,
    stations: &[crate::core::stations::Station],
    file: &std::path::Path,
) -> Vec<(String, f64)> {
    let mut used: Vec<i64> = h
        .ant_1_array
        .iter()
        .chain(&h.ant_2_array)
        .copied()
        .collect();
    used.sort_unstable();
    used.dedup();
    let mut bad = Vec::new();
    for a in used {
        let Some(i) = h.antenna_numbers.iter().position(|&n| n == a) else {
            continue;
        };
        let name = &h.antenna_names[i];
        let Some(st) = name
            .parse::<u32>()
            .ok()
            .and_then(|n| stations.iter().find(|s| s.number == n))
        else {
            log::warn!(
                "{}: antenna {name} is not in the station table",
                file.display()
            );
            continue;
        };
        let want = crate::primitives::astrometry::sub(st.ecef(), site.ecef);
        let d = crate::primitives::astrometry::sub(h.antenna_positions[i], want);
        let off = crate::primitives::astrometry::dot(d, d).sqrt();
        if off > POSITION_TOLERANCE_M {
            log::warn!(
                "{}: antenna {name} is {off:.3} m from the station table position",
                file.display()
            );
            bad.push((name.clone(), off));
        }
    }
    bad
}

/// Discovers the night and builds the plan for `n_ranks` ranks.
pub fn make_plan<'a>(
    cfg: impl Into<PlanInputs<'a>>,
    n_ranks: usize,
    eop: &EarthOrientation,
) -> Result<Plan, PlanError> {
    let cfg: PlanInputs = cfg.into();
    let d: Discovery = discover(
        &cfg.input.dir,
        cfg.input.n_subbands,
        cfg.input.require_complete_groups,
        cfg.input.filename_tolerance_s,
    )?;
    let mut plan = Plan {
        n_ranks,
        bad_files: d.bad_files.clone(),
        ..Default::default()
    };
    let mut valid: Vec<(PlannedGroup, Site)> = Vec::new();
    let stations = match crate::core::stations::load_stations(cfg.station_table) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("antenna positions not checked: {e}");
            None
        }
    };
    let mut checked_positions = false;
    for g in d.groups {
        if let Some(p) = &g.problem {
            log::warn!("group {}: skipped: {p}", g.id);
            plan.skipped.push((g.id.clone(), p.clone()));
            continue;
        }
        // Times, pointing and site from the first present file's header.
        let Some((_, first)) = g.present().next() else {
            continue;
        };
        match read_header(first) {
            Ok(h) => {
                let times: Vec<f64> = (0..h.ntimes).map(|t| h.time_array[t * h.nbls]).collect();
                let site = Site::from_geodetic_deg(h.latitude_deg, h.longitude_deg, h.altitude_m);
                if let (Some(st), false) = (&stations, checked_positions) {
                    check_positions(&h, &site, st, first);
                    checked_positions = true;
                }
                valid.push((
                    PlannedGroup {
                        id: g.id.clone(),
                        files: g.files.clone(),
                        rank: 0,
                        image: 0,
                        times_jd: times,
                        pointing_dec_rad: h.phase_center_dec,
                    },
                    site,
                ));
            }
            Err(e) => {
                log::warn!("group {}: skipped: {e}", g.id);
                plan.skipped.push((g.id.clone(), e.to_string()));
            }
        }
    }
    // Images: runs of `groups_per_image` consecutive groups at one pointing declination.
    let per = cfg.groups_per_image;
    let mut i = 0;
    while i < valid.len() {
        let dec = valid[i].0.pointing_dec_rad;
        let mut members = vec![i];
        while members.len() < per
            && i + members.len() < valid.len()
            && (valid[i + members.len()].0.pointing_dec_rad - dec).abs() < 1e-9
        {
            members.push(i + members.len());
        }
        let times: Vec<f64> = members
            .iter()
            .flat_map(|&m| valid[m].0.times_jd.clone())
            .collect();
        let (ra, dec_c) = median_meridian_icrs(&times, dec, &valid[i].1, eop);
        let img_idx = plan.images.len();
        let name = if members.len() == 1 {
            valid[i].0.id.clone()
        } else {
            format!("{}_x{}", valid[i].0.id, members.len())
        };
        for &m in &members {
            valid[m].0.image = img_idx;
            valid[m].0.rank = m % n_ranks;
        }
        let owner = if members.len() == 1 {
            i % n_ranks
        } else {
            img_idx % n_ranks
        };
        plan.images.push(PlannedImage {
            name,
            groups: members.clone(),
            owner,
            centre: Centre {
                ra_rad: ra,
                dec_rad: dec_c,
            },
        });
        i += members.len();
    }
    let site = valid.first().map(|v| v.1);
    plan.groups = valid.into_iter().map(|(g, _)| g).collect();
    if cfg.calibration.enabled {
        match site {
            Some(site) => match plan_calibration(cfg.calibration, &plan.groups, &site, eop) {
                Ok((cp, note)) => {
                    plan.calibration = cp;
                    plan.calibration_note = note;
                }
                Err(e) => plan.calibration_note = format!("no calibration solve: {e}"),
            },
            None => plan.calibration_note = "no groups".into(),
        }
    }
    Ok(plan)
}

/// Chooses the night's calibrator (strongest flux x beam among those passing within
/// `max_offset_deg` of the pointing) and the groups within +-span/2 of its transit.
fn plan_calibration(
    c: &CalConfig,
    groups: &[PlannedGroup],
    site: &Site,
    eop: &EarthOrientation,
) -> Result<(Option<crate::calibrate::CalPlan>, String), PlanError> {
    use crate::calibrate::catalog::{load_calibrators, transits};
    let cals = load_calibrators(c.calibrator_list.as_deref())?;
    let mut best: Option<crate::calibrate::catalog::Transit> = None;
    for g in groups {
        for t in transits(
            &cals,
            &g.times_jd,
            g.pointing_dec_rad,
            site,
            eop,
            c.max_offset_deg,
            c.min_flux_jy,
        ) {
            if best.as_ref().is_none_or(|b| {
                t.weight_jy > b.weight_jy
                    || (t.calibrator.name == b.calibrator.name && t.beam > b.beam)
            }) {
                best = Some(t);
            }
        }
    }
    let Some(tr) = best else {
        return Ok((
            None,
            format!(
                "no calibrator above {} Jy passes within {} deg of the pointing tonight",
                c.min_flux_jy, c.max_offset_deg
            ),
        ));
    };
    let half = c.span_minutes / 2.0 / 1440.0;
    let members: Vec<usize> = (0..groups.len())
        .filter(|&i| {
            groups[i]
                .times_jd
                .iter()
                .any(|t| (t - tr.transit_jd).abs() <= half)
        })
        .collect();
    // Baselines, antennas and channels from the calibrator groups' headers.
    let Some(&first) = members.first() else {
        return Ok((
            None,
            format!(
                "no group within calibration.span_minutes/2 = {} min of the {} transit at {}",
                c.span_minutes / 2.0,
                tr.calibrator.name,
                crate::primitives::time::jd_to_iso(tr.transit_jd, 0)
            ),
        ));
    };
    let first = &groups[first];
    let mut freqs = Vec::new();
    let mut header = None;
    for path in first.files.iter().flatten() {
        let h = read_header(path)?;
        freqs.extend(h.freq_array.iter().copied());
        header.get_or_insert(h);
    }
    let h = header.ok_or_else(|| PlanError::NoFiles {
        group: first.id.clone(),
    })?;
    freqs.sort_by(|a, b| a.total_cmp(b));
    let idx = |a: i64| {
        h.antenna_numbers
            .iter()
            .position(|&n| n == a)
            .expect("validated")
    };
    let mut baselines: Vec<(usize, usize)> = (0..h.nbls)
        .map(|r| (idx(h.ant_1_array[r]), idx(h.ant_2_array[r])))
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (a.min(b), a.max(b)))
        .collect();
    baselines.sort_unstable();
    baselines.dedup();
    let antenna_names: Vec<u32> = h
        .antenna_names
        .iter()
        .enumerate()
        .map(|(i, n)| n.parse().unwrap_or(i as u32 + 1))
        .collect();
    // The other sources of the field, modelled with the calibrator.
    let model_cat = match c.model_catalog.as_deref() {
        Some(p) => load_calibrators(Some(p))?,
        None => cals,
    };
    let times: Vec<f64> = members
        .iter()
        .flat_map(|&i| groups[i].times_jd.iter().copied())
        .collect();
    let field = crate::calibrate::field_sources(
        &model_cat,
        &tr.calibrator,
        tr.weight_jy,
        &times,
        groups[members[0]].pointing_dec_rad,
        site,
        eop,
        c.model_radius_deg,
        c.model_min_fraction,
    );
    let note = format!(
        "calibrator {} ({:.2} Jy at 20cm, beam {:.2}) transits at {}; {} groups; {} field \
         sources in its model",
        tr.calibrator.name,
        tr.calibrator.flux_jy,
        tr.beam,
        crate::primitives::time::jd_to_iso(tr.transit_jd, 0),
        members.len(),
        field.len()
    );
    Ok((
        Some(crate::calibrate::CalPlan {
            calibrator: tr.calibrator,
            transit_jd: tr.transit_jd,
            groups: members,
            baselines,
            antenna_names,
            freq_hz: freqs,
            field,
        }),
        note,
    ))
}
