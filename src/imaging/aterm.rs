//! The drifting primary beam in the major cycles (an image-plane A-term).
//!
//! DSA-110 does not track: during a 5-minute group the sky drifts ~0.7 deg through a beam of
//! ~3.3 deg FWHM, so a source's response is its PSF weighted by the beam it saw at each
//! integration. The dirty image shows each source at its time-averaged apparent flux
//! B_eff S; CLEAN models that. Predicting every integration from the same model mis-states
//! the visibilities of bright sources off the pointing track by B_t / B_eff. With this
//! term, each chunk of consecutive integrations is predicted from model x B_k / B_eff, B_k
//! the beam during the chunk and B_eff the mean over all chunks of the image's groups.
//! The linear scheme instead fits the beam as linear in time through its means over each
//! half of the group, B(t) ~ B_c + u(t) (B_2 - B_1), u = (t - t_c) / (t_2 - t_1) (t_1, t_2
//! the halves' mean times, t_c their midpoint, B_c = (B_1 + B_2) / 2): two predictions,
//! from model x B_c / B_eff and model x (B_2 - B_1) / B_eff, the second scaled by each
//! integration's u, whatever the group's length (the quadratic and cubic schemes: through
//! the means over three thirds or four quarters, three or four predictions).
//!
//! The beam narrows over the band (at 0.85 deg from the pointing, the band's top edge sees
//! the drift change the beam ~20 % more than its bottom), so each ratio B_k / B_eff is taken
//! per pixel as linear in frequency, A + C x with x = (nu - ref) / ref as the spectral
//! terms': a model of T spectral terms is predicted as T + 1 images per chunk or node.

use super::gridder::GridSpec;
use super::pb::primary_beam;
use super::Centre;
use crate::primitives::astrometry::{radec_to_vec, separation, FrameOfDate, Site, UvwBasis};
use crate::primitives::beam::airy_power;
use crate::primitives::iers::EarthOrientation;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// How the major cycles follow the drifting beam (`imaging.drift_beam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    /// One prediction for all integrations from the model.
    Off,
    /// One prediction per chunk of `imaging.drift_beam_chunk` integrations (0 = off).
    #[default]
    Chunks,
    /// Two predictions per group: the beam linear in time.
    Linear,
    /// Three predictions per group: the beam quadratic in time.
    Quadratic,
    /// Four predictions per group: the beam cubic in time.
    Cubic,
}

impl DriftMode {
    /// The polynomial schemes (linear, quadratic, cubic in time).
    pub fn is_poly(self) -> bool {
        matches!(
            self,
            DriftMode::Linear | DriftMode::Quadratic | DriftMode::Cubic
        )
    }
}

/// Where the effective beam falls below this fraction of its peak, the model is predicted
/// unweighted (no component is expected there; the ratio is ill-conditioned).
const FLOOR: f64 = 0.01;

pub struct DriftBeam<'a> {
    pub spec: GridSpec,
    pub centre: Centre,
    pub eop: &'a EarthOrientation,
    pub site: Site,
    pub pointing_dec: f64,
    pub dish_m: f64,
    /// Chunks or a polynomial scheme (Off is no DriftBeam).
    pub mode: DriftMode,
    /// Integrations per chunk (Chunks).
    pub chunk: usize,
    /// The spectral terms' reference frequency: the ratio is A + C x, x = (nu - ref) / ref.
    pub ref_hz: f64,
    /// The two frequencies the ratio is evaluated at (the band's Gauss-Legendre nodes).
    nodes_hz: [f64; 2],
    /// Mean beam over every chunk of every group of the image, at each node frequency.
    b_eff: [Vec<f64>; 2],
    /// The pointing (ICRS unit vector) of every integration of every group of the image:
    /// the direct prediction's effective beam is the mean over them (`exact_ratio`).
    all_pointings: Vec<[f64; 3]>,
}

/// Consecutive chunks of `chunk` integrations (the last may be shorter).
pub fn chunks(n_times: usize, chunk: usize) -> Vec<Range<usize>> {
    let c = chunk.max(1);
    (0..n_times.div_ceil(c))
        .map(|k| k * c..((k + 1) * c).min(n_times))
        .collect()
}

/// The beam ratio B_k / B_eff of one chunk (or interpolation node) as a linear function of
/// frequency per pixel: A + C x, x = (nu - ref) / ref.
pub struct Ratio {
    pub a: Vec<f64>,
    pub c: Vec<f64>,
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
        mode: DriftMode,
        chunk: usize,
        ref_hz: f64,
        group_times: &[Vec<f64>],
    ) -> Self {
        // The ratio is close to linear in frequency over the band (its curvature moves a
        // source's prediction by < 1e-4 inside the main lobe); through the band's two
        // Gauss-Legendre nodes the line is the least-squares one for a quadratic ratio.
        let lo = freqs.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = freqs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let (mid, half) = if lo.is_finite() && hi.is_finite() {
            ((lo + hi) / 2.0, (hi - lo) / 2.0)
        } else {
            (ref_hz, 0.0)
        };
        let h = half / 3f64.sqrt();
        let npix = spec.n_image * spec.n_image;
        let mut d = DriftBeam {
            spec,
            centre,
            eop,
            site,
            pointing_dec,
            dish_m,
            mode,
            chunk,
            ref_hz,
            nodes_hz: [mid - h, mid + h],
            b_eff: [vec![0.0; npix], vec![0.0; npix]],
            all_pointings: Vec::new(),
        };
        d.all_pointings = group_times.iter().flat_map(|t| d.pointings(t)).collect();
        if !d.used_by_grid() {
            // Only the direct prediction's exact ratio needs this beam.
            return d;
        }
        let mut count = 0usize;
        for times in group_times {
            for r in d.parts(times.len()) {
                for (j, e) in d.beams(&times[r]).iter().enumerate() {
                    d.b_eff[j].iter_mut().zip(e).for_each(|(s, x)| *s += x);
                }
                count += 1;
            }
        }
        for e in d.b_eff.iter_mut() {
            e.iter_mut().for_each(|e| *e /= count.max(1) as f64);
        }
        d
    }

    /// Whether degridding follows the beam (`imaging.drift_beam` not chunks of 0
    /// integrations): otherwise only the direct prediction does (exactly, at no extra cost;
    /// `off` makes no DriftBeam at all).
    pub fn used_by_grid(&self) -> bool {
        match self.mode {
            DriftMode::Off => false,
            DriftMode::Chunks => self.chunk > 0,
            _ => true,
        }
    }

    /// The pointing (ICRS unit vector: HA 0 at the pointing declination) at each of `times`.
    pub fn pointings(&self, times: &[f64]) -> Vec<[f64; 3]> {
        times
            .iter()
            .map(|&jd| {
                let f = FrameOfDate::new(self.eop.epoch(jd), &self.site);
                let (ra, dec) = f.hadec_to_icrs(0.0, self.pointing_dec);
                radec_to_vec(ra, dec)
            })
            .collect()
    }

    /// The exact beam ratio at image pixel (x, y), per channel and integration (`out[c *
    /// own.len() + t]`): B(t, nu) / B_eff(nu), B the Airy power at integration t's pointing
    /// (`own`, from `pointings`) and B_eff its mean over every integration of the image's
    /// groups at the same frequency; 1 where B_eff is below the floor. What the direct
    /// prediction weights a component with (the polynomial schemes approximate it).
    pub fn exact_ratio(
        &self,
        x: usize,
        y: usize,
        own: &[[f64; 3]],
        freqs: &[f64],
        out: &mut [f64],
    ) {
        let nt = own.len();
        debug_assert_eq!(out.len(), nt * freqs.len());
        let c = (self.spec.n_image / 2) as f64;
        let (l, m) = (
            (c - x as f64) * self.spec.cell_rad,
            (y as f64 - c) * self.spec.cell_rad,
        );
        let basis = UvwBasis::new(
            radec_to_vec(self.centre.ra_rad, self.centre.dec_rad),
            [0.0, 0.0, 1.0],
        );
        let s = basis.from_lm(l, m);
        let th_own: Vec<f64> = own.iter().map(|p| separation(s, *p)).collect();
        let th_all: Vec<f64> = self
            .all_pointings
            .iter()
            .map(|p| separation(s, *p))
            .collect();
        let same = th_all == th_own;
        let mut b = vec![0.0; nt];
        for (ci, &f) in freqs.iter().enumerate() {
            for (bt, &th) in b.iter_mut().zip(&th_own) {
                *bt = airy_power(th, f, self.dish_m);
            }
            let eff = if same {
                b.iter().sum::<f64>() / nt.max(1) as f64
            } else {
                th_all
                    .iter()
                    .map(|&th| airy_power(th, f, self.dish_m))
                    .sum::<f64>()
                    / th_all.len().max(1) as f64
            };
            let o = &mut out[ci * nt..(ci + 1) * nt];
            if eff > FLOOR {
                o.iter_mut().zip(&b).for_each(|(o, b)| *o = b / eff);
            } else {
                o.fill(1.0);
            }
        }
    }

    /// The non-empty chunks (or pieces of the polynomial schemes) of `n` integrations.
    fn parts(&self, n: usize) -> Vec<Range<usize>> {
        match self.mode {
            m if m.is_poly() => pieces(n, self.nodes()),
            _ => chunks(n, self.chunk),
        }
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect()
    }

    /// The beam averaged over `times`, at one frequency.
    fn beam_at(&self, times: &[f64], freq: f64) -> Vec<f64> {
        primary_beam(
            &self.spec,
            self.centre,
            times,
            self.pointing_dec,
            &self.site,
            self.eop,
            &[freq],
            self.dish_m,
        )
    }

    fn beams(&self, times: &[f64]) -> [Vec<f64>; 2] {
        [
            self.beam_at(times, self.nodes_hz[0]),
            self.beam_at(times, self.nodes_hz[1]),
        ]
    }

    /// The ratio B_k / B_eff the integrations `times` see, linear in frequency; where B_eff
    /// is below the floor, 1.
    pub fn ratio(&self, times: &[f64]) -> Ratio {
        let b = self.beams(times);
        let x: Vec<f64> = self
            .nodes_hz
            .iter()
            .map(|f| (f - self.ref_hz) / self.ref_hz)
            .collect();
        let dx = x[1] - x[0];
        let peak = self.b_eff[0].iter().fold(0.0f64, |a, &b| a.max(b));
        let n = b[0].len();
        let mut out = Ratio {
            a: vec![1.0; n],
            c: vec![0.0; n],
        };
        for i in 0..n {
            let (e0, e1) = (self.b_eff[0][i], self.b_eff[1][i]);
            if e0 > FLOOR * peak && e1 > FLOOR * peak {
                let (r0, r1) = (b[0][i] / e0, b[1][i] / e1);
                let c = if dx != 0.0 { (r1 - r0) / dx } else { 0.0 };
                out.c[i] = c;
                out.a[i] = r0 - c * x[0];
            }
        }
        out
    }

    /// The spectral terms' models `models` (term t weighted by x^t) as the integrations
    /// `times` see them: with the ratio A + C x, the T + 1 images sum_t x^t M_t (A + C x),
    /// image p = M_p A + M_(p-1) C, weighted by x^p.
    pub fn weighted_models(&self, models: &[&[f64]], times: &[f64]) -> Vec<Vec<f64>> {
        expand(models, &self.ratio(times))
    }

    /// The polynomial schemes over one group's integrations `times`: the beam's means B_k
    /// over `nodes` consecutive pieces of the group (2: linear, 3: quadratic, 4: cubic), interpolated
    /// in time through the pieces' mean times t_k (Lagrange: B(t) ~ sum_k L_k(t) B_k).
    /// Returns, per piece, the models to predict (`weighted_models`: T + 1 images, image p
    /// weighted by x^p), and each integration's coefficient L_k(t) of each piece (the
    /// visibility is sum_k L_k(t) V_k).
    pub fn poly_models(
        &self,
        models: &[&[f64]],
        times: &[f64],
    ) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>) {
        let parts = self.parts(times.len());
        let tk: Vec<f64> = parts
            .iter()
            .map(|r| times[r.clone()].iter().sum::<f64>() / r.len() as f64)
            .collect();
        let per_piece = parts
            .iter()
            .map(|r| self.weighted_models(models, &times[r.clone()]))
            .collect();
        let coefs = (0..tk.len())
            .map(|k| {
                times
                    .iter()
                    .map(|&t| {
                        (0..tk.len())
                            .filter(|&j| j != k)
                            .map(|j| (t - tk[j]) / (tk[k] - tk[j]))
                            .product()
                    })
                    .collect()
            })
            .collect();
        (per_piece, coefs)
    }

    /// Interpolation nodes of the polynomial schemes.
    fn nodes(&self) -> usize {
        match self.mode {
            DriftMode::Quadratic => 3,
            DriftMode::Cubic => 4,
            _ => 2,
        }
    }

    /// Degridding passes per prediction of a group of `n_times` integrations.
    pub fn passes(&self, n_times: usize) -> usize {
        match self.mode {
            m if m.is_poly() => self.nodes().min(n_times.max(1)),
            _ => chunks(n_times, self.chunk).len(),
        }
    }
}

/// sum_t x^t M_t (A + C x) as T + 1 images, image p = M_p A + M_(p-1) C (weighted by x^p).
fn expand(models: &[&[f64]], r: &Ratio) -> Vec<Vec<f64>> {
    let t = models.len();
    let n = r.a.len();
    (0..=t)
        .map(|p| {
            let mut img = vec![0.0; n];
            if let Some(m) = models.get(p) {
                for (i, &v) in m.iter().enumerate().filter(|(_, v)| **v != 0.0) {
                    img[i] += v * r.a[i];
                }
            }
            if p >= 1 {
                for (i, &v) in models[p - 1].iter().enumerate().filter(|(_, v)| **v != 0.0) {
                    img[i] += v * r.c[i];
                }
            }
            img
        })
        .collect()
}

/// `n` integrations in `k` consecutive near-equal pieces (the later ones the longer).
pub fn pieces(n: usize, k: usize) -> Vec<Range<usize>> {
    let k = k.max(1);
    (0..k).map(|i| i * n / k..(i + 1) * n / k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group of 24 integrations at dec 54.6 deg seen by an image of `spec` at the median
    /// meridian: the beam for `mode` / `chunk`, and the integrations' times.
    fn drift_beam(
        eop: &EarthOrientation,
        spec: GridSpec,
        freqs: Vec<f64>,
        mode: DriftMode,
        chunk: usize,
    ) -> (DriftBeam<'_>, Vec<f64>) {
        let site = Site::from_geodetic_deg(37.233386982, -118.283405115, 1188.0);
        let times: Vec<f64> = (0..24)
            .map(|i| 2461113.7084 + i as f64 * 12.884901888 / 86400.0)
            .collect();
        let dec = 54.6f64.to_radians();
        let (ra, dc) = crate::primitives::astrometry::median_meridian_icrs(&times, dec, &site, eop);
        let centre = Centre {
            ra_rad: ra,
            dec_rad: dc,
        };
        let d = DriftBeam::new(
            spec,
            centre,
            eop,
            site,
            dec,
            freqs,
            4.65,
            mode,
            chunk,
            1.405e9,
            std::slice::from_ref(&times),
        );
        (d, times)
    }

    /// The direct prediction's exact ratio: the per-integration beam over its mean at the
    /// same frequency (as `primary_beam` evaluates them, one integration and frequency at a
    /// time), averaging to one over the group at every frequency; it moves by tens of per
    /// cent along the drift out on the beam's flank.
    #[test]
    fn exact_ratio_is_each_integrations_beam_over_the_mean() {
        let n = 64;
        let spec = GridSpec::new(n, (240.0f64 / 3600.0).to_radians(), 1e-4);
        let band: Vec<f64> = (0..5).map(|i| 1.311e9 + i as f64 * 0.0469e9).collect();
        let eop = EarthOrientation::none();
        let (d, times) = drift_beam(&eop, spec, band.clone(), DriftMode::Cubic, 0);
        let own = d.pointings(&times);
        let nt = times.len();
        let mut r = vec![0.0; nt * band.len()];
        let mut swing = 0.0f64;
        for (x, y) in [(32, 32), (20, 32), (44, 30), (32, 50), (25, 18)] {
            d.exact_ratio(x, y, &own, &band, &mut r);
            for (c, &f) in band.iter().enumerate() {
                let b: Vec<f64> = times
                    .iter()
                    .map(|t| d.beam_at(&[*t], f)[y * n + x])
                    .collect();
                let mean = b.iter().sum::<f64>() / nt as f64;
                let row = &r[c * nt..(c + 1) * nt];
                assert!((row.iter().sum::<f64>() / nt as f64 - 1.0).abs() < 1e-12);
                for t in 0..nt {
                    assert!((row[t] - b[t] / mean).abs() < 1e-9, "({x}, {y}) {c} {t}");
                }
                swing = swing.max(row[nt - 1] - row[0]).max(row[0] - row[nt - 1]);
            }
        }
        assert!(swing > 0.1, "the beam hardly drifts: {swing}");
    }

    #[test]
    fn chunks_cover_every_integration_once() {
        assert_eq!(chunks(24, 6), vec![0..6, 6..12, 12..18, 18..24]);
        assert_eq!(chunks(5, 2), vec![0..2, 2..4, 4..5]);
        assert_eq!(chunks(3, 0), vec![0..1, 1..2, 2..3]);
    }

    /// The chunks' ratios average back to one at every frequency (sum_k A_k = K,
    /// sum_k C_k = 0), and the expansion of two spectral terms is the product term by term.
    #[test]
    fn weighted_models_average_to_the_model() {
        let spec = GridSpec::new(64, (120.0f64 / 3600.0).to_radians(), 1e-4);
        let eop = EarthOrientation::none();
        let (d, times) = drift_beam(&eop, spec, vec![1.3e9, 1.5e9], DriftMode::Chunks, 6);
        let ks = chunks(24, 6);
        let rs: Vec<Ratio> = ks.iter().map(|r| d.ratio(&times[r.clone()])).collect();
        let (mut spread, mut slope) = (0.0f64, 0.0f64);
        for i in 0..64 * 64 {
            let a: f64 = rs.iter().map(|r| r.a[i]).sum::<f64>() / ks.len() as f64;
            let c: f64 = rs.iter().map(|r| r.c[i]).sum::<f64>() / ks.len() as f64;
            assert!((a - 1.0).abs() < 1e-12 && c.abs() < 1e-10, "{a} {c}");
            for r in &rs {
                spread = spread.max((r.a[i] - 1.0).abs());
                slope = slope.max(r.c[i].abs());
            }
        }
        // Over a 2.1 deg field the drift changes the beam a lot away from the centre, and
        // more at the band's top than at its bottom.
        assert!(
            spread > 0.1 && slope > 0.1,
            "ratios within {spread}, slopes {slope}"
        );
        let m0: Vec<f64> = (0..64 * 64).map(|i| (i % 97 == 0) as u8 as f64).collect();
        let m1: Vec<f64> = m0.iter().map(|v| -0.7 * v).collect();
        let r = &rs[0];
        let e = expand(&[&m0, &m1], r);
        assert_eq!(e.len(), 3);
        for x in [-0.07, 0.0, 0.05] {
            for i in (0..64 * 64).step_by(97) {
                let want = (m0[i] + m1[i] * x) * (r.a[i] + r.c[i] * x);
                let got = e[0][i] + e[1][i] * x + e[2][i] * x * x;
                assert!((want - got).abs() < 1e-12);
            }
        }
    }

    /// Per integration and channel, a point component's predicted flux is model x w(t, nu);
    /// the truth is model x B(t, nu) / <B>(nu) (B(t, nu) the beam at that integration and
    /// frequency, <B> its mean over the group, which the dirty image and so the model saw).
    /// Over a 24-integration group out to the beam's 10 % level and a 1.31-1.50 GHz band,
    /// the linear scheme's rms error is below 0.8x the 4-integration chunks' (measured
    /// 0.54x), in 2 passes (not 6); the quadratic scheme's below 0.5x the linear one's
    /// (measured 0.21x); and the quadratic scheme's error is < 1/3 of what it is with the
    /// ratio taken as constant over the band (measured 1/6.8); the cubic scheme's below
    /// 0.75x the quadratic one's (measured 0.53x).
    #[test]
    fn linear_beam_matches_four_integration_chunks_in_two_passes() {
        let n = 64;
        // 240"/px: a 4.3 deg field, out to the beam's first null.
        let spec = GridSpec::new(n, (240.0f64 / 3600.0).to_radians(), 1e-4);
        let band: Vec<f64> = (0..5).map(|i| 1.311e9 + i as f64 * 0.0469e9).collect();
        let eop = EarthOrientation::none();
        let make = |mode, chunk| drift_beam(&eop, spec, band.clone(), mode, chunk).0;
        let times = drift_beam(&eop, spec, band.clone(), DriftMode::Chunks, 4).1;
        let chunked = make(DriftMode::Chunks, 4);
        let linear = make(DriftMode::Linear, 0);
        assert_eq!(chunked.passes(24), 6);
        assert_eq!(linear.passes(24), 2);
        let xs: Vec<f64> = band.iter().map(|f| (f - 1.405e9) / 1.405e9).collect();
        // The true per-integration beams at each frequency and their means over the group.
        let per: Vec<Vec<Vec<f64>>> = band
            .iter()
            .map(|&f| times.iter().map(|t| chunked.beam_at(&[*t], f)).collect())
            .collect();
        let mean: Vec<Vec<f64>> = per
            .iter()
            .map(|pf| {
                let mut m = vec![0.0; n * n];
                for b in pf {
                    m.iter_mut().zip(b).for_each(|(m, x)| *m += x / 24.0);
                }
                m
            })
            .collect();
        // Components where the mean beam is above 10 % of its peak (inside the main lobe).
        let peak = mean[2].iter().fold(0.0f64, |a, &b| a.max(b));
        let comps: Vec<usize> = (0..n * n)
            .filter(|&i| mean[2][i] > 0.1 * peak && i % 7 == 0)
            .collect();
        let truth = |f: usize, t: usize, i: usize| per[f][t][i] / mean[f][i];
        let mut err_chunk = 0.0f64;
        for r in chunks(24, 4) {
            let ra = chunked.ratio(&times[r.clone()]);
            for t in r {
                for (f, x) in xs.iter().enumerate() {
                    for &i in &comps {
                        err_chunk += (ra.a[i] + ra.c[i] * x - truth(f, t, i)).powi(2);
                    }
                }
            }
        }
        // The polynomial schemes, with the ratio linear in frequency or (flat) taken at the
        // band's centre.
        let poly_err = |d: &DriftBeam, flat: bool| {
            let parts = pieces(24, d.nodes());
            let rs: Vec<Ratio> = parts.iter().map(|r| d.ratio(&times[r.clone()])).collect();
            let one: Vec<f64> = vec![1.0; n * n];
            let (_, cs) = d.poly_models(&[&one], &times);
            let mut err = 0.0f64;
            for t in 0..times.len() {
                for (f, x) in xs.iter().enumerate() {
                    let x = if flat { xs[2] } else { *x };
                    for &i in &comps {
                        let w: f64 = rs
                            .iter()
                            .zip(&cs)
                            .map(|(r, ck)| ck[t] * (r.a[i] + r.c[i] * x))
                            .sum();
                        err += (w - truth(f, t, i)).powi(2);
                    }
                }
            }
            err
        };
        let err_linear = poly_err(&linear, false);
        let quad = make(DriftMode::Quadratic, 0);
        let err_quad = poly_err(&quad, false);
        let err_flat = poly_err(&quad, true);
        let err_cubic = poly_err(&make(DriftMode::Cubic, 0), false);
        let mut err_none = 0.0f64;
        for t in 0..times.len() {
            for f in 0..band.len() {
                for &i in &comps {
                    err_none += (1.0 - truth(f, t, i)).powi(2);
                }
            }
        }
        let (c, l, z) = (err_chunk.sqrt(), err_linear.sqrt(), err_none.sqrt());
        let (q, fl, cu) = (err_quad.sqrt(), err_flat.sqrt(), err_cubic.sqrt());
        eprintln!(
            "rms error: none {z:.4e} chunk-4 {c:.4e} linear {l:.4e} quadratic {q:.4e} \
             quadratic flat in frequency {fl:.4e} cubic {cu:.4e}"
        );
        assert!(
            z > 5.0 * c,
            "the field is too small to test: none {z} chunk {c}"
        );
        assert!(l < 0.8 * c, "linear {l} vs chunk-4 {c}");
        assert!(q < 0.5 * l, "quadratic {q} vs linear {l}");
        assert!(q < fl / 3.0, "quadratic {q} vs flat in frequency {fl}");
        assert!(cu < 0.75 * q, "cubic {cu} vs quadratic {q}");
    }
}
