//! The drifting primary beam in the major cycles (an image-plane A-term).
//!
//! DSA-110 does not track: during a 5-minute group the sky drifts ~0.7 deg through a beam of
//! ~3.3 deg FWHM, so a source's response is its PSF weighted by the beam it saw at each
//! integration. The dirty image shows each source at its time-averaged apparent flux
//! B_eff S; CLEAN models that. Predicting every integration from the same model mis-states
//! the visibilities of bright sources off the pointing track by B_t / B_eff. With this
//! term, each chunk of consecutive integrations is predicted from model x B_k / B_eff, B_k
//! the beam during the chunk and B_eff the mean over all chunks of the image's groups.

use super::gridder::GridSpec;
use super::pb::primary_beam;
use super::Centre;
use crate::primitives::astrometry::Site;
use crate::primitives::iers::EarthOrientation;
use std::ops::Range;

/// Where the effective beam falls below this fraction of its peak, the model is predicted
/// unweighted (no component is expected there; the ratio is ill-conditioned).
const FLOOR: f64 = 0.01;

pub struct DriftBeam<'a> {
    pub spec: GridSpec,
    pub centre: Centre,
    pub eop: &'a EarthOrientation,
    pub site: Site,
    pub pointing_dec: f64,
    pub freqs: Vec<f64>,
    pub dish_m: f64,
    /// Integrations per chunk.
    pub chunk: usize,
    /// Mean beam over every chunk of every group of the image.
    b_eff: Vec<f64>,
}

/// Consecutive chunks of `chunk` integrations (the last may be shorter).
pub fn chunks(n_times: usize, chunk: usize) -> Vec<Range<usize>> {
    let c = chunk.max(1);
    (0..n_times.div_ceil(c))
        .map(|k| k * c..((k + 1) * c).min(n_times))
        .collect()
}

impl<'a> DriftBeam<'a> {
    /// `group_times`: the integration times of every group of the image (from the plan, so
    /// every rank computes the same effective beam).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: GridSpec,
        centre: Centre,
        eop: &'a EarthOrientation,
        site: Site,
        pointing_dec: f64,
        freqs: Vec<f64>,
        dish_m: f64,
        chunk: usize,
        group_times: &[Vec<f64>],
    ) -> Self {
        let mut d = DriftBeam {
            spec,
            centre,
            eop,
            site,
            pointing_dec,
            freqs,
            dish_m,
            chunk,
            b_eff: vec![0.0; spec.n_image * spec.n_image],
        };
        let mut count = 0usize;
        for times in group_times {
            for r in chunks(times.len(), chunk) {
                let b = d.beam(&times[r]);
                d.b_eff.iter_mut().zip(&b).for_each(|(e, x)| *e += x);
                count += 1;
            }
        }
        d.b_eff.iter_mut().for_each(|e| *e /= count.max(1) as f64);
        d
    }

    fn beam(&self, times: &[f64]) -> Vec<f64> {
        primary_beam(
            &self.spec,
            self.centre,
            times,
            self.pointing_dec,
            &self.site,
            self.eop,
            &self.freqs,
            self.dish_m,
        )
    }

    /// The model as the integrations `times` see it: model x B_k / B_eff.
    pub fn weighted_model(&self, model: &[f64], times: &[f64]) -> Vec<f64> {
        let peak = self.b_eff.iter().fold(0.0f64, |a, &b| a.max(b));
        let bk = self.beam(times);
        model
            .iter()
            .zip(bk.iter().zip(&self.b_eff))
            .map(|(&m, (&k, &e))| {
                if m == 0.0 {
                    0.0
                } else if e > FLOOR * peak {
                    m * k / e
                } else {
                    m
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_integration_once() {
        assert_eq!(chunks(24, 6), vec![0..6, 6..12, 12..18, 18..24]);
        assert_eq!(chunks(5, 2), vec![0..2, 2..4, 4..5]);
        assert_eq!(chunks(3, 0), vec![0..1, 1..2, 2..3]);
    }

    /// The chunk-weighted models average back to the model: sum_k B_k / B_eff = K.
    #[test]
    fn weighted_models_average_to_the_model() {
        let eop = EarthOrientation::none();
        let site = Site::from_geodetic_deg(37.233386982, -118.283405115, 1188.0);
        let spec = GridSpec::new(64, (120.0f64 / 3600.0).to_radians(), 1e-4);
        let times: Vec<f64> = (0..24)
            .map(|i| 2461113.7084 + i as f64 * 12.884901888 / 86400.0)
            .collect();
        let dec = 54.6f64.to_radians();
        let (ra, dc) =
            crate::primitives::astrometry::median_meridian_icrs(&times, dec, &site, &eop);
        let centre = Centre {
            ra_rad: ra,
            dec_rad: dc,
        };
        let d = DriftBeam::new(
            spec,
            centre,
            &eop,
            site,
            dec,
            vec![1.3e9, 1.5e9],
            4.65,
            6,
            std::slice::from_ref(&times),
        );
        let model: Vec<f64> = (0..64 * 64)
            .map(|i| if i % 97 == 0 { 1.0 } else { 0.0 })
            .collect();
        let ks = chunks(24, 6);
        let mut sum = vec![0.0; model.len()];
        let mut spread = 0.0f64;
        for r in &ks {
            let w = d.weighted_model(&model, &times[r.clone()]);
            for (i, x) in w.iter().enumerate() {
                sum[i] += x / ks.len() as f64;
                if model[i] != 0.0 {
                    spread = spread.max((x / model[i] - 1.0).abs());
                }
            }
        }
        for (s, m) in sum.iter().zip(&model) {
            assert!((s - m).abs() < 1e-12, "{s} vs {m}");
        }
        // Over a 2.1 deg field the drift changes the beam a lot away from the centre.
        assert!(
            spread > 0.1,
            "beam ratios within {spread}: the test field is too small"
        );
    }
}
