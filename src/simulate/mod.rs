//! `contimg simulate`: a synthetic night in the DSA-110 correlator's UVH5 layout, with a
//! truth record (sources, gains, RFI) for tests and QA.
//!
//! Visibility model (pyuvdata convention, uvw = pos(ant_2) - pos(ant_1)):
//! V_12(t, nu) = g_1 conj(g_2) sum_s S_s(nu) B_s(t, nu) exp(+2 pi i nu/c b.(s - d_t)) + noise + RFI,
//! where d_t is the integration's phase centre (HA = 0 at the pointing declination of date)
//! and B the Airy power beam about d_t (the dishes point at the meridian).

mod corrupt;
pub mod layout;
pub mod settings;

pub use corrupt::{GainTable, RfiEvent, RfiKind};
pub use layout::{channel_freq, default_antennas, NightLayout};

use crate::primitives::astrometry::{
    median_meridian_icrs, radec_to_vec, separation, vec_to_radec, FrameOfDate, Site, UvwBasis, V3,
};
use crate::primitives::beam::airy_power;
use crate::primitives::iers::EarthOrientation;
use crate::primitives::time::jd_to_iso;
use crate::primitives::C_M_S;
use crate::uvh5::{write_file, Uvh5Data, Uvh5Error, Uvh5Header, POL_XX, POL_YY};
use num_complex::{Complex32, Complex64};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
pub use settings::{SimCalibrator, SimConfig, SimGains, SimNoise, SimRfi, SimSource};
use std::path::{Path, PathBuf};

pub use crate::core::telescope::DISH_DIAMETER_M;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Stations(#[from] crate::core::stations::StationError),
    #[error("simulate: {0}")]
    Layout(String),
    #[error(transparent)]
    Uvh5(#[from] Uvh5Error),
    #[error(transparent)]
    Iers(#[from] crate::primitives::iers::IersError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalog(#[from] crate::calibrate::catalog::CatalogError),
    #[error("{path}: cannot write truth ({source})")]
    Truth { path: PathBuf, source: hdf5::Error },
    #[error("{path}: not a simulation's truth record ({source})")]
    TruthParse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A simulated point source and what the telescope sees of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TruthSource {
    pub ra_deg: f64,
    pub dec_deg: f64,
    pub flux_jy: f64,
    pub spectral_index: f64,
    /// Per group: mean over integrations and channels of S(nu) x beam: the flux a
    /// naturally weighted image of that group shows at the source.
    pub apparent_flux_jy: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TruthGroup {
    pub index: usize,
    /// File-name stem shared by the group (without `_sbNN`), of sb00.
    pub name: String,
    pub start_jd: f64,
    pub times_jd: Vec<f64>,
    /// Median meridian position (J2000), the default image centre.
    pub centre_ra_deg: f64,
    pub centre_dec_deg: f64,
    pub rfi: Vec<RfiEvent>,
}

/// `truth.json`; gains are in `truth.h5` (dataset `gains`, (antenna, channel, pol) complex,
/// channels ascending as `freq_hz`, antennas by station number 1..117).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Truth {
    pub seed: u64,
    pub pointing_dec_deg: f64,
    pub stations: Vec<u32>,
    pub freq_hz: Vec<f64>,
    /// Per-visibility thermal noise sigma (Jy, real and imaginary parts each); 0 if noiseless.
    pub noise_sigma_jy: f64,
    pub sources: Vec<TruthSource>,
    pub groups: Vec<TruthGroup>,
}

impl Truth {
    /// Reads `<dir>/truth.json`.
    pub fn load(dir: &Path) -> Result<Truth, SimError> {
        let path = dir.join("truth.json");
        let text = std::fs::read_to_string(&path).map_err(|source| SimError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| SimError::TruthParse { path, source })
    }
}

/// What the simulator reads of the settings: its own section and the reference data it
/// shares with the pipeline (the settings layer builds this from its `Config`).
#[derive(Debug, Clone, Copy)]
pub struct SimInputs<'a> {
    pub simulate: &'a SimConfig,
    /// The station table (None: the built-in one).
    pub station_table: Option<&'a Path>,
    /// The VLA calibrator list (None: the built-in one), for `simulate.calibrator`.
    pub calibrator_list: Option<&'a Path>,
    /// The IERS table (None: the built-in one).
    pub iers_file: Option<&'a Path>,
}

/// Simulates the night described by `cfg.simulate` into `out`.
pub fn run<'a>(cfg: impl Into<SimInputs<'a>>, out: &Path) -> Result<Truth, SimError> {
    let cfg: SimInputs = cfg.into();
    let adjusted;
    let sim = match &cfg.simulate.calibrator {
        Some(c) => {
            adjusted = with_calibrator_transit(&cfg, c)?;
            &adjusted
        }
        None => cfg.simulate,
    };
    std::fs::create_dir_all(out).map_err(|source| SimError::Io {
        path: out.into(),
        source,
    })?;
    let stations = crate::core::stations::load_stations(cfg.station_table)?;
    let layout = NightLayout::new(sim, stations, sim.seed)?;
    let site = Site::from_geodetic_deg(sim.site_lat_deg, sim.site_lon_deg, sim.site_alt_m);
    let eop = EarthOrientation::load(cfg.iers_file)?;
    let dec_app = sim.pointing_dec_deg.to_radians();
    let freqs = layout.freqs_ascending();
    let mut rng = ChaCha8Rng::seed_from_u64(sim.seed);
    let gains = GainTable::random(&sim.gains, 117, &freqs, &mut rng);
    let noise_sigma_jy = if sim.noise.enabled {
        sim.noise.sefd_jy / (2.0 * layout.channel_width() * layout.integration_s).sqrt()
    } else {
        0.0
    };

    // Groups: times, centres, RFI.
    let mut groups = Vec::new();
    for g in 0..layout.n_groups {
        let times = layout.group_times(g);
        let (ra, dec) = median_meridian_icrs(&times, dec_app, &site, &eop);
        let rfi = corrupt::random_rfi(&sim.rfi, layout.n_times, freqs.len(), &mut rng);
        groups.push(TruthGroup {
            index: g,
            name: jd_to_iso(layout.group_start(g), 0),
            start_jd: layout.group_start(g),
            times_jd: times,
            centre_ra_deg: ra.to_degrees(),
            centre_dec_deg: dec.to_degrees(),
            rfi,
        });
    }
    let sources = make_sources(sim, &groups, &mut rng);
    let mut truth = Truth {
        seed: sim.seed,
        pointing_dec_deg: sim.pointing_dec_deg,
        stations: layout
            .correlator_order
            .iter()
            .map(|&a| a as u32 + 1)
            .collect(),
        freq_hz: freqs.clone(),
        noise_sigma_jy,
        sources,
        groups,
    };
    truth.stations.sort_unstable();

    let ctx = SimContext {
        sim,
        layout: &layout,
        site,
        dec_app,
        gains: &gains,
        noise_sigma_jy,
        eop: &eop,
    };
    for g in 0..layout.n_groups {
        let model = GroupModel::new(&ctx, g, &truth.sources);
        for (s_idx, src) in truth.sources.iter_mut().enumerate() {
            src.apparent_flux_jy
                .push(model.apparent_flux(s_idx, &freqs));
        }
        let jitter_rng =
            &mut ChaCha8Rng::seed_from_u64(sim.seed.wrapping_mul(31).wrapping_add(g as u64));
        let names: Vec<PathBuf> = (0..layout.n_subbands)
            .map(|s| {
                let dt = jitter_rng.random_range(0.0..=sim.filename_jitter_s.max(0.0));
                out.join(format!(
                    "{}_sb{s:02}.hdf5",
                    jd_to_iso(layout.group_start(g) + dt / 86_400.0, 0)
                ))
            })
            .collect();
        let rfi = &truth.groups[g].rfi;
        (0..layout.n_subbands).into_par_iter().try_for_each(|s| {
            let (h, d) = ctx.subband_file(&model, g, s, rfi);
            write_file(&names[s], &h, &d)
        })?;
        log::info!(
            "simulated group {} ({} subbands)",
            truth.groups[g].name,
            layout.n_subbands
        );
    }
    write_truth(out, &truth, &gains, &layout)?;
    Ok(truth)
}

/// The simulation config with its start time and pointing moved so that calibrator
/// `c.name` transits the beam centre in the middle of group `c.group`, and the calibrator
/// added as a source.
fn with_calibrator_transit(cfg: &SimInputs, c: &SimCalibrator) -> Result<SimConfig, SimError> {
    let cals = crate::calibrate::catalog::load_calibrators(cfg.calibrator_list)?;
    let cal = cals.iter().find(|x| x.name == c.name).ok_or_else(|| {
        SimError::Layout(format!(
            "calibrator {} is not in {}",
            c.name,
            cfg.calibrator_list
                .map_or("the built-in list".into(), |p| p.display().to_string())
        ))
    })?;
    let mut sim = cfg.simulate.clone();
    let site = Site::from_geodetic_deg(sim.site_lat_deg, sim.site_lon_deg, sim.site_alt_m);
    let eop = EarthOrientation::load(cfg.iers_file)?;
    let day0 = crate::primitives::time::iso_to_jd(&sim.start_time)
        .ok_or_else(|| SimError::Layout("simulate.start_time".into()))?;
    let offset = (c.group as f64 * sim.n_times as f64 + sim.n_times as f64 / 2.0)
        * sim.integration_s
        / 86_400.0;
    let p = radec_to_vec(cal.ra_rad, cal.dec_rad);
    // Newton-like iteration on the hour angle of the calibrator at the group's middle.
    let mut t_mid = day0 + offset;
    for _ in 0..6 {
        let f = FrameOfDate::new(eop.epoch(t_mid), &site);
        let (ra_app, _) = vec_to_radec(f.icrs_to_apparent(p));
        let ha = (f.last - ra_app + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
            - std::f64::consts::PI;
        t_mid -= ha / std::f64::consts::TAU * 0.997_269_566;
    }
    // Keep the transit on or after the configured start.
    while t_mid - offset < day0 - 1e-9 {
        t_mid += 0.997_269_566;
    }
    let f = FrameOfDate::new(eop.epoch(t_mid), &site);
    let (_, dec_app) = vec_to_radec(f.icrs_to_apparent(p));
    // The integration centres are at start + (k + 0.5) dt: put the transit at the middle one.
    let mid_offset = (c.group as f64 * sim.n_times as f64 + (sim.n_times / 2) as f64 + 0.5)
        * sim.integration_s
        / 86_400.0;
    sim.start_time = jd_to_iso(t_mid - mid_offset, 3);
    sim.pointing_dec_deg = dec_app.to_degrees();
    sim.sources.push(SimSource {
        ra_deg: Some(cal.ra_rad.to_degrees()),
        dec_deg: Some(cal.dec_rad.to_degrees()),
        group: c.group,
        l_deg: 0.0,
        m_deg: 0.0,
        flux_jy: cal.flux_jy,
        spectral_index: cal.spectral_index.unwrap_or(0.0),
    });
    Ok(sim)
}

fn make_sources(sim: &SimConfig, groups: &[TruthGroup], rng: &mut ChaCha8Rng) -> Vec<TruthSource> {
    let mut out = Vec::new();
    let centre_basis = |g: &TruthGroup| {
        UvwBasis::new(
            radec_to_vec(g.centre_ra_deg.to_radians(), g.centre_dec_deg.to_radians()),
            [0.0, 0.0, 1.0],
        )
    };
    for s in &sim.sources {
        let (ra, dec) = match (s.ra_deg, s.dec_deg) {
            (Some(ra), Some(dec)) => (ra, dec),
            _ => {
                let g = &groups[s.group.min(groups.len().saturating_sub(1))];
                let (ra, dec) = vec_to_radec(
                    centre_basis(g).from_lm(s.l_deg.to_radians(), s.m_deg.to_radians()),
                );
                (ra.to_degrees(), dec.to_degrees())
            }
        };
        out.push(TruthSource {
            ra_deg: ra,
            dec_deg: dec,
            flux_jy: s.flux_jy,
            spectral_index: s.spectral_index,
            apparent_flux_jy: vec![],
        });
    }
    let normal = Normal::new(0.0, 1.0).expect("unit normal");
    for g in groups {
        for _ in 0..sim.n_random_sources {
            // Within ~1.2 deg of the centre (the primary beam's half-power radius).
            let r = 1.2f64.to_radians() * rng.random::<f64>().sqrt();
            let phi = rng.random_range(0.0..std::f64::consts::TAU);
            let (ra, dec) = vec_to_radec(centre_basis(g).from_lm(r * phi.cos(), r * phi.sin()));
            let [lo, hi] = sim.random_flux_jy;
            let flux = (lo.ln() + (hi.ln() - lo.ln()) * rng.random::<f64>()).exp();
            let alpha = -0.7 + 0.2 * normal.sample(rng);
            out.push(TruthSource {
                ra_deg: ra.to_degrees(),
                dec_deg: dec.to_degrees(),
                flux_jy: flux,
                spectral_index: alpha,
                apparent_flux_jy: vec![],
            });
        }
    }
    out
}

struct SimContext<'a> {
    sim: &'a SimConfig,
    layout: &'a NightLayout,
    site: Site,
    dec_app: f64,
    gains: &'a GainTable,
    noise_sigma_jy: f64,
    eop: &'a EarthOrientation,
}

/// Per-integration geometry of one group: antenna delays toward each source relative to the
/// phase centre, and each source's beam angle.
struct GroupModel {
    /// [time][source]: (separation from pointing (rad), flux at 1.4 GHz, spectral index)
    beam_sep: Vec<Vec<f64>>,
    /// [time][antenna][source]: pos_tod . (s_app - d_t) (m), for all 117 antennas.
    delay_m: Vec<Vec<Vec<f64>>>,
    flux: Vec<(f64, f64)>,
    /// [time]: true-of-date positions of antennas (for the file's uvw) and the drift basis.
    pos_tod: Vec<Vec<V3>>,
    basis: Vec<UvwBasis>,
}

impl GroupModel {
    fn new(ctx: &SimContext, g: usize, sources: &[TruthSource]) -> Self {
        let times = ctx.layout.group_times(g);
        let offsets = antenna_offsets(ctx.layout, &ctx.site);
        let mut m = GroupModel {
            beam_sep: vec![],
            delay_m: vec![],
            flux: vec![],
            pos_tod: vec![],
            basis: vec![],
        };
        m.flux = sources
            .iter()
            .map(|s| (s.flux_jy, s.spectral_index))
            .collect();
        for &t in &times {
            let frame = FrameOfDate::new(ctx.eop.epoch(t), &ctx.site);
            let basis = frame.hadec_basis(0.0, ctx.dec_app);
            let d = basis.w;
            let apps: Vec<V3> = sources
                .iter()
                .map(|s| {
                    frame.icrs_to_apparent(radec_to_vec(
                        s.ra_deg.to_radians(),
                        s.dec_deg.to_radians(),
                    ))
                })
                .collect();
            let pos: Vec<V3> = offsets.iter().map(|&o| frame.ecef_to_tod(o)).collect();
            m.beam_sep
                .push(apps.iter().map(|&a| separation(a, d)).collect());
            m.delay_m.push(
                pos.iter()
                    .map(|p| {
                        apps.iter()
                            .map(|a| {
                                crate::primitives::astrometry::dot(
                                    *p,
                                    crate::primitives::astrometry::sub(*a, d),
                                )
                            })
                            .collect()
                    })
                    .collect(),
            );
            m.pos_tod.push(pos);
            m.basis.push(basis);
        }
        m
    }

    fn flux_at(&self, s: usize, f: f64) -> f64 {
        let (s0, alpha) = self.flux[s];
        s0 * (f / 1.4e9).powf(alpha)
    }

    fn apparent_flux(&self, s: usize, freqs: &[f64]) -> f64 {
        let mut sum = 0.0;
        for seps in &self.beam_sep {
            for &f in freqs {
                sum += self.flux_at(s, f) * airy_power(seps[s], f, DISH_DIAMETER_M);
            }
        }
        sum / (self.beam_sep.len() * freqs.len()) as f64
    }
}

/// ECEF offsets (m) of all 117 stations from the telescope location.
pub fn antenna_offsets(layout: &NightLayout, site: &Site) -> Vec<V3> {
    layout
        .stations
        .iter()
        .map(|s| crate::primitives::astrometry::sub(s.ecef(), site.ecef))
        .collect()
}

impl SimContext<'_> {
    fn subband_file(
        &self,
        model: &GroupModel,
        g: usize,
        s: usize,
        rfi: &[RfiEvent],
    ) -> (Uvh5Header, Uvh5Data) {
        let l = self.layout;
        let nch = l.n_channels;
        let nbl = l.baselines.len();
        let nt = l.n_times;
        let freqs: Vec<f64> = (0..nch).map(|c| channel_freq(s, c, nch)).collect();
        let gchan: Vec<usize> = (0..nch).map(|c| l.global_channel(s, c)).collect();
        let times = l.group_times(g);
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.sim.seed ^ ((g as u64) << 32) ^ ((s as u64) << 16) ^ 0x5EED,
        );
        let normal = Normal::new(0.0, 1.0).expect("unit normal");
        let n = nt * nbl * nch * 2;
        let mut vis = vec![Complex32::new(0.0, 0.0); n];
        let nsrc = model.flux.len();
        let sefd = self.sim.noise.sefd_jy;
        let dnu = l.channel_width().abs();
        for t in 0..nt {
            // Antenna phasors per source and channel: exp(2 pi i nu tau / c).
            let beams: Vec<Vec<f64>> = (0..nsrc)
                .map(|k| {
                    freqs
                        .iter()
                        .map(|&f| {
                            model.flux_at(k, f)
                                * airy_power(model.beam_sep[t][k], f, DISH_DIAMETER_M)
                        })
                        .collect()
                })
                .collect();
            // Antenna phasors [antenna][source][channel], only for active antennas.
            let mut ph = vec![Complex64::new(0.0, 0.0); 117 * nsrc * nch];
            for &a in &l.correlator_order {
                for k in 0..nsrc {
                    for c in 0..nch {
                        let phase =
                            std::f64::consts::TAU * freqs[c] * model.delay_m[t][a][k] / C_M_S;
                        ph[(a * nsrc + k) * nch + c] = Complex64::from_polar(1.0, phase);
                    }
                }
            }
            let phasor = |a: usize, k: usize, c: usize| ph[(a * nsrc + k) * nch + c];
            for (b, &(a1, a2)) in l.baselines.iter().enumerate() {
                let row = t * nbl + b;
                let smear: Vec<f64> = (0..nsrc)
                    .map(|k| smearing(dnu, model.delay_m[t][a2][k] - model.delay_m[t][a1][k]))
                    .collect();
                for c in 0..nch {
                    let mut sky = Complex64::new(0.0, 0.0);
                    for k in 0..nsrc {
                        sky += beams[k][c] * smear[k] * phasor(a1, k, c).conj() * phasor(a2, k, c);
                    }
                    let auto = a1 == a2;
                    let ampl = rfi_amp(rfi, t, gchan[c]) * self.noise_sigma_jy.max(1.0);
                    for p in 0..2 {
                        let g1 = self.gains.get(a1, gchan[c], p);
                        let g2 = self.gains.get(a2, gchan[c], p);
                        let mut v = sky;
                        if auto && self.sim.noise.enabled {
                            v += sefd;
                        }
                        if self.noise_sigma_jy > 0.0 {
                            let sig = if auto {
                                self.noise_sigma_jy * std::f64::consts::SQRT_2
                            } else {
                                self.noise_sigma_jy
                            };
                            v += Complex64::new(
                                sig * normal.sample(&mut rng),
                                if auto {
                                    0.0
                                } else {
                                    sig * normal.sample(&mut rng)
                                },
                            );
                        }
                        if ampl > 0.0 {
                            // Interference enters the antennas: a random phase per baseline-time.
                            v += Complex64::from_polar(
                                ampl,
                                rng.random_range(0.0..std::f64::consts::TAU),
                            );
                        }
                        let v = g1 * g2.conj() * v;
                        vis[(row * nch + c) * 2 + p] = Complex32::new(v.re as f32, v.im as f32);
                    }
                }
            }
        }
        // The correlator's uvw_array: HA = 0 at the pointing dec, once, repeated for every time.
        let mid = nt / 2;
        let uvw_once: Vec<[f64; 3]> = l
            .baselines
            .iter()
            .map(|&(a1, a2)| {
                model.basis[mid].project(crate::primitives::astrometry::sub(
                    model.pos_tod[mid][a2],
                    model.pos_tod[mid][a1],
                ))
            })
            .collect();
        let nblts = nt * nbl;
        let h = Uvh5Header {
            latitude_deg: self.sim.site_lat_deg,
            longitude_deg: self.sim.site_lon_deg,
            altitude_m: self.sim.site_alt_m,
            telescope_name: "OVRO_MMA".into(),
            instrument: "DSA".into(),
            object_name: "drift".into(),
            nants_data: l.correlator_order.len(),
            nants_telescope: 117,
            nbls: nbl,
            ntimes: nt,
            nfreqs: nch,
            npols: 2,
            antenna_names: (1..=117).map(|i| i.to_string()).collect(),
            antenna_numbers: (0..117).collect(),
            antenna_diameters: vec![DISH_DIAMETER_M; 117],
            antenna_positions: antenna_offsets(l, &self.site),
            ant_1_array: (0..nblts).map(|r| l.baselines[r % nbl].0 as i64).collect(),
            ant_2_array: (0..nblts).map(|r| l.baselines[r % nbl].1 as i64).collect(),
            uvw_array: (0..nblts).map(|r| uvw_once[r % nbl]).collect(),
            time_array: (0..nblts).map(|r| times[r / nbl]).collect(),
            integration_time: vec![l.integration_s; nblts],
            freq_array: freqs,
            channel_width: l.channel_width(),
            polarization_array: vec![POL_XX, POL_YY],
            phase_center_dec: self.dec_app,
            phase_center_app_dec: self.dec_app,
            phase_type: "drift".into(),
            legacy_shapes: !self.sim.pyuvdata3_shapes,
        };
        let d = Uvh5Data {
            vis,
            flags: vec![false; n],
            nsamples: vec![1.0; n],
        };
        (h, d)
    }
}

fn rfi_amp(rfi: &[RfiEvent], t: usize, c: usize) -> f64 {
    corrupt::rfi_amplitude(rfi, t, c)
}

fn write_truth(
    out: &Path,
    truth: &Truth,
    gains: &GainTable,
    layout: &NightLayout,
) -> Result<(), SimError> {
    // The sky as a catalogue (what a survey has from NVSS for its outlier fields and
    // photometry): every simulated source, flux at 1.4 GHz.
    let mut sky = String::from("name,ra_deg,dec_deg,flux_jy,spectral_index\n");
    for (i, s) in truth.sources.iter().enumerate() {
        sky.push_str(&format!(
            "sim{i:03},{:.8},{:.8},{:.6},{:.4}\n",
            s.ra_deg, s.dec_deg, s.flux_jy, s.spectral_index
        ));
    }
    crate::products::write_atomic(&out.join("sky.csv"), sky.as_bytes()).map_err(|source| {
        SimError::Io {
            path: out.join("sky.csv"),
            source,
        }
    })?;
    let json = serde_json::to_string_pretty(truth).expect("truth serialises");
    crate::products::write_atomic(&out.join("truth.json"), json.as_bytes()).map_err(|source| {
        SimError::Io {
            path: out.join("truth.json"),
            source,
        }
    })?;
    let path = out.join("truth.h5");
    let tmp = out.join("truth.h5.part");
    let terr = |source| SimError::Truth {
        path: path.clone(),
        source,
    };
    {
        let f = hdf5::File::create(&tmp).map_err(terr)?;
        f.new_dataset::<Complex64>()
            .shape([gains.n_ant, gains.n_chan, 2])
            .create("gains")
            .and_then(|d| d.write_raw(&gains.g))
            .map_err(terr)?;
        f.new_dataset::<f64>()
            .shape([truth.freq_hz.len()])
            .create("freq_hz")
            .and_then(|d| d.write_raw(&truth.freq_hz))
            .map_err(terr)?;
        let st: Vec<u32> = layout.stations.iter().map(|s| s.number).collect();
        f.new_dataset::<u32>()
            .shape([st.len()])
            .create("antenna_names")
            .and_then(|d| d.write_raw(&st))
            .map_err(terr)?;
        for g in &truth.groups {
            let nc = truth.freq_hz.len();
            let mask: Vec<u8> = (0..layout.n_times)
                .flat_map(|t| (0..nc).map(move |c| (t, c)))
                .map(|(t, c)| u8::from(g.rfi.iter().any(|e| e.covers(t, c))))
                .collect();
            f.new_dataset::<u8>()
                .shape([layout.n_times, nc])
                .create(format!("rfi_mask_group{}", g.index).as_str())
                .and_then(|d| d.write_raw(&mask))
                .map_err(terr)?;
        }
    }
    std::fs::rename(&tmp, &path).map_err(|source| SimError::Io {
        path: path.clone(),
        source,
    })
}

/// Bandwidth smearing of a source with delay `delay_m` (metres) on a baseline in a channel of
/// width `dnu` (Hz): a channel is the average over its width, as a correlator's channels
/// are, so the fringe is multiplied by sinc(dnu tau) (sinc x = sin(pi x) / (pi x)).
fn smearing(dnu: f64, delay_m: f64) -> f64 {
    let x = std::f64::consts::PI * dnu * delay_m / C_M_S;
    if x.abs() < 1e-12 {
        1.0
    } else {
        x.sin() / x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_that_cannot_be_read_names_truth_json() {
        let d = tempfile::tempdir().unwrap();
        let e = Truth::load(d.path()).unwrap_err();
        assert!(matches!(e, SimError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains("truth.json"), "{e}");
        std::fs::write(d.path().join("truth.json"), "{\"seed\": 1}").unwrap();
        let e = Truth::load(d.path()).unwrap_err();
        assert!(matches!(e, SimError::TruthParse { .. }), "{e:?}");
        assert!(e.to_string().contains("truth.json"), "{e}");
    }
}
