//! Model visibilities of point sources in a group's own phasing (each integration
//! fringe-stopped to HA = 0 at the pointing declination), seen through the Airy beam:
//! M_ab(t, nu) = sum_s S_s(nu) B_s(t, nu) exp(+2 pi i nu/c b.(s - d_t)), b = pos(b) - pos(a).

use crate::core::GroupVis;
use crate::primitives::astrometry::{dot, radec_to_vec, separation, sub, FrameOfDate};
use crate::primitives::beam::airy_power;
use crate::primitives::iers::EarthOrientation;
use crate::primitives::C_M_S;
use num_complex::Complex64;

/// A point source for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSource {
    pub ra_rad: f64,
    pub dec_rad: f64,
    pub flux_jy: f64,
    pub spectral_index: f64,
}

/// Per-integration antenna phasors and beams, from which any baseline's model follows.
pub struct ModelPredictor {
    n_chan: usize,
    n_src: usize,
    /// [t][ant][src][chan] phasors exp(2 pi i nu/c pos.(s - d_t)).
    ph: Vec<Vec<Complex64>>,
    /// [t][src][chan] flux x beam.
    amp: Vec<Vec<f64>>,
    n_ant: usize,
}

impl ModelPredictor {
    pub fn new(g: &GroupVis, sources: &[PointSource], eop: &EarthOrientation, dish_m: f64) -> Self {
        let (nt, nf, ns, na) = (g.n_times(), g.n_chan(), sources.len(), g.ant_pos.len());
        let used: Vec<bool> = {
            let mut u = vec![false; na];
            for &(a, b) in &g.baselines {
                u[a] = true;
                u[b] = true;
            }
            u
        };
        let mut ph = Vec::with_capacity(nt);
        let mut amp = Vec::with_capacity(nt);
        for &jd in &g.times_jd {
            let f = FrameOfDate::new(eop.epoch(jd), &g.site);
            let d = f.hadec_to_apparent(0.0, g.pointing_dec_rad);
            let apps: Vec<_> = sources
                .iter()
                .map(|s| f.icrs_to_apparent(radec_to_vec(s.ra_rad, s.dec_rad)))
                .collect();
            let mut a_t = vec![0.0; ns * nf];
            for (k, s) in sources.iter().enumerate() {
                let th = separation(apps[k], d);
                for (c, &nu) in g.freqs.iter().enumerate() {
                    a_t[k * nf + c] = s.flux_jy
                        * (nu / 1.4e9).powf(s.spectral_index)
                        * airy_power(th, nu, dish_m);
                }
            }
            let mut p_t = vec![Complex64::new(0.0, 0.0); na * ns * nf];
            for a in (0..na).filter(|&a| used[a]) {
                let pos = f.ecef_to_tod(g.ant_pos[a]);
                for k in 0..ns {
                    let delay = dot(pos, sub(apps[k], d));
                    for (c, &nu) in g.freqs.iter().enumerate() {
                        p_t[(a * ns + k) * nf + c] =
                            Complex64::from_polar(1.0, std::f64::consts::TAU * nu * delay / C_M_S);
                    }
                }
            }
            ph.push(p_t);
            amp.push(a_t);
        }
        ModelPredictor {
            n_chan: nf,
            n_src: ns,
            ph,
            amp,
            n_ant: na,
        }
    }

    /// Model visibility of baseline (a, b) at integration t, channel c.
    #[inline]
    pub fn vis(&self, a: usize, b: usize, t: usize, c: usize) -> Complex64 {
        let (nf, ns) = (self.n_chan, self.n_src);
        debug_assert!(a < self.n_ant && b < self.n_ant);
        let p = &self.ph[t];
        let mut m = Complex64::new(0.0, 0.0);
        for k in 0..ns {
            m += self.amp[t][k * nf + c]
                * p[(a * ns + k) * nf + c].conj()
                * p[(b * ns + k) * nf + c];
        }
        m
    }

    /// Model visibility of source `s` alone (as `vis`).
    #[inline]
    pub fn vis_of(&self, s: usize, a: usize, b: usize, t: usize, c: usize) -> Complex64 {
        let (nf, ns) = (self.n_chan, self.n_src);
        let p = &self.ph[t];
        self.amp[t][s * nf + c] * p[(a * ns + s) * nf + c].conj() * p[(b * ns + s) * nf + c]
    }
}
