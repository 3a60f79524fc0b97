//! The calibration solver's sufficient statistics of a calibrator group, as one backend
//! call (`Compute::cal_stats`; kernels/calstats.cu on a device). Per baseline and solution
//! cell, over the cell's samples (weight w > 0, kept, at least `uv_min_lambda` long):
//! A = sum w V conj(M), B = sum w |M|^2, C = sum w |V|^2 and their count, M the point
//! sources' model through the beam times a per-antenna premultiplier (the bandpass already
//! solved). [`cal_stats_cpu`] is the CPU twin and every backend's default.
//!
//! The order of the sums is fixed, the same on every backend: per baseline, channel,
//! polarization and run of integrations (`CalStatsJob::run_of`), the integrations in
//! order; then per cell its (run, channel, polarization) entries in index order. The
//! model is where backends differ: the CPU steps each row's fringe across the channels by
//! a phasor recurrence (`point_model::source_row`: ~1e-14 of the amplitude), the device
//! evaluates it per channel.

use super::point_model::equal_step;
pub use super::point_model::PointModel;
use num_complex::{Complex32, Complex64};
use rayon::prelude::*;

/// The sums a baseline keeps per cell: A (re, im), B, C, count.
pub const SUMS: usize = 5;

/// One calibrator group's statistics into the solver's cells.
pub struct CalStatsJob<'a> {
    /// Integrations, channels and polarizations of every baseline's samples.
    pub nt: usize,
    pub nc: usize,
    pub np: usize,
    /// The group's samples, baseline-major (baseline x integration x channel x pol).
    pub vis: &'a [Complex32],
    /// Their half-float weights, times `weight_scale` (core::Weights).
    pub weight: &'a [half::f16],
    pub weight_scale: f32,
    /// The baselines summed, in increasing order of their index in `vis` (`rows`), with
    /// their antennas (into the model's) and their baseline index in `out` (`target`, each
    /// at most once).
    pub rows: &'a [u32],
    pub ants: &'a [(u32, u32)],
    pub target: &'a [u32],
    /// Baselines a cell of `out` holds.
    pub n_target: usize,
    /// Projected baseline length (m) per (row in `vis`, integration).
    pub proj_m: &'a [f64],
    pub uv_min_lambda: f64,
    /// Per (integration, channel, pol): whether the slice may be summed at all.
    pub keep: &'a [bool],
    /// Per integration, its run (non-decreasing from 0): a cell is fixed within a run.
    pub run_of: &'a [u32],
    /// Per (run, channel, pol): the cell its samples go to, or -1.
    pub cell: &'a [i32],
    /// Cells of `out`.
    pub n_cell: usize,
    /// Per (antenna, channel, pol): P, the model of (a, b) multiplied by P_a conj(P_b).
    pub premul: Option<&'a [Complex64]>,
    pub model: PointModel<'a>,
}

/// Why a job cannot be run.
#[derive(Debug, thiserror::Error)]
#[error("calibration statistics: {0}")]
pub struct JobError(String);

impl CalStatsJob<'_> {
    /// Runs of integrations.
    pub fn n_run(&self) -> usize {
        self.run_of.last().map_or(0, |&r| r as usize + 1)
    }

    /// Checks every table's size and every index against the others.
    pub fn check(&self, out_len: usize) -> Result<(), JobError> {
        let (nt, nc, np) = (self.nt, self.nc, self.np);
        let m = &self.model;
        let per_row = nt * nc * np;
        let n_rows = self.vis.len().checked_div(per_row).unwrap_or(0);
        let bad = |what: &str| Err(JobError(what.to_string()));
        if self.vis.len() != n_rows * per_row || self.weight.len() != self.vis.len() {
            return bad("samples and weights do not fill whole baselines");
        }
        if self.ants.len() != self.rows.len() || self.target.len() != self.rows.len() {
            return bad("baselines, antennas and targets differ in number");
        }
        if self.rows.windows(2).any(|w| w[0] >= w[1])
            || self.rows.iter().any(|&r| r as usize >= n_rows)
        {
            return bad("the baselines' rows are not increasing within the group");
        }
        let mut seen = vec![false; self.n_target];
        for &t in self.target {
            match seen.get_mut(t as usize) {
                Some(s) if !*s => *s = true,
                _ => return bad("a target baseline out of range or twice"),
            }
        }
        if self
            .ants
            .iter()
            .any(|&(a, b)| a as usize >= m.n_ant || b as usize >= m.n_ant)
        {
            return bad("an antenna outside the model");
        }
        let n_run = self.n_run();
        if self.run_of.len() != nt
            || self.run_of.first().is_some_and(|&r| r != 0)
            || self
                .run_of
                .windows(2)
                .any(|w| w[1] != w[0] && w[1] != w[0] + 1)
        {
            return bad("integration runs must count up from 0 in steps of 1");
        }
        if self.cell.len() != n_run * nc * np
            || self.cell.iter().any(|&c| c >= self.n_cell as i32 || c < -1)
        {
            return bad("the cell table does not match the runs and channels");
        }
        if self.keep.len() != nt * nc * np || self.proj_m.len() != n_rows * nt {
            return bad("the kept slices or the projected lengths are misshapen");
        }
        if self.premul.is_some_and(|p| p.len() != m.n_ant * nc * np) {
            return bad("the premultiplier is not one per antenna, channel and pol");
        }
        if m.amp.len() != nt * m.ns * nc
            || m.delay.len() != nt * m.n_ant * m.ns
            || m.smear.len() != m.delay.len()
            || m.freqs.len() != nc
        {
            return bad("the model's tables do not match the group");
        }
        if out_len != self.n_cell * self.n_target * SUMS {
            return bad("the output is not cells x targets x 5");
        }
        Ok(())
    }

    /// The cells any sample may reach, each with its (run, channel, pol) entries
    /// (`(run * nc + c) * np + p`) in index order: (cells, starts, entries), cell i's
    /// entries being `entries[starts[i]..starts[i + 1]]`.
    pub fn cell_lists(&self) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let mut by_cell: Vec<Vec<u32>> = vec![Vec::new(); self.n_cell];
        for (e, &c) in self.cell.iter().enumerate() {
            if c >= 0 {
                by_cell[c as usize].push(e as u32);
            }
        }
        let (mut cells, mut starts, mut entries) = (Vec::new(), vec![0u32], Vec::new());
        for (c, list) in by_cell.into_iter().enumerate() {
            if !list.is_empty() {
                cells.push(c as u32);
                entries.extend(list);
                starts.push(entries.len() as u32);
            }
        }
        (cells, starts, entries)
    }

    /// One baseline's partial sums, [run][channel][pol][SUMS], into `part` (zeroed here);
    /// `row` and `wrow` are scratch of nc and nc x np.
    fn baseline_partials(
        &self,
        j: usize,
        step: Option<f64>,
        row: &mut [Complex64],
        wrow: &mut [f32],
        part: &mut [f64],
    ) {
        use half::slice::HalfFloatSliceExt;
        let (nt, nc, np) = (self.nt, self.nc, self.np);
        part.iter_mut().for_each(|x| *x = 0.0);
        let k = self.rows[j] as usize;
        let (a, b) = (self.ants[j].0 as usize, self.ants[j].1 as usize);
        let base = k * nt * nc * np;
        for t in 0..nt {
            let run = self.run_of[t] as usize;
            let proj = self.proj_m[k * nt + t];
            self.model.row_sum(a, b, t, step, row);
            let at = base + t * nc * np;
            self.weight[at..at + nc * np].convert_to_f32_slice(wrow);
            for c in 0..nc {
                if proj * self.model.freqs[c] / crate::primitives::C_M_S < self.uv_min_lambda {
                    continue;
                }
                for p in 0..np {
                    let s = (t * nc + c) * np + p;
                    let i = base + s;
                    let w = (wrow[c * np + p] * self.weight_scale) as f64;
                    if !(w > 0.0 && w.is_finite() && self.keep[s]) {
                        continue;
                    }
                    let m = match self.premul {
                        Some(q) => {
                            row[c] * (q[(a * nc + c) * np + p] * q[(b * nc + c) * np + p].conj())
                        }
                        None => row[c],
                    };
                    let v = Complex64::new(self.vis[i].re as f64, self.vis[i].im as f64);
                    let o = &mut part[((run * nc + c) * np + p) * SUMS..][..SUMS];
                    let a = v * m.conj() * w;
                    o[0] += a.re;
                    o[1] += a.im;
                    o[2] += w * m.norm_sqr();
                    o[3] += w * v.norm_sqr();
                    o[4] += 1.0;
                }
            }
        }
    }
}

/// Adds the job's sums into `out[(cell * n_target + target) * SUMS + k]` (the CPU twin of
/// kernels/calstats.cu; baselines in parallel).
pub fn cal_stats_cpu(job: &CalStatsJob, out: &mut [f64]) -> Result<(), JobError> {
    job.check(out.len())?;
    let (cells, starts, entries) = job.cell_lists();
    let step = equal_step(job.model.freqs);
    let width = job.n_run() * job.nc * job.np * SUMS;
    let batch = 4 * rayon::current_num_threads().max(1);
    for j0 in (0..job.rows.len()).step_by(batch) {
        let js = j0..(j0 + batch).min(job.rows.len());
        let sums: Vec<Vec<f64>> = js
            .clone()
            .into_par_iter()
            .map_init(
                || {
                    let row = vec![Complex64::new(0.0, 0.0); job.nc];
                    (row, vec![0f32; job.nc * job.np], vec![0.0; width])
                },
                |(row, wrow, part), j| {
                    job.baseline_partials(j, step, row, wrow, part);
                    let mut own = vec![0.0; cells.len() * SUMS];
                    for (i, o) in own.chunks_mut(SUMS).enumerate() {
                        for &e in &entries[starts[i] as usize..starts[i + 1] as usize] {
                            let p = &part[e as usize * SUMS..][..SUMS];
                            o.iter_mut().zip(p).for_each(|(o, x)| *o += x);
                        }
                    }
                    own
                },
            )
            .collect();
        for (j, own) in js.zip(&sums) {
            let tgt = job.target[j] as usize;
            for (i, &cell) in cells.iter().enumerate() {
                let o = &mut out[(cell as usize * job.n_target + tgt) * SUMS..][..SUMS];
                o.iter_mut()
                    .zip(&own[i * SUMS..(i + 1) * SUMS])
                    .for_each(|(o, x)| *o += x);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small random job's tables (owned), for this test and the device's.
    pub(crate) struct Tables {
        pub nt: usize,
        pub nc: usize,
        pub np: usize,
        pub vis: Vec<Complex32>,
        pub weight: Vec<half::f16>,
        pub rows: Vec<u32>,
        pub ants: Vec<(u32, u32)>,
        pub target: Vec<u32>,
        pub n_target: usize,
        pub proj_m: Vec<f64>,
        pub keep: Vec<bool>,
        pub run_of: Vec<u32>,
        pub cell: Vec<i32>,
        pub n_cell: usize,
        pub premul: Vec<Complex64>,
        pub ns: usize,
        pub n_ant: usize,
        pub amp: Vec<f64>,
        pub delay: Vec<f64>,
        pub smear: Vec<f64>,
        pub freqs: Vec<f64>,
    }

    /// `n_ant` antennas (every pair and the autos as rows, the autos and one pair left
    /// out), 3 sources, equally spaced channels (or one moved), some weights 0, slices
    /// dropped; cells per channel and pol (`per_channel`) or per run of 3 integrations and
    /// pol.
    pub(crate) fn tables(per_channel: bool, moved: bool, seed: u64) -> Tables {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (nt, nc, np, ns, n_ant) = (7, 150, 2, 3, 6);
        let mut pairs = Vec::new();
        for a in 0..n_ant {
            for b in a..n_ant {
                pairs.push((a as u32, b as u32));
            }
        }
        let n_rows = pairs.len();
        let mut rows = Vec::new();
        let mut ants = Vec::new();
        for (k, &(a, b)) in pairs.iter().enumerate() {
            if a != b && !(a == 1 && b == 4) {
                rows.push(k as u32);
                ants.push((a, b));
            }
        }
        let n_target = rows.len() + 2;
        let mut target: Vec<u32> = (0..n_target as u32).collect();
        rand::seq::SliceRandom::shuffle(&mut target[..], &mut rng);
        target.truncate(rows.len());
        let n = n_rows * nt * nc * np;
        let vis = (0..n)
            .map(|_| {
                Complex32::new(
                    rng.random::<f32>() * 2.0 - 1.0,
                    rng.random::<f32>() * 2.0 - 1.0,
                )
            })
            .collect();
        let weight = (0..n)
            .map(|_| {
                let w = if rng.random::<f32>() < 0.1 {
                    0.0
                } else {
                    rng.random::<f32>() * 3.0
                };
                half::f16::from_f32(w)
            })
            .collect();
        let proj_m = (0..n_rows * nt)
            .map(|_| rng.random::<f64>() * 2000.0)
            .collect();
        let keep = (0..nt * nc * np)
            .map(|_| rng.random::<f32>() > 0.05)
            .collect();
        let run_of: Vec<u32> = if per_channel {
            vec![0; nt]
        } else {
            (0..nt as u32).map(|t| t / 3).collect()
        };
        let n_run = *run_of.last().unwrap() as usize + 1;
        let (cell, n_cell) = if per_channel {
            // Channel 5 outside the plan.
            let cell = (0..nc * np)
                .map(|i| if i / np == 5 { -1 } else { i as i32 })
                .collect();
            (cell, nc * np + 1)
        } else {
            let cell = (0..n_run * nc * np)
                .map(|i| ((i / (nc * np)) * np + i % np) as i32)
                .collect();
            (cell, n_run * np)
        };
        let premul = (0..n_ant * nc * np)
            .map(|_| Complex64::from_polar(0.5 + rng.random::<f64>(), rng.random::<f64>() * 6.0))
            .collect();
        let amp = (0..nt * ns * nc)
            .map(|_| rng.random::<f64>() * 5.0)
            .collect();
        let delay = (0..nt * n_ant * ns)
            .map(|_| (rng.random::<f64>() - 0.5) * 4e-6)
            .collect();
        let smear = (0..nt * n_ant * ns)
            .map(|_| (rng.random::<f64>() - 0.5) * 0.3)
            .collect();
        let mut freqs: Vec<f64> = (0..nc).map(|c| 1.31e9 + c as f64 * 244140.625).collect();
        if moved {
            freqs[40] += 1e5;
        }
        Tables {
            nt,
            nc,
            np,
            vis,
            weight,
            rows,
            ants,
            target,
            n_target,
            proj_m,
            keep,
            run_of,
            cell,
            n_cell,
            premul,
            ns,
            n_ant,
            amp,
            delay,
            smear,
            freqs,
        }
    }

    impl Tables {
        pub(crate) fn job(&self, premul: bool) -> CalStatsJob<'_> {
            CalStatsJob {
                nt: self.nt,
                nc: self.nc,
                np: self.np,
                vis: &self.vis,
                weight: &self.weight,
                weight_scale: 0.25,
                rows: &self.rows,
                ants: &self.ants,
                target: &self.target,
                n_target: self.n_target,
                proj_m: &self.proj_m,
                uv_min_lambda: 500.0,
                keep: &self.keep,
                run_of: &self.run_of,
                cell: &self.cell,
                n_cell: self.n_cell,
                premul: premul.then_some(&self.premul[..]),
                model: PointModel {
                    ns: self.ns,
                    n_ant: self.n_ant,
                    amp: &self.amp,
                    delay: &self.delay,
                    smear: &self.smear,
                    freqs: &self.freqs,
                },
            }
        }
    }

    /// The sums straight from their definition: every sample in turn, the model by a sine
    /// and cosine per source, f64 (an independent reference: no runs, no cell lists, no
    /// recurrence).
    pub(crate) fn direct(job: &CalStatsJob) -> Vec<f64> {
        let (nt, nc, np) = (job.nt, job.nc, job.np);
        let m = &job.model;
        let mut out = vec![0.0; job.n_cell * job.n_target * SUMS];
        for (j, &k) in job.rows.iter().enumerate() {
            let (a, b) = (job.ants[j].0 as usize, job.ants[j].1 as usize);
            for t in 0..nt {
                for c in 0..nc {
                    let nu = m.freqs[c];
                    if job.proj_m[k as usize * nt + t] * nu / crate::primitives::C_M_S
                        < job.uv_min_lambda
                    {
                        continue;
                    }
                    let mut model = Complex64::new(0.0, 0.0);
                    for s in 0..m.ns {
                        let ia = (t * m.n_ant + a) * m.ns + s;
                        let ib = (t * m.n_ant + b) * m.ns + s;
                        let x = std::f64::consts::PI * (m.smear[ib] - m.smear[ia]);
                        let sinc = if x == 0.0 { 1.0 } else { x.sin() / x };
                        let ph = std::f64::consts::TAU * nu * (m.delay[ib] - m.delay[ia]);
                        model += m.amp[(t * m.ns + s) * nc + c] * sinc * Complex64::cis(ph);
                    }
                    for p in 0..np {
                        let s = (t * nc + c) * np + p;
                        let i = k as usize * nt * nc * np + s;
                        let w = job.weight[i].to_f64() * job.weight_scale as f64;
                        let cell = job.cell[(job.run_of[t] as usize * nc + c) * np + p];
                        if !(w > 0.0 && w.is_finite() && job.keep[s]) || cell < 0 {
                            continue;
                        }
                        let mm = match job.premul {
                            Some(q) => {
                                model * q[(a * nc + c) * np + p] * q[(b * nc + c) * np + p].conj()
                            }
                            None => model,
                        };
                        let v = Complex64::new(job.vis[i].re as f64, job.vis[i].im as f64);
                        let o = &mut out
                            [(cell as usize * job.n_target + job.target[j] as usize) * SUMS..]
                            [..SUMS];
                        let av = v * mm.conj() * w;
                        o[0] += av.re;
                        o[1] += av.im;
                        o[2] += w * mm.norm_sqr();
                        o[3] += w * v.norm_sqr();
                        o[4] += 1.0;
                    }
                }
            }
        }
        out
    }

    /// The largest difference between `got` and `want` per kind of sum (A, B, C) over the
    /// largest |value| of that kind, and whether the counts are equal.
    pub(crate) fn worst(got: &[f64], want: &[f64]) -> ([f64; 3], bool) {
        let mut scale = [0f64; 3];
        let mut diff = [0f64; 3];
        let mut counts = true;
        for (g, w) in got.chunks(SUMS).zip(want.chunks(SUMS)) {
            let a = (Complex64::new(g[0], g[1]) - Complex64::new(w[0], w[1])).norm();
            scale[0] = scale[0].max(Complex64::new(w[0], w[1]).norm());
            diff[0] = diff[0].max(a);
            for (kind, i) in [(1, 2), (2, 3)] {
                scale[kind] = scale[kind].max(w[i].abs());
                diff[kind] = diff[kind].max((g[i] - w[i]).abs());
            }
            counts &= g[4] == w[4];
        }
        (
            [diff[0] / scale[0], diff[1] / scale[1], diff[2] / scale[2]],
            counts,
        )
    }

    /// The CPU's sums equal the definition's within f64 rounding: per channel (the
    /// bandpass's cells, a channel outside the plan) and per run of integrations (the
    /// gains' cells, the premultiplier on), with equally spaced channels and not.
    #[test]
    fn cpu_sums_are_the_definition() {
        for (per_channel, moved, premul) in [
            (true, false, false),
            (true, true, false),
            (false, false, true),
            (false, true, true),
        ] {
            let tb = tables(per_channel, moved, 7);
            let job = tb.job(premul);
            let mut out = vec![0.0; job.n_cell * job.n_target * SUMS];
            // Adds into what is there.
            out.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = (i % 7) as f64);
            cal_stats_cpu(&job, &mut out).unwrap();
            out.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x -= (i % 7) as f64);
            let want = direct(&job);
            let (rel, counts) = worst(&out, &want);
            println!(
                "per channel {per_channel}, moved {moved}: A {:.1e} B {:.1e} C {:.1e}",
                rel[0], rel[1], rel[2]
            );
            assert!(counts, "sample counts differ");
            assert!(rel.iter().all(|&r| r < 6e-12), "{rel:?}");
            assert!(want.chunks(SUMS).any(|w| w[4] > 0.0));
        }
    }

    /// A job whose tables do not fit is refused with what is wrong, not run.
    #[test]
    fn misshapen_jobs_are_refused() {
        let tb = tables(true, false, 3);
        let mut job = tb.job(false);
        let n = job.n_cell * job.n_target * SUMS;
        let mut out = vec![0.0; n];
        assert!(cal_stats_cpu(&job, &mut out[..n - 1]).is_err());
        let twice: Vec<u32> = job.target.iter().map(|_| 0).collect();
        job.target = &twice;
        let e = cal_stats_cpu(&job, &mut out).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert!(out.iter().all(|&x| x == 0.0));
    }
}
