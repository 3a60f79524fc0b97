//! Sources outside the image but inside the primary beam (outliers).
//!
//! DSA-110's tiles (2.8-4 deg) are about as wide as the primary beam (first null ~3.4 deg
//! from the pointing at 1311 MHz) and a group drifts ~1.25 deg, so bright sources lie outside
//! a tile while still seen at several per cent of the beam peak; their sidelobes cross the
//! tile and CLEAN cannot place components on them. Here the catalogue's sources outside the
//! cleanable window whose beam response over the group reaches `min_beam` (at the band's
//! lowest frequency) are predicted through the drifting beam (each integration's own Airy
//! response, `calibrate::model`), their flux and spectral slope fitted to the visibilities
//! by least squares (so a catalogue's flux error does not matter), and subtracted. The fit
//! is linear and runs on the residual visibilities of every major cycle, after the CLEAN
//! model's increment is subtracted (the sources inside the tile, which would bias a fit to
//! the raw data through the PSF's sidelobes, are then mostly removed); each refit subtracts
//! its increment. The dirty image keeps the outliers.

use super::clean::EDGE_PX;
use super::gridder::GridSpec;
use super::Centre;
use crate::calibrate::catalog::Calibrator;
use crate::calibrate::model::{ModelPredictor, PointSource};
use crate::compute::outlier_fit::UnitModel;
use crate::compute::{Compute, GpuError, Resident};
use crate::core::{Group, StokesGroup};
use crate::primitives::astrometry::{radec_to_vec, separation, FrameOfDate, UvwBasis};
use crate::primitives::beam::airy_power;
use crate::primitives::iers::EarthOrientation;
use num_complex::{Complex32, Complex64};
use rayon::prelude::*;

/// A catalogue source selected as an outlier of one group's image.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    pub name: String,
    pub source: PointSource,
    /// Mean beam response over the group's integrations at the band's lowest frequency.
    pub beam: f64,
}

/// The catalogue's sources outside the cleanable window of the image (`spec`, `centre`; the
/// outermost `EDGE_PX` pixels count as outside) whose mean beam response over `g`'s
/// integrations at its lowest frequency is at least `min_beam` (beam peak 1).
pub fn select<W>(
    cat: &[Calibrator],
    g: &Group<W>,
    spec: &GridSpec,
    centre: Centre,
    eop: &EarthOrientation,
    min_beam: f64,
    dish_m: f64,
) -> Vec<Outlier> {
    let Some(&f_lo) = g.freqs.iter().min_by(|a, b| a.total_cmp(b)) else {
        return Vec::new();
    };
    if g.times_jd.is_empty() || min_beam <= 0.0 {
        return Vec::new();
    }
    let pointings: Vec<[f64; 3]> = g
        .times_jd
        .iter()
        .map(|&jd| {
            let (ra, dec) =
                FrameOfDate::new(eop.epoch(jd), &g.site).hadec_to_icrs(0.0, g.pointing_dec_rad);
            radec_to_vec(ra, dec)
        })
        .collect();
    let basis = UvwBasis::new(radec_to_vec(centre.ra_rad, centre.dec_rad), [0.0, 0.0, 1.0]);
    let n = spec.n_image as f64;
    let half = n / 2.0 - EDGE_PX as f64;
    cat.iter()
        .filter_map(|c| {
            let s = radec_to_vec(c.ra_rad, c.dec_rad);
            let beam = pointings
                .iter()
                .map(|p| airy_power(separation(s, *p), f_lo, dish_m))
                .sum::<f64>()
                / pointings.len() as f64;
            if beam < min_beam {
                return None;
            }
            let [l, m, nn] = basis.lmn(s);
            // Pixel offsets from the centre (x = n/2 - l / cell, y = n/2 + m / cell).
            let inside =
                nn > 0.0 && (l / spec.cell_rad).abs() < half && (m / spec.cell_rad).abs() < half;
            (!inside).then(|| Outlier {
                name: c.name.clone(),
                source: PointSource {
                    ra_rad: c.ra_rad,
                    dec_rad: c.dec_rad,
                    flux_jy: c.flux_jy,
                    spectral_index: c.spectral_index.unwrap_or(0.0),
                },
                beam,
            })
        })
        .collect()
}

/// The outliers of one group: their unit-flux predictions (catalogue spectral index, the
/// drifting Airy beam) and the fitted coefficients subtracted so far, two per source: the
/// flux at `ref_hz` and its slope in x = (nu - ref_hz) / ref_hz.
pub struct OutlierModel {
    pub outliers: Vec<Outlier>,
    pred: ModelPredictor,
    ref_hz: f64,
    pub coef: Vec<f64>,
    /// The normal matrix A^T W A of the first fit (k x k): the unit predictions and the
    /// weights do not change between fits (the imaging weights are applied before the
    /// first), so later fits accumulate only A^T W v.
    ata: Option<Vec<f64>>,
    /// The predictor's tables flattened for a backend (`fit_held`), made on first use.
    flat: Option<(Vec<f64>, Vec<f64>, Vec<f64>)>,
}

impl OutlierModel {
    pub fn new<W>(
        g: &Group<W>,
        outliers: Vec<Outlier>,
        eop: &EarthOrientation,
        dish_m: f64,
    ) -> Self {
        let unit: Vec<PointSource> = outliers
            .iter()
            .map(|o| PointSource {
                flux_jy: 1.0,
                ..o.source.clone()
            })
            .collect();
        let pred = ModelPredictor::without_table(g, &unit, eop, dish_m);
        let ref_hz = g.freqs.iter().sum::<f64>() / g.freqs.len().max(1) as f64;
        let k = 2 * outliers.len();
        OutlierModel {
            outliers,
            pred,
            ref_hz,
            coef: vec![0.0; k],
            ata: None,
            flat: None,
        }
    }

    /// Fitted flux of outlier `s` (before the beam) at `ref_hz`, with the catalogue's
    /// spectral index scaled from 1.4 GHz (the prediction is 1 Jy at 1.4 GHz).
    pub fn flux_scale(&self, s: usize) -> f64 {
        self.coef[2 * s] * (self.ref_hz / 1.4e9).powf(self.outliers[s].source.spectral_index)
    }

    /// The weights changed (reweighting): the next fit recomputes the normal matrix.
    pub fn weights_changed(&mut self) {
        self.ata = None;
    }

    /// The reference frequency of the fitted flux and slope (the band's mean).
    pub fn ref_hz(&self) -> f64 {
        self.ref_hz
    }

    /// Fits the outliers' coefficients to `g`'s visibilities (cross-correlations in
    /// `use_row`, both polarizations as Stokes I, the data weights) and subtracts the fitted
    /// model; the coefficients accumulate. Returns the increment.
    pub fn fit_and_subtract(&mut self, g: &mut StokesGroup, use_row: &[bool]) -> Vec<f64> {
        let ns = self.outliers.len();
        let k = 2 * ns;
        if k == 0 {
            return Vec::new();
        }
        let (nt, nc, np) = (g.n_times(), g.n_chan(), g.npol);
        let xs = self.xs(&g.freqs);
        let pred = &self.pred;
        let baselines = &g.baselines;
        // One row's unit predictions of every source (`m[s * nc + c]`) and its smearing.
        let predict = |r: usize, sm: &mut [f64], m: &mut [Complex64]| {
            let (a, b) = baselines[r / nt];
            let t = r % nt;
            pred.row_smearing(a, b, t, sm);
            pred.row_vis_all(a, b, t, sm, m);
        };
        let scratch = || {
            (
                vec![0.0f64; ns],
                vec![Complex64::new(0.0, 0.0); ns * nc],
                vec![0.0f64; nc],
                vec![Complex64::new(0.0, 0.0); nc],
            )
        };
        // The normal equations, row by row: basis 2s + e is source s's unit prediction
        // times x^e, so A^T A's (2 s1 + e1, 2 s2 + e2) entry is sum w Re(m1* m2) x^(e1 + e2)
        // and A^T b's (2 s + e) entry sum x^e Re(m* v), v = sum over polarizations of wt V.
        let need_ata = self.ata.is_none();
        let (ata, atb) = (0..use_row.len())
            .into_par_iter()
            .filter(|&r| use_row[r])
            .fold(
                || (vec![0.0f64; k * k], vec![0.0f64; k], scratch()),
                |(mut ata, mut atb, (mut sm, mut m, mut w, mut v)), r| {
                    predict(r, &mut sm, &mut m);
                    for c in 0..nc {
                        let base = (r * nc + c) * np;
                        let (mut ws, mut vs) = (0.0f64, Complex64::new(0.0, 0.0));
                        for p in 0..np {
                            let wt = g.weight[base + p];
                            if wt > 0.0 {
                                let z = g.vis[base + p];
                                ws += wt as f64;
                                vs += wt as f64 * Complex64::new(z.re as f64, z.im as f64);
                            }
                        }
                        w[c] = ws;
                        v[c] = vs;
                    }
                    for s1 in 0..ns {
                        let m1 = &m[s1 * nc..(s1 + 1) * nc];
                        let (mut q0, mut q1) = (0.0, 0.0);
                        for c in 0..nc {
                            let d = m1[c].re * v[c].re + m1[c].im * v[c].im;
                            q0 += d;
                            q1 += d * xs[c];
                        }
                        atb[2 * s1] += q0;
                        atb[2 * s1 + 1] += q1;
                        if !need_ata {
                            continue;
                        }
                        for s2 in s1..ns {
                            let m2 = &m[s2 * nc..(s2 + 1) * nc];
                            let mut q = [0.0f64; 3];
                            for c in 0..nc {
                                let d = w[c] * (m1[c].re * m2[c].re + m1[c].im * m2[c].im);
                                q[0] += d;
                                q[1] += d * xs[c];
                                q[2] += d * xs[c] * xs[c];
                            }
                            for e1 in 0..2 {
                                for e2 in 0..2 {
                                    let (i, j) = (2 * s1 + e1, 2 * s2 + e2);
                                    if j >= i {
                                        ata[i * k + j] += q[e1 + e2];
                                    }
                                }
                            }
                        }
                    }
                    (ata, atb, (sm, m, w, v))
                },
            )
            .map(|(a, b, _)| (a, b))
            .reduce(
                || (vec![0.0; k * k], vec![0.0; k]),
                |(mut a, mut b), (x, y)| {
                    a.iter_mut().zip(&x).for_each(|(p, q)| *p += q);
                    b.iter_mut().zip(&y).for_each(|(p, q)| *p += q);
                    (a, b)
                },
            );
        if need_ata {
            let mut ata = ata;
            for i in 0..k {
                for j in 0..i {
                    ata[i * k + j] = ata[j * k + i];
                }
            }
            self.ata = Some(ata);
        }
        let delta = solve(self.ata.clone().unwrap_or_default(), atb, k);
        self.subtract_increment(g, use_row, &delta);
        self.coef.iter_mut().zip(&delta).for_each(|(a, b)| *a += b);
        delta
    }

    /// The slope basis (nu - ref) / ref of each channel.
    fn xs(&self, freqs: &[f64]) -> Vec<f64> {
        freqs
            .iter()
            .map(|f| (f - self.ref_hz) / self.ref_hz)
            .collect()
    }

    /// Subtracts the model of coefficients `delta` (an increment of a fit) from `g`'s rows
    /// in `use_row`, every polarization.
    pub fn subtract_increment(&self, g: &mut StokesGroup, use_row: &[bool], delta: &[f64]) {
        let ns = self.outliers.len();
        let (nt, nc, np) = (g.n_times(), g.n_chan(), g.npol);
        let xs = self.xs(&g.freqs);
        let (pred, baselines) = (&self.pred, &g.baselines);
        let d = delta;
        g.vis
            .par_chunks_mut(nc * np)
            .enumerate()
            .filter(|(r, _)| use_row[*r])
            .for_each_init(
                || (vec![0.0f64; ns], vec![Complex64::new(0.0, 0.0); ns * nc]),
                |(sm, m), (r, row)| {
                    let (a, b) = baselines[r / nt];
                    pred.row_smearing(a, b, r % nt, sm);
                    pred.row_vis_all(a, b, r % nt, sm, m);
                    for c in 0..nc {
                        let mut z = Complex64::new(0.0, 0.0);
                        for s in 0..ns {
                            z += m[s * nc + c] * (d[2 * s] + d[2 * s + 1] * xs[c]);
                        }
                        let z = Complex32::new(z.re as f32, z.im as f32);
                        for p in 0..np {
                            row[c * np + p] -= z;
                        }
                    }
                },
            );
    }

    /// `fit_and_subtract` on the visibilities a backend holds for `g` (`r`): the right side
    /// of the normal equations summed there at every fit and the normal matrix at the first
    /// (the held weights do not change after it), solved here, the increment subtracted
    /// there; the coefficients accumulate. After an Err the held visibilities may have lost
    /// part of the increment (the coefficients are unchanged).
    pub fn fit_held(
        &mut self,
        g: &StokesGroup,
        use_row: &[bool],
        compute: &dyn Compute,
        r: &dyn Resident,
    ) -> Result<Vec<f64>, GpuError> {
        let k = 2 * self.outliers.len();
        if k == 0 {
            return Ok(Vec::new());
        }
        let xs = self.xs(&g.freqs);
        let flat = self.flat.get_or_insert_with(|| self.pred.flat_tables());
        let (amp, delay, smear) = (&flat.0, &flat.1, &flat.2);
        let model = UnitModel {
            nt: g.n_times(),
            model: crate::compute::point_model::PointModel {
                ns: self.outliers.len(),
                n_ant: self.pred.counts().1,
                amp,
                delay,
                smear,
                freqs: &g.freqs,
            },
            xs: &xs,
            baselines: &g.baselines,
            use_row,
        };
        let (atb, first) = compute.outlier_normal(r, &model, self.ata.is_none())?;
        let Some(ata) = first.or_else(|| self.ata.clone()) else {
            return Err(GpuError::Cuda("the backend made no normal matrix".into()));
        };
        let delta = solve(ata.clone(), atb, k);
        compute.outlier_subtract(r, &model, &delta)?;
        self.ata = Some(ata);
        self.coef.iter_mut().zip(&delta).for_each(|(a, b)| *a += b);
        Ok(delta)
    }
}

/// Solves the symmetric system A x = b (k x k) by Gaussian elimination with partial
/// pivoting; unknowns without support (a pivot below 1e-12 of the largest diagonal) are 0.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, k: usize) -> Vec<f64> {
    let scale = (0..k).map(|i| a[i * k + i].abs()).fold(0.0, f64::max);
    let tiny = 1e-12 * scale.max(f64::MIN_POSITIVE);
    let mut used = vec![true; k];
    for col in 0..k {
        let p = (col..k)
            .max_by(|&i, &j| a[i * k + col].abs().total_cmp(&a[j * k + col].abs()))
            .unwrap_or(col);
        if a[p * k + col].abs() <= tiny {
            used[col] = false;
            continue;
        }
        if p != col {
            for j in 0..k {
                a.swap(p * k + j, col * k + j);
            }
            b.swap(p, col);
        }
        for i in col + 1..k {
            let f = a[i * k + col] / a[col * k + col];
            if f != 0.0 {
                for j in col..k {
                    a[i * k + j] -= f * a[col * k + j];
                }
                b[i] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        if !used[i] {
            continue;
        }
        let s: f64 = (i + 1..k).map(|j| a[i * k + j] * x[j]).sum();
        x[i] = (b[i] - s) / a[i * k + i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_matches_a_known_system() {
        let a = vec![4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let x = [1.0, -2.0, 0.5];
        let b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum())
            .collect();
        let got = solve(a, b, 3);
        for (g, e) in got.iter().zip(&x) {
            assert!((g - e).abs() < 1e-12, "{got:?}");
        }
        // An unknown without support is left at 0.
        let got = solve(vec![2.0, 0.0, 0.0, 0.0], vec![4.0, 1.0], 2);
        assert_eq!(got, vec![2.0, 0.0]);
    }
}
