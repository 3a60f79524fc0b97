//! Measurement Set export: one MS (v2) per subband group, rephased to the group's centre.
//!
//! The rows are time-major (time, spectral window, baseline) as CASA writes them; UVW are
//! `x(ANTENNA2) - x(ANTENNA1)` in the J2000 frame of the FIELD's phase centre, the same
//! convention as pyuvdata and CASA; frequencies ascend within and across windows. The
//! casacore writer (`casa.rs`) is behind the `ms` cargo feature; what it writes is prepared
//! here in plain Rust so that it is tested without casacore.

#[cfg(feature = "ms")]
mod casa;
#[cfg(feature = "ms")]
pub use casa::CasaError;
#[cfg(feature = "ms")]
mod schema;
#[cfg(feature = "ms")]
mod subtables;

use crate::core::GroupVis;
use crate::core::{rephase_geometry, Centre};
use crate::primitives::iers::EarthOrientation;
use num_complex::Complex32;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Spectral-window layout of an exported MS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpwLayout {
    /// One window holding every channel of the group, ascending.
    Merged,
    /// One window per subband file (16 for a full group), ascending.
    Subbands,
}

/// `output.ms` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MsConfig {
    /// `contimg run` also writes each group's MS (flagged and calibrated data, as imaged)
    /// to `<output>/ms/<group>.ms`. Needs a binary built with `--features ms`.
    pub write: bool,
    /// `merged` (one window) or `subbands` (one window per subband file).
    pub spectral_windows: SpwLayout,
    /// Include autocorrelations (imagers ignore them; they cost 1/49 of the volume).
    pub autocorrelations: bool,
}

impl Default for MsConfig {
    fn default() -> Self {
        MsConfig {
            write: false,
            spectral_windows: SpwLayout::Merged,
            autocorrelations: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MsError {
    #[error("{path}: this contimg was built without Measurement Set support (rebuild with `--features ms`)")]
    NotBuilt { path: PathBuf },
    #[cfg(feature = "ms")]
    #[error("{path}: casacore: {source}")]
    Casacore { path: PathBuf, source: CasaError },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether this binary can write Measurement Sets.
pub const AVAILABLE: bool = cfg!(feature = "ms");

/// Everything an MS needs, computed from a group: the window ranges, the included
/// baselines, and UVW and rephasing per (baseline, time) for the field centre.
pub struct MsContent<'a> {
    pub g: &'a GroupVis,
    pub centre: Centre,
    /// Channel ranges of the spectral windows (ascending).
    pub windows: Vec<Range<usize>>,
    /// Indices into `g.baselines` written to the MS.
    pub baselines: Vec<usize>,
    /// UVW (m) per (baseline, time), rows ordered like the group's data.
    pub uvw: Vec<[f64; 3]>,
    /// w_new - w_old (m) per (baseline, time).
    dw: Vec<f64>,
}

impl<'a> MsContent<'a> {
    pub fn new(g: &'a GroupVis, centre: Centre, eop: &EarthOrientation, cfg: &MsConfig) -> Self {
        let nch = g.n_chan();
        let windows = match cfg.spectral_windows {
            SpwLayout::Merged => std::iter::once(0..nch).collect(),
            SpwLayout::Subbands => {
                let mut s: Vec<usize> = g
                    .meta
                    .window_starts
                    .iter()
                    .copied()
                    .filter(|&s| s < nch)
                    .collect();
                if s.first() != Some(&0) {
                    s.insert(0, 0);
                }
                s.iter()
                    .enumerate()
                    .map(|(i, &a)| a..s.get(i + 1).copied().unwrap_or(nch))
                    .collect()
            }
        };
        let baselines = (0..g.baselines.len())
            .filter(|&b| cfg.autocorrelations || g.baselines[b].0 != g.baselines[b].1)
            .collect();
        let (uvw, dw) = rephase_geometry(g, centre, eop);
        MsContent {
            g,
            centre,
            windows,
            baselines,
            uvw,
            dw,
        }
    }

    /// Rows in the main table.
    pub fn n_rows(&self) -> usize {
        self.g.n_times() * self.windows.len() * self.baselines.len()
    }

    /// UVW of integration `t` for the written baselines.
    pub fn uvw_at(&self, t: usize) -> Vec<[f64; 3]> {
        let nt = self.g.n_times();
        self.baselines
            .iter()
            .map(|&b| self.uvw[b * nt + t])
            .collect()
    }

    /// The cells of integration `t`, window `w`, laid out `[baseline][channel][pol]` (the
    /// row-major cell shape `[nchan, npol]` per row): visibilities rephased to the centre
    /// (`exp(-2 pi i (w_new - w_old) nu / c)`), flags (weight 0) and weights.
    pub fn cells(&self, t: usize, w: usize) -> (Vec<Complex32>, Vec<bool>, Vec<f32>) {
        let g = self.g;
        let (nt, np) = (g.n_times(), g.npol);
        let win = self.windows[w].clone();
        let per_row = win.len() * np;
        let n = self.baselines.len() * per_row;
        let mut data = vec![Complex32::new(0.0, 0.0); n];
        let mut wts = vec![0f32; n];
        data.par_chunks_mut(per_row)
            .zip(wts.par_chunks_mut(per_row))
            .zip(self.baselines.par_iter())
            .for_each(|((d, wt), &b)| {
                let row = b * nt + t;
                let dw = self.dw[row];
                for (k, c) in win.clone().enumerate() {
                    let rot = crate::primitives::rephase_factor(dw, g.freqs[c]);
                    for p in 0..np {
                        let i = g.index(b, t, c, p);
                        d[k * np + p] = g.vis[i] * rot;
                        wt[k * np + p] = g.weight.get(i);
                    }
                }
            });
        let flags = wts.iter().map(|&x| x <= 0.0).collect();
        (data, flags, wts)
    }
}

/// Writes `g` as a Measurement Set at `path` (replacing one there), rephased to `centre`.
/// The MS is built under a temporary name beside `path` and renamed into place.
pub fn write_group_ms(
    path: &Path,
    g: &GroupVis,
    centre: Centre,
    eop: &EarthOrientation,
    cfg: &MsConfig,
    history: &str,
) -> Result<usize, MsError> {
    let content = MsContent::new(g, centre, eop, cfg);
    #[cfg(feature = "ms")]
    {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "group.ms".into());
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| MsError::Io { path: p, source }
        };
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        if let Err(source) = casa::write(&tmp, &content, history) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(MsError::Casacore {
                path: path.to_path_buf(),
                source,
            });
        }
        if path.exists() {
            let old = path.with_file_name(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(path, &old).map_err(io(path))?;
            std::fs::rename(&tmp, path).map_err(io(path))?;
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        } else {
            std::fs::rename(&tmp, path).map_err(io(path))?;
        }
        Ok(content.n_rows())
    }
    #[cfg(not(feature = "ms"))]
    {
        let _ = (content, history);
        Err(MsError::NotBuilt {
            path: path.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::GroupMeta;
    use crate::primitives::astrometry::{dot, radec_to_vec, sub, FrameOfDate, Site};

    /// Three antennas, two integrations, four channels in two subband windows; the data are
    /// a unit source at `src` (ICRS) as the correlator delivers them: phased to the meridian
    /// at the pointing declination of date, V = exp(2 pi i b.(s - s_meridian) / lambda).
    fn group(src: (f64, f64)) -> (GroupVis, EarthOrientation) {
        let eop = EarthOrientation::none();
        let site = Site::from_geodetic_deg(37.233386982, -118.283405115, 1188.0);
        let ant_pos = vec![
            [0.0, 0.0, 0.0],
            [300.0, -150.0, 40.0],
            [-800.0, 1200.0, 600.0],
        ];
        let baselines = vec![(0, 0), (0, 1), (0, 2), (1, 2)];
        let times_jd = vec![2461113.7084, 2461113.7086];
        let freqs = vec![1.30e9, 1.31e9, 1.45e9, 1.46e9];
        let dec = 54.6f64.to_radians();
        let (nt, nc, np) = (times_jd.len(), freqs.len(), 2);
        let mut vis = vec![Complex32::new(0.0, 0.0); baselines.len() * nt * nc * np];
        let mut weight = vec![1.0f32; vis.len()];
        for (t, &jd) in times_jd.iter().enumerate() {
            let f = FrameOfDate::new(eop.epoch(jd), &site);
            let s = f.icrs_to_apparent(radec_to_vec(src.0, src.1));
            let s0 = f.hadec_to_apparent(0.0, dec);
            for (b, &(a1, a2)) in baselines.iter().enumerate() {
                let bl = f.ecef_to_tod(sub(ant_pos[a2], ant_pos[a1]));
                for (c, &nu) in freqs.iter().enumerate() {
                    let ph = 2.0 * std::f64::consts::PI * dot(bl, sub(s, s0)) * nu
                        / crate::primitives::C_M_S;
                    for p in 0..np {
                        vis[((b * nt + t) * nc + c) * np + p] =
                            Complex32::new(ph.cos() as f32, ph.sin() as f32);
                    }
                }
            }
        }
        weight[3] = 0.0; // one flagged sample: baseline 0, t 0, channel 1, pol 1
        let meta = GroupMeta {
            window_starts: vec![0, 2],
            ..Default::default()
        };
        let g = GroupVis {
            times_jd,
            freqs,
            channel_width_hz: 1e6,
            npol: np,
            baselines,
            ant_pos,
            antenna_names: vec!["1".into(), "2".into(), "3".into()],
            site,
            pointing_dec_rad: dec,
            vis,
            weight: crate::core::Weights::from_f32(&weight),
            meta,
        };
        (g, eop)
    }

    #[test]
    fn windows_baselines_and_rows() {
        let (g, eop) = group((2.2, 0.95));
        let c = Centre {
            ra_rad: 2.2,
            dec_rad: 0.95,
        };
        let m = MsContent::new(
            &g,
            c,
            &eop,
            &MsConfig {
                spectral_windows: SpwLayout::Subbands,
                autocorrelations: false,
                ..Default::default()
            },
        );
        assert_eq!(m.windows, vec![0..2, 2..4]);
        assert_eq!(m.baselines, vec![1, 2, 3]);
        assert_eq!(m.n_rows(), 2 * 2 * 3);
        let m = MsContent::new(&g, c, &eop, &MsConfig::default());
        assert_eq!(m.windows, vec![0..4]);
        assert_eq!(m.baselines.len(), 4);
        let (_, flags, w) = m.cells(0, 0);
        assert!(flags[3] && w[3] == 0.0 && !flags[2]);
    }

    /// After rephasing to a centre at the source, every visibility has phase 0; UVW are the
    /// baseline projected on the centre's J2000-oriented basis (|uvw| = |b|).
    #[test]
    fn rephased_source_at_centre_has_zero_phase() {
        let eop = EarthOrientation::none();
        let site = Site::from_geodetic_deg(37.233386982, -118.283405115, 1188.0);
        let (ra, dec) = median_centre(&site, &eop);
        let (g, eop) = group((ra + 0.01, dec - 0.005));
        let c = Centre {
            ra_rad: ra + 0.01,
            dec_rad: dec - 0.005,
        };
        for layout in [SpwLayout::Merged, SpwLayout::Subbands] {
            let m = MsContent::new(
                &g,
                c,
                &eop,
                &MsConfig {
                    spectral_windows: layout,
                    ..Default::default()
                },
            );
            for t in 0..2 {
                for w in 0..m.windows.len() {
                    let (d, _, _) = m.cells(t, w);
                    let worst = d.iter().map(|v| v.arg().abs()).fold(0f32, f32::max);
                    assert!(worst < 2e-5, "phase {worst} rad left at t {t} window {w}");
                }
                for (k, &b) in m.baselines.iter().enumerate() {
                    let (a1, a2) = g.baselines[b];
                    let len = dot(
                        sub(g.ant_pos[a2], g.ant_pos[a1]),
                        sub(g.ant_pos[a2], g.ant_pos[a1]),
                    )
                    .sqrt();
                    let u = m.uvw_at(t)[k];
                    assert!(((u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt() - len).abs() < 1e-6);
                }
            }
            // Without rephasing, the same data keep a large phase: the check can fail.
            let far = MsContent::new(
                &g,
                Centre {
                    ra_rad: ra,
                    dec_rad: dec,
                },
                &eop,
                &MsConfig::default(),
            );
            let (d, _, _) = far.cells(0, 0);
            assert!(d.iter().any(|v| v.arg().abs() > 0.5));
        }
    }

    fn median_centre(site: &Site, eop: &EarthOrientation) -> (f64, f64) {
        crate::primitives::astrometry::median_meridian_icrs(
            &[2461113.7084, 2461113.7086],
            54.6f64.to_radians(),
            site,
            eop,
        )
    }
}
