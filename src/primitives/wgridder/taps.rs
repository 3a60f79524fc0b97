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
}

impl Real for f32 {
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
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
}

/// The kernel's tap polynomials in T, evaluated 8 or 16 taps at a time.
pub(super) struct Taps<T> {
    pub(super) coef: Vec<[T; MAX_SUPPORT]>,
    /// Columns per tap, f64 (the w kernel, one tap at a time).
    pub(super) coef64: Vec<[f64; MAX_SUPPORT]>,
    pub(super) support: usize,
}

impl<T: Real> Taps<T> {
    pub(super) fn new(k: &EsKernel) -> Self {
        let p = k.tap_polynomials();
        Taps {
            coef: p.iter().map(|row| row.map(T::of)).collect(),
            coef64: p.to_vec(),
            support: k.support,
        }
    }

    /// First cell and taps of a point at grid coordinate g.
    #[inline(always)]
    pub(super) fn at(&self, g: f64, out: &mut [T; MAX_SUPPORT]) -> i64 {
        let half = self.support as f64 * 0.5;
        let first = (g - half).ceil();
        let s = T::of(2.0 * (first - g + half) - 1.0);
        if self.support <= 8 {
            self.horner::<8>(s, out);
        } else {
            self.horner::<MAX_SUPPORT>(s, out);
        }
        first as i64
    }

    #[inline(always)]
    pub(super) fn horner<const L: usize>(&self, s: T, out: &mut [T; MAX_SUPPORT]) {
        let d = self.coef.len() - 1;
        let mut acc = [T::zero(); L];
        acc.copy_from_slice(&self.coef[d][..L]);
        for c in self.coef[..d].iter().rev() {
            for k in 0..L {
                acc[k] = acc[k] * s + c[k];
            }
        }
        out[..L].copy_from_slice(&acc);
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
