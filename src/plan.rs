//! Planning (rank 0): valid groups -> images -> ranks. The plan is broadcast to every rank,
//! so every rank knows every collective it must join.

use crate::config::Config;
use crate::discover::{discover, Discovery};
use crate::imaging::Centre;
use crate::primitives::astrometry::{median_meridian_icrs, Site};
use crate::primitives::iers::EarthOrientation;
use crate::uvh5::read_header;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
}

/// Largest tolerated difference between a file's antenna position and the station table.
pub const POSITION_TOLERANCE_M: f64 = 0.05;

/// Compares the header's antenna positions (ECEF offsets) with the station table; warns for
/// each antenna in use that is more than 5 cm off. Returns the offenders (station, metres).
pub fn check_positions(h: &crate::uvh5::Uvh5Header, site: &Site, stations: &[crate::stations::Station], file: &std::path::Path) -> Vec<(String, f64)> {
    let mut used: Vec<i64> = h.ant_1_array.iter().chain(&h.ant_2_array).copied().collect();
    used.sort_unstable();
    used.dedup();
    let mut bad = Vec::new();
    for a in used {
        let Some(i) = h.antenna_numbers.iter().position(|&n| n == a) else { continue };
        let name = &h.antenna_names[i];
        let Some(st) = name.parse::<u32>().ok().and_then(|n| stations.iter().find(|s| s.number == n)) else {
            log::warn!("{}: antenna {name} is not in the station table", file.display());
            continue;
        };
        let want = crate::primitives::astrometry::sub(st.ecef(), site.ecef);
        let d = crate::primitives::astrometry::sub(h.antenna_positions[i], want);
        let off = crate::primitives::astrometry::dot(d, d).sqrt();
        if off > POSITION_TOLERANCE_M {
            log::warn!("{}: antenna {name} is {off:.3} m from the station table position", file.display());
            bad.push((name.clone(), off));
        }
    }
    bad
}

/// Discovers the night and builds the plan for `n_ranks` ranks.
pub fn make_plan(cfg: &Config, n_ranks: usize, eop: &EarthOrientation) -> Result<Plan, crate::discover::DiscoverError> {
    let d: Discovery = discover(&cfg.input.dir, cfg.input.n_subbands, cfg.input.require_complete_groups, cfg.input.filename_tolerance_s)?;
    let mut plan = Plan { n_ranks, bad_files: d.bad_files.clone(), ..Default::default() };
    let mut valid: Vec<(PlannedGroup, Site)> = Vec::new();
    let stations = match crate::stations::read_stations(&cfg.station_table) {
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
        let Some((_, first)) = g.present().next() else { continue };
        match read_header(first) {
            Ok(h) => {
                let times: Vec<f64> = (0..h.ntimes).map(|t| h.time_array[t * h.nbls]).collect();
                let site = Site::from_geodetic_deg(h.latitude_deg, h.longitude_deg, h.altitude_m);
                if let (Some(st), false) = (&stations, checked_positions) {
                    check_positions(&h, &site, st, first);
                    checked_positions = true;
                }
                valid.push((
                    PlannedGroup { id: g.id.clone(), files: g.files.clone(), rank: 0, image: 0, times_jd: times, pointing_dec_rad: h.phase_center_dec },
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
    let per = cfg.imaging.groups_per_image;
    let mut i = 0;
    while i < valid.len() {
        let dec = valid[i].0.pointing_dec_rad;
        let mut members = vec![i];
        while members.len() < per && i + members.len() < valid.len() && (valid[i + members.len()].0.pointing_dec_rad - dec).abs() < 1e-9 {
            members.push(i + members.len());
        }
        let times: Vec<f64> = members.iter().flat_map(|&m| valid[m].0.times_jd.clone()).collect();
        let (ra, dec_c) = median_meridian_icrs(&times, dec, &valid[i].1, eop);
        let img_idx = plan.images.len();
        let name = if members.len() == 1 { valid[i].0.id.clone() } else { format!("{}_x{}", valid[i].0.id, members.len()) };
        for &m in &members {
            valid[m].0.image = img_idx;
            valid[m].0.rank = m % n_ranks;
        }
        let owner = if members.len() == 1 { i % n_ranks } else { img_idx % n_ranks };
        plan.images.push(PlannedImage { name, groups: members.clone(), owner, centre: Centre { ra_rad: ra, dec_rad: dec_c } });
        i += members.len();
    }
    plan.groups = valid.into_iter().map(|(g, _)| g).collect();
    Ok(plan)
}
