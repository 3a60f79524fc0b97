//! Test vectors shared by each kernel and its CPU twin: seeded inputs and the expected
//! outputs from a direct f64 evaluation of the definition (not from either implementation).
//! Tests run the twin on them here, and the kernel on them where a GPU exists.

use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub struct SumThreshold {
    pub values: Vec<f32>,
    pub flags: Vec<bool>,
    pub nt: usize,
    pub nf: usize,
    pub m: usize,
    pub thr: f32,
    /// Flags after one SumThreshold pass of window m along time (stride nf) on every channel.
    pub expected: Vec<bool>,
}

/// A 64 x 32 plane of |noise| with two injected lines; window 4 along time.
pub fn sumthreshold() -> SumThreshold {
    let mut r = rng(13);
    let (nt, nf, m, thr) = (64, 32, 4usize, 2.5f32);
    let mut values: Vec<f32> = (0..nt * nf).map(|_| r.random_range(0.0f32..1.6)).collect();
    for t in 10..16 {
        values[t * nf + 7] = 3.3;
    }
    for t in 30..33 {
        values[t * nf + 20] = 4.1;
    }
    let flags: Vec<bool> = (0..nt * nf).map(|i| i % 97 == 0).collect();
    let mut expected = flags.clone();
    for f in 0..nf {
        for s in 0..=nt - m {
            let mean: f64 = (s..s + m)
                .map(|t| {
                    if flags[t * nf + f] {
                        thr as f64
                    } else {
                        values[t * nf + f] as f64
                    }
                })
                .sum::<f64>()
                / m as f64;
            if mean > thr as f64 {
                for t in s..s + m {
                    expected[t * nf + f] = true;
                }
            }
        }
    }
    SumThreshold {
        values,
        flags,
        nt,
        nf,
        m,
        thr,
        expected,
    }
}

pub struct Grid {
    pub ng: usize,
    pub u_px: Vec<f64>,
    pub v_px: Vec<f64>,
    pub vis_w: Vec<Complex64>,
    pub w_weight: Vec<f64>,
    pub support: usize,
    pub beta: f64,
    pub expected: Vec<Complex64>,
}

/// 500 visibilities on a 128^2 grid, support 8; expected by evaluating each cell's sum.
pub fn grid() -> Grid {
    let mut r = rng(17);
    let (ng, support) = (128usize, 8usize);
    let beta = 2.3 * support as f64;
    let n = 500;
    let u_px: Vec<f64> = (0..n).map(|_| r.random_range(8.0..118.0)).collect();
    let v_px: Vec<f64> = (0..n).map(|_| r.random_range(8.0..118.0)).collect();
    let vis_w: Vec<Complex64> = (0..n)
        .map(|_| Complex64::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
        .collect();
    let w_weight: Vec<f64> = (0..n).map(|_| r.random_range(0.2..1.0)).collect();
    let half = support as f64 / 2.0;
    let phi = |x: f64| {
        if x.abs() < 1.0 {
            (beta * ((1.0 - x * x).sqrt() - 1.0)).exp()
        } else {
            0.0
        }
    };
    let mut expected = vec![Complex64::new(0.0, 0.0); ng * ng];
    for (cell, e) in expected.iter_mut().enumerate() {
        let (x, y) = ((cell % ng) as f64, (cell / ng) as f64);
        for j in 0..n {
            let (dx, dy) = ((x - u_px[j]) / half, (y - v_px[j]) / half);
            if dx.abs() < 1.0 && dy.abs() < 1.0 {
                *e += vis_w[j] * (phi(dx) * phi(dy) * w_weight[j]);
            }
        }
    }
    Grid {
        ng,
        u_px,
        v_px,
        vis_w,
        w_weight,
        support,
        beta,
        expected,
    }
}

pub struct Degrid {
    pub ng: usize,
    pub grid: Vec<Complex64>,
    pub u_px: Vec<f64>,
    pub v_px: Vec<f64>,
    pub w_weight: Vec<f64>,
    pub support: usize,
    pub beta: f64,
    pub expected: Vec<Complex64>,
}

impl Degrid {
    /// The CPU twin on these vectors.
    pub fn twin(&self) -> Vec<Complex64> {
        super::twins::degrid_points(
            &self.grid,
            self.ng,
            &self.u_px,
            &self.v_px,
            &self.w_weight,
            self.support,
            self.beta,
        )
    }
}

/// 400 visibilities read from a random 96^2 grid, support 7 (some near the edges);
/// expected by summing every cell of the grid with the 2-D kernel value (zero outside).
pub fn degrid() -> Degrid {
    let mut r = rng(23);
    let (ng, support) = (96usize, 7usize);
    let beta = 2.3 * support as f64;
    let n = 400;
    let grid: Vec<Complex64> = (0..ng * ng)
        .map(|_| Complex64::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
        .collect();
    let u_px: Vec<f64> = (0..n).map(|_| r.random_range(1.0..95.0)).collect();
    let v_px: Vec<f64> = (0..n).map(|_| r.random_range(1.0..95.0)).collect();
    let w_weight: Vec<f64> = (0..n).map(|_| r.random_range(0.2..1.0)).collect();
    let half = support as f64 / 2.0;
    let phi = |x: f64| {
        if x.abs() < 1.0 {
            (beta * ((1.0 - x * x).sqrt() - 1.0)).exp()
        } else {
            0.0
        }
    };
    let expected = (0..n)
        .map(|j| {
            let mut e = Complex64::new(0.0, 0.0);
            for (cell, g) in grid.iter().enumerate() {
                let (dx, dy) = (
                    ((cell % ng) as f64 - u_px[j]) / half,
                    ((cell / ng) as f64 - v_px[j]) / half,
                );
                if dx.abs() < 1.0 && dy.abs() < 1.0 {
                    e += g * (phi(dx) * phi(dy));
                }
            }
            e * w_weight[j]
        })
        .collect();
    Degrid {
        ng,
        grid,
        u_px,
        v_px,
        w_weight,
        support,
        beta,
        expected,
    }
}

pub struct Noise {
    pub values: Vec<f32>,
    pub bg: Vec<f32>,
    pub mask: Vec<bool>,
    /// Samples a plane.
    pub tf: usize,
    /// Per plane: 1.4826 x the median absolute deviation of the residuals, None where no
    /// sample enters.
    pub expected_sigma: Vec<Option<f64>>,
    /// Per plane: sigma > 0.
    pub expected_used: Vec<bool>,
    /// (value - bg) / sigma, 0 on unused planes.
    pub expected: Vec<f32>,
}

/// The median as the mean of the two middle values for an even count, by sorting.
fn sorted_median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Nine 24 x 40 planes of residuals: odd and even counts, ties, NaN and infinite samples,
/// signed zeros, a plane entirely masked, a constant one, one and two samples left.
pub fn noise() -> Noise {
    let mut r = rng(17);
    let (nplanes, tf) = (9, 24 * 40);
    let n = nplanes * tf;
    let mut values = vec![0f32; n];
    let mut bg = vec![0f32; n];
    let mut mask = vec![false; n];
    for p in 0..nplanes {
        for i in p * tf..(p + 1) * tf {
            bg[i] = r.random_range(-1.0f32..3.0);
            let x: f32 = r.random_range(-2.0f32..2.0) * (1.0 + p as f32);
            values[i] = bg[i] + x;
            mask[i] = r.random_range(0.0..1.0) < 0.12;
        }
    }
    let plane = |p: usize| p * tf..(p + 1) * tf;
    // 1: even count, quantised residuals (ties).
    for i in plane(1) {
        values[i] = (values[i] * 4.0).round() / 4.0;
        bg[i] = (bg[i] * 4.0).round() / 4.0;
    }
    let kept = plane(1).filter(|&i| !mask[i]).count();
    if kept % 2 == 1 {
        let i = plane(1).find(|&i| !mask[i]).unwrap();
        mask[i] = true;
    }
    // 2: NaN, infinite and signed-zero samples.
    for (k, i) in plane(2).enumerate() {
        match k % 50 {
            3 => values[i] = f32::NAN,
            7 => values[i] = f32::INFINITY,
            11 => bg[i] = f32::NEG_INFINITY,
            13..=15 => {
                values[i] = if k % 2 == 0 { 0.0 } else { -0.0 };
                bg[i] = 0.0;
            }
            _ => {}
        }
    }
    // 3: every sample masked. 4: a constant residual (no spread).
    plane(3).for_each(|i| mask[i] = true);
    plane(4).for_each(|i| values[i] = bg[i] + 0.5);
    // 5: one sample left; 6: two.
    for (p, left) in [(5, 1), (6, 2)] {
        plane(p)
            .enumerate()
            .for_each(|(k, i)| mask[i] = k % 97 != 5 || k / 97 >= left);
    }
    // 7: mostly masked with an odd count; 8: a heavy tail.
    for (k, i) in plane(7).enumerate() {
        mask[i] = k % 3 != 0 || k == 0;
    }
    for (k, i) in plane(8).enumerate() {
        if k % 9 == 0 {
            values[i] += 40.0;
        }
    }
    let mut expected_sigma = Vec::new();
    let mut expected = vec![0f32; n];
    for p in 0..nplanes {
        let res: Vec<f64> = plane(p)
            .filter(|&i| !mask[i])
            .map(|i| (values[i] - bg[i]) as f64)
            .filter(|x| x.is_finite())
            .collect();
        let sigma = (!res.is_empty()).then(|| {
            let med = sorted_median(res.clone());
            1.4826 * sorted_median(res.iter().map(|x| (x - med).abs()).collect())
        });
        if let Some(s) = sigma.filter(|&s| s > 0.0) {
            for i in plane(p) {
                expected[i] = ((values[i] - bg[i]) as f64 / s) as f32;
            }
        }
        expected_sigma.push(sigma);
    }
    let expected_used = expected_sigma
        .iter()
        .map(|s| s.is_some_and(|s| s > 0.0))
        .collect();
    Noise {
        values,
        bg,
        mask,
        tf,
        expected_sigma,
        expected_used,
        expected,
    }
}

pub struct Sir {
    pub flags: Vec<bool>,
    pub nt: usize,
    pub nf: usize,
    /// (eta, extend, the flags after SIR along both axes).
    pub expected: Vec<(f64, bool, Vec<bool>)>,
}

/// SIR on one line by its definition: a sample is flagged when some window holding it has
/// at least a fraction 1 - eta flagged; unless `extend`, each run cut back to the span of
/// the flags it holds from before.
fn sir_line_direct(line: &[bool], eta: f64, extend: bool) -> Vec<bool> {
    let n = line.len();
    let mut out: Vec<bool> = (0..n)
        .map(|j| {
            (0..=j).any(|a| {
                (j..n).any(|b| {
                    let count = line[a..=b].iter().filter(|&&f| f).count() as f64;
                    count >= (1.0 - eta) * (b - a + 1) as f64 - 1e-9
                })
            })
        })
        .collect();
    if !extend {
        let mut i = 0;
        while i < n {
            if !out[i] {
                i += 1;
                continue;
            }
            let j = (i..n).find(|&k| !out[k]).unwrap_or(n);
            if let Some(first) = (i..j).find(|&k| line[k]) {
                let last = (i..j).rev().find(|&k| line[k]).unwrap();
                (i..first).chain(last + 1..j).for_each(|k| out[k] = false);
            }
            i = j;
        }
    }
    out
}

/// Three 16 x 28 flag planes: scattered flags, runs along each axis with gaps, a dense
/// patch; for eta 0.2 and 0.5, with and without extension.
pub fn sir() -> Sir {
    let mut r = rng(19);
    let (nt, nf, nplanes) = (16, 28, 3);
    let tf = nt * nf;
    let mut flags: Vec<bool> = (0..nplanes * tf)
        .map(|i| r.random_range(0.0..1.0) < [0.08, 0.2, 0.35][i / tf])
        .collect();
    for f in 3..20 {
        flags[5 * nf + f] = f % 6 != 0; // a broken line along frequency
    }
    for t in 2..14 {
        flags[tf + t * nf + 9] = t != 7; // one along time
    }
    for t in 8..12 {
        for f in 15..22 {
            flags[2 * tf + t * nf + f] = true;
        }
    }
    let expected = [(0.2, false), (0.2, true), (0.5, false), (0.5, true)]
        .into_iter()
        .map(|(eta, extend)| {
            let mut out = flags.clone();
            for p in 0..nplanes {
                let at = |t: usize, f: usize| p * tf + t * nf + f;
                for t in 0..nt {
                    let line: Vec<bool> = (0..nf).map(|f| flags[at(t, f)]).collect();
                    for (f, x) in sir_line_direct(&line, eta, extend).into_iter().enumerate() {
                        out[at(t, f)] |= x;
                    }
                }
                for f in 0..nf {
                    let line: Vec<bool> = (0..nt).map(|t| flags[at(t, f)]).collect();
                    for (t, x) in sir_line_direct(&line, eta, extend).into_iter().enumerate() {
                        out[at(t, f)] |= x;
                    }
                }
            }
            (eta, extend, out)
        })
        .collect();
    Sir {
        flags,
        nt,
        nf,
        expected,
    }
}

/// A flagging pass's inputs: `copies` planes of the SumThreshold vector's values scaled by
/// 1 + step k, its flags, cells on part of channel 20, and the mask of both.
pub struct FlagPassInput {
    pub nt: usize,
    pub nf: usize,
    pub amp: Vec<f32>,
    pub flags: Vec<bool>,
    pub cells: Vec<bool>,
    pub mask: Vec<bool>,
    pub smoothing: super::Smoothing,
    pub schedule: super::Schedule,
}

pub fn flag_pass(copies: usize, step: f32) -> FlagPassInput {
    let v = sumthreshold();
    let (nt, nf) = (v.nt, v.nf);
    let tf = nt * nf;
    let amp: Vec<f32> = (0..copies)
        .flat_map(|k| v.values.iter().map(move |x| x * (1.0 + step * k as f32)))
        .collect();
    let flags: Vec<bool> = (0..copies).flat_map(|_| v.flags.iter().copied()).collect();
    let cells: Vec<bool> = (0..tf).map(|i| i % nf == 20 && i / nf < 8).collect();
    let mask = flags
        .iter()
        .enumerate()
        .map(|(i, &f)| f || cells[i % tf])
        .collect();
    FlagPassInput {
        nt,
        nf,
        amp,
        flags,
        cells,
        mask,
        smoothing: super::Smoothing {
            sigma_t: 3.0,
            sigma_f: 4.0,
            linear: true,
        },
        schedule: super::Schedule {
            chi1: 4.0,
            rho: 1.5,
            max_m_time: 8,
            max_m_freq: 8,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::twins;

    /// kernels/degrid.cu run on the host (kernels/host/shim.h): the twin's sums to the
    /// last bit (the same taps in the same order).
    #[test]
    fn degrid_kernel_run_on_the_host_equals_the_twin() {
        let Some(run) = crate::compute::host_kernels::host_kernels() else {
            return;
        };
        let v = degrid();
        let mut input = Vec::new();
        for x in [v.ng, v.u_px.len(), v.support] {
            input.extend((x as i64).to_le_bytes());
        }
        input.extend(v.beta.to_le_bytes());
        for x in v.grid.iter().flat_map(|c| [c.re, c.im]) {
            input.extend(x.to_le_bytes());
        }
        for x in v.u_px.iter().chain(&v.v_px).chain(&v.w_weight) {
            input.extend(x.to_le_bytes());
        }
        let out = crate::compute::host_kernels::run_host(&run, "degrid", &input);
        let want = v.twin();
        let got: Vec<u64> = out
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let bits: Vec<u64> = want
            .iter()
            .flat_map(|c| [c.re.to_bits(), c.im.to_bits()])
            .collect();
        assert_eq!(got, bits);
        let _ = std::fs::remove_dir_all(run.parent().unwrap());
    }

    #[test]
    fn degrid_twin_matches_the_vectors() {
        let v = degrid();
        let got = v.twin();
        let err = got
            .iter()
            .zip(&v.expected)
            .map(|(a, b)| (a - b).norm())
            .fold(0f64, f64::max);
        assert!(err < 1e-12, "max error {err}");
    }

    #[test]
    fn sumthreshold_twin_matches_the_vectors() {
        let v = sumthreshold();
        let mut new = v.flags.clone();
        for f in 0..v.nf {
            crate::compute::flagging::sumthreshold_line(
                &v.values, &v.flags, f, v.nf, v.nt, v.m, v.thr, &mut new,
            );
        }
        assert_eq!(new, v.expected);
        assert!(
            new.iter().filter(|&&x| x).count() > v.flags.iter().filter(|&&x| x).count() + 8,
            "the injected lines were found"
        );
    }

    /// kernels/grid.cu run on the host (through kernels/host/shim.h), its inputs sorted
    /// into tiles and segments as the device's are: as one thread a block and as the
    /// device launches it (256 concurrent threads sharing the tile in shared memory), in
    /// small segments (crowded tiles split over several blocks) and in large ones: to 1e-15
    /// of values of order one.
    #[test]
    fn grid_kernel_run_on_the_host_matches_the_vectors() {
        use crate::compute::stack::{segments, tile_key, tile_order, TILE};
        let Some(run) = crate::compute::host_kernels::host_kernels() else {
            return;
        };
        let v = grid();
        let tiles_x = v.ng.div_ceil(TILE);
        let keys: Vec<i32> = (0..v.u_px.len())
            .map(|j| tile_key(v.u_px[j], v.v_px[j], v.support, tiles_x) as i32)
            .collect();
        let (start, order) = tile_order(&keys, tiles_x * tiles_x);
        for (segment, threads) in [(16, 1), (16, 256), (200, 256)] {
            let (seg_tile, seg_start) = segments(&start, segment);
            let mut input = Vec::new();
            for x in [v.ng, v.u_px.len(), seg_tile.len(), tiles_x, v.support] {
                input.extend((x as i64).to_le_bytes());
            }
            input.extend(v.beta.to_le_bytes());
            let pick = |f: &dyn Fn(usize) -> Vec<f64>| -> Vec<u8> {
                order
                    .iter()
                    .flat_map(|&j| f(j))
                    .flat_map(f64::to_le_bytes)
                    .collect()
            };
            input.extend(pick(&|j| vec![v.u_px[j]]));
            input.extend(pick(&|j| vec![v.v_px[j]]));
            input.extend(pick(&|j| vec![v.vis_w[j].re, v.vis_w[j].im]));
            input.extend(pick(&|j| vec![v.w_weight[j]]));
            for x in seg_tile.iter().chain(&seg_start) {
                input.extend(x.to_le_bytes());
            }
            let out = crate::compute::host_kernels::run_host_threads(&run, "grid", threads, &input);
            let got: Vec<Complex64> = out
                .chunks_exact(16)
                .map(|c| {
                    let f = |k: usize| f64::from_le_bytes(c[k..k + 8].try_into().unwrap());
                    Complex64::new(f(0), f(8))
                })
                .collect();
            assert_eq!(got.len(), v.expected.len());
            let err = got
                .iter()
                .zip(&v.expected)
                .map(|(a, b)| (a - b).norm())
                .fold(0f64, f64::max);
            // 3.1e-16 seen (the f64 sums' order against the direct evaluation's).
            assert!(
                err < 1e-15,
                "segments of {segment}, {threads} threads: max error {err}"
            );
        }
        let _ = std::fs::remove_dir_all(run.parent().unwrap());
    }

    #[test]
    fn grid_twin_matches_the_vectors() {
        let v = grid();
        let mut g = vec![Complex64::new(0.0, 0.0); v.ng * v.ng];
        twins::grid_tiles(
            &mut g,
            v.ng,
            &v.u_px,
            &v.v_px,
            &v.vis_w,
            &v.w_weight,
            v.support,
            v.beta,
        );
        let err = g
            .iter()
            .zip(&v.expected)
            .map(|(a, b)| (a - b).norm())
            .fold(0f64, f64::max);
        assert!(err < 1e-12, "max error {err}");
    }
}
