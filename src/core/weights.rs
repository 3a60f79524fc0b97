//! A group's per-sample weights as read and calibrated ([`Weights`]): IEEE half floats
//! (2 bytes a sample, a quarter of the visibilities' bytes instead of half) times a
//! power-of-two scale shared by the group.
//!
//! Accuracy contract: a weight is kept to 11 significant bits (relative error <= 2^-11 =
//! 4.9e-4, round to nearest); integers up to 2048 and dyadic fractions such as 0.5 or 0.25
//! (the usual `nsamples`) exactly. The scale puts the group's largest weight at or below
//! [`Weights::STORED_MAX`] (a quarter of the format's largest finite value, so sums of four
//! polarizations cannot overflow); weights down to 2^-28 of that largest keep the full
//! precision, smaller ones less (subnormals) and below ~2^-38 of it they become 0. A weight
//! of 0 is a flag. Calibration scales weights by |g_a g_b|^2, which on uncalibrated
//! DSA-110 data (correlation coefficients, gains ~0.1) is ~1e-4: the scale follows, so the
//! relative precision does not depend on the data's units.

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

/// A flagged sample's stored weight.
pub const FLAGGED: f16 = f16::ZERO;

/// Per-sample weights: `value(i) = stored[i] as f32 * scale` (see the module's contract).
/// Derefs to the stored half floats, so flagging (a stored 0) and flag tests (`== FLAGGED`,
/// `> FLAGGED`) work on slices of them directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    w: Vec<f16>,
    scale: f32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            w: Vec::new(),
            scale: 1.0,
        }
    }
}

impl std::ops::Deref for Weights {
    type Target = [f16];
    fn deref(&self) -> &[f16] {
        &self.w
    }
}

impl std::ops::DerefMut for Weights {
    fn deref_mut(&mut self) -> &mut [f16] {
        &mut self.w
    }
}

impl Weights {
    /// The largest stored magnitude the scale allows.
    pub const STORED_MAX: f32 = 16384.0;

    /// The power-of-two scale that stores values up to `max` (> 0) at or below
    /// `STORED_MAX` with the most precision; 1 when `max` is 0 or not finite.
    pub fn scale_for(max: f32) -> f32 {
        if !(max.is_finite() && max > 0.0) {
            return 1.0;
        }
        let e = (max / Self::STORED_MAX).log2().ceil() as i32;
        let s = 2f32.powi(e.clamp(-126, 127));
        // log2 rounding: make sure max / s really is within the bound.
        if max / s > Self::STORED_MAX {
            s * 2.0
        } else {
            s
        }
    }

    /// Stored values with their scale, as they are (the reader writes `nsamples` with scale
    /// 1: they are at most `uvh5::group::MAX_NSAMPLES` < `STORED_MAX`).
    pub fn from_stored(w: Vec<f16>, scale: f32) -> Self {
        Weights { w, scale }
    }

    /// The stored buffer (for reuse by the next group of the same shape).
    pub fn into_stored(self) -> Vec<f16> {
        self.w
    }

    /// `n` weights of `value` (>= 0).
    pub fn filled(n: usize, value: f32) -> Self {
        let scale = Self::scale_for(value);
        Weights {
            w: vec![f16::from_f32(value / scale); n],
            scale,
        }
    }

    /// The weights `v` (>= 0), the scale from their largest.
    pub fn from_f32(v: &[f32]) -> Self {
        let max = v.par_iter().copied().reduce(|| 0.0, f32::max);
        let scale = Self::scale_for(max);
        let mut w = vec![f16::ZERO; v.len()];
        w.par_chunks_mut(1 << 16)
            .zip(v.par_chunks(1 << 16))
            .for_each(|(o, x)| store(o, x, scale));
        Weights { w, scale }
    }

    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The weight of sample `i`.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        self.w[i].to_f32() * self.scale
    }

    /// The weight a stored value stands for.
    #[inline]
    pub fn value(&self, x: f16) -> f32 {
        x.to_f32() * self.scale
    }

    /// Stored values `[a, a + out.len())` as weights into `out`.
    pub fn read_into(&self, a: usize, out: &mut [f32]) {
        self.w[a..a + out.len()].convert_to_f32_slice(out);
        if self.scale != 1.0 {
            out.iter_mut().for_each(|x| *x *= self.scale);
        }
    }

    /// All weights as f32 (4 bytes a sample: for small groups and tests).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.w.len()];
        out.par_chunks_mut(1 << 16)
            .enumerate()
            .for_each(|(k, o)| self.read_into(k << 16, o));
        out
    }

    /// The largest weight (0 when empty).
    pub fn max(&self) -> f32 {
        self.w
            .par_iter()
            .map(|x| x.to_f32())
            .reduce(|| 0.0, f32::max)
            * self.scale
    }

    /// Samples at weight 0.
    pub fn count_flagged(&self) -> usize {
        self.w.par_iter().filter(|&&x| x == FLAGGED).count()
    }

    /// Rewrites every weight through `f`, block by block (`block` samples at a time, as
    /// f32; `f(k, values)` gets block `k`, samples `[k block, (k + 1) block)`), in order on
    /// this thread (`f` may itself be parallel). `bound`: an upper bound of every new
    /// weight, which sets the new scale (values above it are clamped to it, none below
    /// zero are expected). Memory: one block of f32 beside the stored values.
    pub fn update_blocks<E>(
        &mut self,
        block: usize,
        bound: f32,
        mut f: impl FnMut(usize, &mut [f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let new_scale = Self::scale_for(bound);
        let block = block.max(1);
        let mut buf = vec![0f32; block.min(self.w.len())];
        for k in 0..self.w.len().div_ceil(block) {
            let a = k * block;
            let b = (a + block).min(self.w.len());
            let vals = &mut buf[..b - a];
            self.read_into(a, vals);
            f(k, vals)?;
            store(&mut self.w[a..b], vals, new_scale);
        }
        self.scale = new_scale;
        Ok(())
    }
}

/// `x / scale` stored into `out`, clamped to `[0, STORED_MAX]` (NaN stored as 0: a flag).
fn store(out: &mut [f16], x: &[f32], scale: f32) {
    let inv = 1.0 / scale;
    for (o, &v) in out.iter_mut().zip(x) {
        let s = v * inv;
        *o = if s > 0.0 {
            f16::from_f32(s.min(Weights::STORED_MAX))
        } else {
            FLAGGED
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_eleven_bits_across_scales() {
        for &top in &[1e-6f32, 3.7e-4, 1.0, 1e4, 2.5e7] {
            let v: Vec<f32> = (0..5000).map(|i| top * (1.0 - i as f32 * 1.7e-4)).collect();
            let w = Weights::from_f32(&v);
            assert!(w.scale().log2().fract() == 0.0, "power of two scale");
            for (i, &x) in v.iter().enumerate() {
                let rel = (w.get(i) - x).abs() / x;
                assert!(
                    rel <= 4.9e-4,
                    "top {top} i {i}: {} vs {x} ({rel})",
                    w.get(i)
                );
            }
        }
    }

    #[test]
    fn usual_nsamples_are_exact_and_zero_is_a_flag() {
        let v = [1.0f32, 0.5, 0.25, 2.0, 0.0, 2048.0, 1e4];
        let w = Weights::from_f32(&v);
        assert_eq!(w.scale(), 1.0);
        for (i, &x) in v.iter().enumerate() {
            assert_eq!(w.get(i), x);
        }
        assert_eq!(w.count_flagged(), 1);
        assert!(w[4] == FLAGGED && w[0] > FLAGGED);
    }

    #[test]
    fn update_follows_the_bound_and_keeps_flags() {
        let mut w = Weights::from_f32(&[1.0, 0.0, 3.0, 1e4]);
        // Calibration-like scaling by ~1e-5: the scale follows, precision stays.
        w.update_blocks(3, 1e4 * 2e-5, |_, v| {
            v.iter_mut().for_each(|x| *x *= 2e-5);
            Ok::<(), ()>(())
        })
        .unwrap();
        for (i, x) in [2e-5f32, 0.0, 6e-5, 0.2].iter().enumerate() {
            assert!((w.get(i) - x).abs() <= 4.9e-4 * x, "{i}: {}", w.get(i));
        }
        assert_eq!(w.count_flagged(), 1);
        assert!(w.scale() < 1e-4);
        let v = w.to_f32_vec();
        assert_eq!(v.len(), 4);
        assert_eq!(v[3], w.get(3));
    }
}
