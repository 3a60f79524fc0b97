//! A call's data, validated: the rows, channels in ascending frequency, visibilities,
//! weights and cuts (see the parent module).

use super::{Error, Options};
use crate::primitives::C_M_S;
use num_complex::Complex32;
use rayon::prelude::*;

/// The data of a call, validated, with the channels in ascending frequency.
pub(super) struct Data<'a> {
    pub(super) uvw: &'a [[f64; 3]],
    pub(super) freqs: &'a [f64],
    pub(super) vis: Option<&'a [Complex32]>,
    pub(super) weight: Option<&'a [f32]>,
    pub(super) npol: usize,
    pub(super) mask: Option<&'a [bool]>,
    pub(super) delay: Option<&'a [f64]>,
    /// Channel indices in ascending frequency, and those frequencies.
    pub(super) order: Vec<usize>,
    pub(super) fs: Vec<f64>,
    /// The sorted channels' metres-to-wavelengths factors, fs / c.
    pub(super) lam: Vec<f64>,
    /// Sorted frequencies equally spaced (phasors advance by one multiplication).
    pub(super) df: Option<f64>,
    pub(super) uvmin2: f64,
    pub(super) uvmax2: f64,
    /// Largest accepted |u| (and |v|) in wavelengths.
    pub(super) umax: f64,
}

impl<'a> Data<'a> {
    pub(super) fn new(
        uvw: &'a [[f64; 3]],
        freqs: &'a [f64],
        vis: Option<&'a [Complex32]>,
        weight: Option<&'a [f32]>,
        opt: &Options<'a>,
    ) -> Result<Self, Error> {
        let (nrow, nchan) = (uvw.len(), freqs.len());
        if opt.npix < 4 || !opt.npix.is_multiple_of(2) {
            return Err(Error(format!(
                "image size {} must be even and >= 4",
                opt.npix
            )));
        }
        if opt.pixsize_rad.is_nan() || opt.pixsize_rad <= 0.0 || opt.pixsize_rad.is_infinite() {
            return Err(Error(format!("pixel size {} rad", opt.pixsize_rad)));
        }
        if opt.epsilon.is_nan() || opt.epsilon <= 0.0 {
            return Err(Error(format!("epsilon {}", opt.epsilon)));
        }
        if opt.npol == 0 {
            return Err(Error("npol is 0".into()));
        }
        if nchan == 0 {
            return Err(Error("no channels".into()));
        }
        if freqs.iter().any(|f| !(*f > 0.0 && f.is_finite())) {
            return Err(Error(
                "channel frequencies must be positive and finite".into(),
            ));
        }
        let nvis = nrow * nchan * opt.npol;
        if let Some(v) = vis {
            if v.len() != nvis {
                return Err(Error(format!(
                    "{} visibilities for {nrow} rows x {nchan} channels x {} pols",
                    v.len(),
                    opt.npol
                )));
            }
        }
        if let Some(w) = weight {
            if w.len() != nvis {
                return Err(Error(format!("{} weights for {nvis} samples", w.len())));
            }
        }
        for (name, len) in [
            ("row mask", opt.row_mask.map(|m| m.len())),
            ("row delays", opt.row_delay_m.map(|m| m.len())),
        ] {
            if let Some(l) = len {
                if l != nrow {
                    return Err(Error(format!("{name}: {l} entries for {nrow} rows")));
                }
            }
        }
        let mut order: Vec<usize> = (0..nchan).collect();
        order.sort_by(|&a, &b| freqs[a].total_cmp(&freqs[b]));
        let fs: Vec<f64> = order.iter().map(|&c| freqs[c]).collect();
        let df = if nchan > 1 {
            let df = (fs[nchan - 1] - fs[0]) / (nchan - 1) as f64;
            fs.iter()
                .enumerate()
                .all(|(k, &f)| (f - fs[0] - k as f64 * df).abs() <= 1e-9 * f)
                .then_some(df)
        } else {
            Some(0.0)
        };
        let frac = opt.max_uv_pixfrac.clamp(0.0, 0.5);
        let lam = fs.iter().map(|f| f / C_M_S).collect();
        Ok(Data {
            uvw,
            freqs,
            vis,
            weight,
            npol: opt.npol,
            mask: opt.row_mask,
            delay: opt.row_delay_m,
            order,
            fs,
            lam,
            df,
            uvmin2: opt.uv_min_lambda * opt.uv_min_lambda,
            uvmax2: if opt.uv_max_lambda > 0.0 {
                opt.uv_max_lambda * opt.uv_max_lambda
            } else {
                f64::INFINITY
            },
            umax: frac / opt.pixsize_rad,
        })
    }

    pub(super) fn used(&self, r: usize) -> bool {
        self.mask.is_none_or(|m| m[r])
    }

    #[inline(always)]
    pub(super) fn accept(&self, u: f64, v: f64) -> bool {
        let q = u * u + v * v;
        q >= self.uvmin2 && q <= self.uvmax2 && u.abs() < self.umax && v.abs() < self.umax
    }

    /// The sorted channels k0..k1 of a row at (um, vm) metres whose samples `accept` takes:
    /// one range, since |u| and |v| grow with frequency (each condition holds on a prefix
    /// or a suffix of the channels, evaluated exactly as `accept` does).
    pub(super) fn accepted(&self, um: f64, vm: f64, k0: usize, k1: usize) -> (usize, usize) {
        let q = |k: usize| {
            let (u, v) = (um * self.lam[k], vm * self.lam[k]);
            (u * u + v * v, u.abs(), v.abs())
        };
        let ka = first_false(k0, k1, |k| q(k).0 < self.uvmin2);
        let kb = first_false(ka, k1, |k| {
            let (q, u, v) = q(k);
            q <= self.uvmax2 && u < self.umax && v < self.umax
        });
        (ka, kb)
    }

    /// Sum of the weights of the samples that are gridded.
    pub(super) fn weight_sum(&self) -> f64 {
        let Some(wt) = self.weight else { return 0.0 };
        let stride = self.freqs.len() * self.npol;
        (0..self.uvw.len())
            .into_par_iter()
            .filter(|&r| self.used(r))
            .map(|r| {
                let [um, vm, _] = self.uvw[r];
                let mut s = 0.0;
                for (c, &f) in self.freqs.iter().enumerate() {
                    let lam = f / C_M_S;
                    if !self.accept(um * lam, vm * lam) {
                        continue;
                    }
                    let base = r * stride + c * self.npol;
                    s += wt[base..base + self.npol]
                        .iter()
                        .filter(|&&w| w > 0.0)
                        .map(|&w| w as f64)
                        .sum::<f64>();
                }
                s
            })
            .sum()
    }
}

/// The first k in a..b where `holds` is false, for a predicate true on a prefix of a..b
/// (b where it holds throughout): a binary search.
#[inline]
pub(super) fn first_false(a: usize, b: usize, holds: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (a, b);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if holds(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
