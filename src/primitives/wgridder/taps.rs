//! The gridder's per-sample machinery: f32/f64 planes, the kernel's taps, each row's
//! geometry and the channel phasors (see the parent module for the method).

use super::{Data, Plan};
use crate::primitives::kernel::{EsKernel, MAX_SUPPORT};
use crate::primitives::C_M_S;
use num_complex::Complex64;
use std::f64::consts::TAU;

/// f32 or f64 planes.
pub(super) trait Real: rustfft::FftNum + Default + std::ops::AddAssign {
    fn of(x: f64) -> Self;
    fn f64(self) -> f64;
    /// self x b + c, fused where F (only where the code is compiled with FMA, else it is
    /// a library call).
    fn madd<const F: bool>(self, b: Self, c: Self) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn madd<const F: bool>(self, b: Self, c: Self) -> Self {
        if F {
            self.mul_add(b, c)
        } else {
            self * b + c
        }
    }
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    #[inline(always)]
    fn madd<const F: bool>(self, b: Self, c: Self) -> Self {
        if F {
            self.mul_add(b, c)
        } else {
            self * b + c
        }
    }
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
}

/// The kernel's tap polynomials in T, evaluated 2 x 8 or 2 x 16 taps at a time.
pub(super) struct Taps<T> {
    pub(super) coef: Vec<[T; MAX_SUPPORT]>,
    /// Columns per tap, f64 (the w kernel, one tap at a time).
    pub(super) coef64: Vec<[f64; MAX_SUPPORT]>,
    /// Each row twice, over 2L lanes (L = 8 for supports up to 8, else 16: `horner2`).
    pairs: Vec<[T; 2 * MAX_SUPPORT]>,
    pub(super) support: usize,
}

impl<T: Real> Taps<T> {
    pub(super) fn new(k: &EsKernel) -> Self {
        let p = k.tap_polynomials();
        Taps {
            coef: p.iter().map(|row| row.map(T::of)).collect(),
            coef64: p.to_vec(),
            pairs: p
                .iter()
                .map(|row| {
                    let l = if k.support <= 8 { 8 } else { MAX_SUPPORT };
                    let mut out = [T::zero(); 2 * MAX_SUPPORT];
                    for (i, &c) in row[..l].iter().enumerate() {
                        out[i] = T::of(c);
                        out[l + i] = T::of(c);
                    }
                    out
                })
                .collect(),
            support: k.support,
        }
    }

    /// First cells and taps of a sample at grid coordinates (gu, gv): both Horner chains
    /// in one loop, so that their latencies overlap.
    #[inline(always)]
    pub(super) fn at2<const F: bool>(
        &self,
        gu: f64,
        gv: f64,
        ku: &mut [T; MAX_SUPPORT],
        kv: &mut [T; MAX_SUPPORT],
    ) -> (i64, i64) {
        let half = self.support as f64 * 0.5;
        let (fu, fv) = ((gu - half).ceil(), (gv - half).ceil());
        let su = T::of(2.0 * (fu - gu + half) - 1.0);
        let sv = T::of(2.0 * (fv - gv + half) - 1.0);
        if self.support <= 8 {
            self.horner2::<8, F>(su, sv, ku, kv);
        } else {
            self.horner2::<MAX_SUPPORT, F>(su, sv, ku, kv);
        }
        (fu as i64, fv as i64)
    }

    /// Two Horner chains as one uniform loop over 2L lanes (u's taps, then v's, against
    /// each coefficient row duplicated: `pairs`), which vectorises cleanly.
    #[inline(always)]
    fn horner2<const L: usize, const F: bool>(
        &self,
        su: T,
        sv: T,
        ou: &mut [T; MAX_SUPPORT],
        ov: &mut [T; MAX_SUPPORT],
    ) {
        let rows = &self.pairs;
        let d = rows.len() - 1;
        let mut s = [T::zero(); 2 * MAX_SUPPORT];
        s[..L].fill(su);
        s[L..2 * L].fill(sv);
        let mut acc = [T::zero(); 2 * MAX_SUPPORT];
        acc[..2 * L].copy_from_slice(&rows[d][..2 * L]);
        for c in rows[..d].iter().rev() {
            for k in 0..2 * L {
                acc[k] = acc[k].madd::<F>(s[k], c[k]);
            }
        }
        ou[..L].copy_from_slice(&acc[..L]);
        ov[..L].copy_from_slice(&acc[L..2 * L]);
    }

    /// `at2` for four samples at once (their u and v taps in `out[i][..L]` and
    /// `out[i][L..2L]`, L = 8 for supports up to 8, else 16): four independent Horner chains
    /// interleaved, so that the multiply-adds' latencies overlap. The same arithmetic as
    /// `at2` lane by lane.
    #[inline(always)]
    pub(super) fn at2_x4<const F: bool>(
        &self,
        g: &[(f64, f64); 4],
        first: &mut [(i64, i64); 4],
        out: &mut [[T; 2 * MAX_SUPPORT]; 4],
    ) {
        let half = self.support as f64 * 0.5;
        let mut s = [(T::zero(), T::zero()); 4];
        for i in 0..4 {
            let (gu, gv) = g[i];
            let (fu, fv) = ((gu - half).ceil(), (gv - half).ceil());
            s[i] = (
                T::of(2.0 * (fu - gu + half) - 1.0),
                T::of(2.0 * (fv - gv + half) - 1.0),
            );
            first[i] = (fu as i64, fv as i64);
        }
        if self.support <= 8 {
            self.horner2_x4::<16, F>(&s, out);
        } else {
            self.horner2_x4::<{ 2 * MAX_SUPPORT }, F>(&s, out);
        }
    }

    /// Four Horner chains over 2L = L2 lanes each (see `horner2`).
    #[inline(always)]
    fn horner2_x4<const L2: usize, const F: bool>(
        &self,
        s: &[(T, T); 4],
        out: &mut [[T; 2 * MAX_SUPPORT]; 4],
    ) {
        let rows = &self.pairs;
        let d = rows.len() - 1;
        let h = L2 / 2;
        let top: &[T; L2] = rows[d][..L2].try_into().unwrap();
        let mut sv = [[T::zero(); L2]; 4];
        let mut acc = [*top; 4];
        for (x, &(su, sv_)) in sv.iter_mut().zip(s) {
            x[..h].fill(su);
            x[h..].fill(sv_);
        }
        for c in rows[..d].iter().rev() {
            let c: &[T; L2] = c[..L2].try_into().unwrap();
            for (a, x) in acc.iter_mut().zip(&sv) {
                for k in 0..L2 {
                    a[k] = a[k].madd::<F>(x[k], c[k]);
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&acc) {
            o[..L2].copy_from_slice(a);
        }
    }

    /// Taps per sample in `at2_x4`'s output: u's at 0.., v's at this offset.
    #[inline(always)]
    pub(super) fn v_offset(&self) -> usize {
        if self.support <= 8 {
            8
        } else {
            MAX_SUPPORT
        }
    }

    /// The polynomials' argument for a point at coordinate g whose first cell is `first`.
    #[inline(always)]
    pub(super) fn s_of(&self, g: f64, first: u32) -> f64 {
        2.0 * (first as f64 - g + self.support as f64 * 0.5) - 1.0
    }

    /// Tap j at each argument of `s` (`s_of`), appended to `out`: Horner's rule run across
    /// the points, so that it vectorises.
    #[inline(always)]
    pub(super) fn column<const F: bool>(&self, s: &[T], j: usize, out: &mut Vec<T>) {
        let d = self.coef.len() - 1;
        let start = out.len();
        out.resize(start + s.len(), self.coef[d][j]);
        for c in self.coef[..d].iter().rev() {
            let cj = c[j];
            for (o, &x) in out[start..].iter_mut().zip(s) {
                *o = o.madd::<F>(x, cj);
            }
        }
    }

    /// Every tap of a point at coordinate g whose first cell is `first` (f64; `one` for
    /// all j at once, which vectorizes).
    #[inline(always)]
    pub(super) fn all64(&self, g: f64, first: u32, out: &mut [f64; MAX_SUPPORT]) {
        let half = self.support as f64 * 0.5;
        let s = 2.0 * (first as f64 - g + half) - 1.0;
        let mut acc = [0.0; MAX_SUPPORT];
        for c in self.coef64.iter().rev() {
            for (a, &cj) in acc.iter_mut().zip(c) {
                *a = *a * s + cj;
            }
        }
        *out = acc;
    }

    /// Tap j of a point at coordinate g whose first cell is `first` (f64).
    #[inline(always)]
    pub(super) fn one(&self, g: f64, first: u32, j: usize) -> f64 {
        let half = self.support as f64 * 0.5;
        let s = 2.0 * (first as f64 - g + half) - 1.0;
        let mut acc = 0.0;
        for c in self.coef64.iter().rev() {
            acc = acc * s + c[j];
        }
        acc
    }
}

/// A row's per-sample geometry: sign of the flip, u, v, w per metre-to-wavelength factor.
#[derive(Clone, Copy)]
pub(super) struct RowGeom {
    pub(super) um: f64,
    pub(super) vm: f64,
    pub(super) wa: f64,
    pub(super) flip: bool,
    /// Phase rate (m): exp(-+2 pi i rate nu / c) carries the delay and the n - 1 shift.
    pub(super) rate: f64,
}

impl RowGeom {
    pub(super) fn new(d: &Data, plan: &Plan, r: usize) -> Self {
        let [um, vm, wm] = d.uvw[r];
        let flip = wm < 0.0;
        let s = if flip { -1.0 } else { 1.0 };
        RowGeom {
            um: s * um,
            vm: s * vm,
            wa: wm.abs(),
            flip,
            rate: d.delay.map_or(0.0, |x| x[r]) + wm * plan.ns,
        }
    }
}

/// Per-sample phasors exp(sign 2 pi i rate f / c) along sorted channels k0.., by one
/// multiplication per channel where the channels are equally spaced.
pub(super) struct Phasor<'a> {
    pub(super) d: &'a Data<'a>,
    pub(super) rate: f64,
    pub(super) sign: f64,
    pub(super) cur: Complex64,
    pub(super) step: Complex64,
}

impl<'a> Phasor<'a> {
    pub(super) fn new(d: &'a Data<'a>, rate: f64, sign: f64, k0: usize) -> Self {
        let ph = |f: f64| Complex64::from_polar(1.0, sign * TAU * rate * f / C_M_S);
        Phasor {
            d,
            rate,
            sign,
            cur: ph(d.fs[k0]),
            step: d.df.map_or(Complex64::new(1.0, 0.0), ph),
        }
    }

    /// The phasor at sorted channel k (called for k0, k0 + 1, ... in turn).
    #[inline(always)]
    pub(super) fn next(&mut self, k: usize) -> Complex64 {
        let v = if self.d.df.is_some() {
            self.cur
        } else {
            Complex64::from_polar(1.0, self.sign * TAU * self.rate * self.d.fs[k] / C_M_S)
        };
        self.cur *= self.step;
        v
    }
}
