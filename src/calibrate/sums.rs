//! The solver's sums of this rank's calibrator groups (see solve::CellStats): per baseline
//! of the plan and solution cell, A = sum w V conj(M), B = sum w |M|^2, C = sum w |V|^2
//! and the count, summed by the compute backend (`Compute::cal_stats`: the model
//! predicted and the sums made on a GPU where there is one, the CPU otherwise or when the
//! device fails) and combined over the ranks.

use super::model::ModelPredictor;
use super::solve::CellStats;
use super::CalPlan;
use crate::comm::Comm;
use crate::compute::cal_stats::{CalStatsJob, PointModel, SUMS};
use crate::compute::Compute;
use crate::core::GroupVis;
use num_complex::Complex64;
use rayon::prelude::*;
use std::collections::HashMap;

/// A slice (integration, channel, pol) of a calibrator group with more than this fraction of
/// its cross baselines flagged is left out of the solve whole (see `kept_slices`).
const MAX_SLICE_FLAGGED: f64 = 0.2;

/// Which cell a sample goes to.
pub(super) enum Cells<'a> {
    /// One per (plan channel, pol): `c * 2 + p` (the bandpass).
    PerChannel,
    /// One per (time bin, pol): `bin * 2 + p`, the bin of each of the group's integrations
    /// given (the gains).
    PerBin(&'a [usize]),
}

/// The sums of every cell, laid out [cell][plan baseline][SUMS] (solve::CellStats's flat
/// form), so that the ranks reduce them as one buffer.
pub(super) struct Sums {
    n_cell: usize,
    n_bl: usize,
    buf: Vec<f64>,
}

/// What the sums of one calibrator group need from it and the plan, made once for both
/// passes (bandpass, gains).
pub(super) struct GroupSums<'g> {
    g: &'g GroupVis,
    /// Group channel -> plan channel.
    chan_map: Vec<Option<usize>>,
    n_plan_chan: usize,
    /// The plan's cross baselines in the group: their rows, antennas and plan index.
    rows: Vec<u32>,
    ants: Vec<(u32, u32)>,
    target: Vec<u32>,
    /// Per (integration, channel, pol): kept (`kept_slices`).
    keep: Vec<bool>,
    /// Projected baseline length (m) per (row, integration).
    proj: Vec<f64>,
    /// The model's flat tables (see compute::point_model).
    ns: usize,
    n_ant: usize,
    amp: Vec<f64>,
    delay: Vec<f64>,
    smear: Vec<f64>,
}

impl<'g> GroupSums<'g> {
    /// The group's integrations (JD).
    pub(super) fn times_jd(&self) -> &[f64] {
        &self.g.times_jd
    }

    /// `model` predicts `g`'s calibrator field; `proj` are its projected lengths.
    pub(super) fn new(
        g: &'g GroupVis,
        plan: &CalPlan,
        model: &ModelPredictor,
        proj: Vec<f64>,
    ) -> Self {
        let index: HashMap<(usize, usize), usize> = plan
            .baselines
            .iter()
            .enumerate()
            .map(|(k, &b)| (b, k))
            .collect();
        let chan_map = g
            .freqs
            .iter()
            .map(|f| plan.freq_hz.iter().position(|x| (x - f).abs() < 1.0))
            .collect();
        let (mut rows, mut ants, mut target) = (Vec::new(), Vec::new(), Vec::new());
        for (k, &(a, b)) in g.baselines.iter().enumerate() {
            if let Some(&bi) = index.get(&(a, b)).filter(|_| a != b) {
                rows.push(k as u32);
                ants.push((a as u32, b as u32));
                target.push(bi as u32);
            }
        }
        let keep = kept_slices(g, &rows);
        let (amp, delay, smear) = model.flat_tables();
        let (ns, n_ant) = model.counts();
        GroupSums {
            g,
            chan_map,
            n_plan_chan: plan.freq_hz.len(),
            rows,
            ants,
            target,
            keep,
            proj,
            ns,
            n_ant,
            amp,
            delay,
            smear,
        }
    }
}

impl Sums {
    pub(super) fn new(n_cell: usize, n_bl: usize) -> Self {
        Sums {
            n_cell,
            n_bl,
            buf: vec![0.0; n_cell * n_bl * SUMS],
        }
    }

    /// Adds group `gs`'s sums: the model premultiplied per (antenna, plan channel, pol) by
    /// `premul` (`(a * nf + c) * 2 + p`, nf the plan's channels: the model of (a, b) times
    /// P_a conj(P_b)), samples at least `uv_min_lambda` long.
    pub(super) fn add_group(
        &mut self,
        compute: &dyn Compute,
        gs: &GroupSums,
        uv_min_lambda: f64,
        cells: &Cells,
        premul: Option<&[Complex64]>,
    ) {
        let g = gs.g;
        let (nt, nc, np) = (g.n_times(), g.n_chan(), g.npol);
        if nt == 0 || nc == 0 || np == 0 {
            return;
        }
        // Runs of integrations within which every sample's cell is fixed, and the cell of
        // each (run, channel, pol): only the plan's two polarizations have cells.
        let (run_of, cell_of_run): (Vec<u32>, Vec<Option<usize>>) = match cells {
            Cells::PerChannel => (vec![0; nt], vec![None]),
            Cells::PerBin(bin_of) => {
                let mut runs = vec![Some(bin_of[0])];
                let run_of = (0..nt)
                    .map(|t| {
                        if Some(bin_of[t]) != *runs.last().unwrap() {
                            runs.push(Some(bin_of[t]));
                        }
                        (runs.len() - 1) as u32
                    })
                    .collect();
                (run_of, runs)
            }
        };
        let cell: Vec<i32> = cell_of_run
            .iter()
            .flat_map(|bin| {
                (0..nc * np).map(move |i| {
                    let (c, p) = (i / np, i % np);
                    match (gs.chan_map[c], bin) {
                        (Some(pc), None) if p < 2 => (pc * 2 + p) as i32,
                        (Some(_), Some(bin)) if p < 2 => (bin * 2 + p) as i32,
                        _ => -1,
                    }
                })
            })
            .collect();
        let n_ant = gs.n_ant;
        let premul: Option<Vec<Complex64>> = premul.map(|q| {
            (0..n_ant * nc * np)
                .map(|i| {
                    let (a, c, p) = (i / (nc * np), (i / np) % nc, i % np);
                    match gs.chan_map[c] {
                        Some(pc) if p < 2 && (a * gs.n_plan_chan + pc) * 2 + p < q.len() => {
                            q[(a * gs.n_plan_chan + pc) * 2 + p]
                        }
                        _ => Complex64::new(0.0, 0.0),
                    }
                })
                .collect()
        });
        let job = CalStatsJob {
            nt,
            nc,
            np,
            vis: &g.vis,
            weight: &g.weight,
            weight_scale: g.weight.scale(),
            rows: &gs.rows,
            ants: &gs.ants,
            target: &gs.target,
            n_target: self.n_bl,
            proj_m: &gs.proj,
            uv_min_lambda,
            keep: &gs.keep,
            run_of: &run_of,
            cell: &cell,
            n_cell: self.n_cell,
            premul: premul.as_deref(),
            model: PointModel {
                ns: gs.ns,
                n_ant,
                amp: &gs.amp,
                delay: &gs.delay,
                smear: &gs.smear,
                freqs: &g.freqs,
            },
        };
        if let Err(e) = job.check(self.buf.len()) {
            log::error!(
                "calibrator group at JD {:.5}: left out of the solve ({e})",
                g.times_jd.first().copied().unwrap_or(0.0)
            );
            return;
        }
        let buf = &mut self.buf;
        let t = std::time::Instant::now();
        crate::compute::or_cpu(compute, "the calibration statistics", |c, _| {
            c.cal_stats(&job, buf)
        });
        log::debug!(
            "calibration statistics: {} baselines into {} runs of cells on {} in {:.2} s",
            gs.rows.len(),
            cell_of_run.len(),
            compute.name(),
            t.elapsed().as_secs_f64()
        );
    }

    /// The sums of every rank combined (every rank must call this with the same shapes),
    /// as cells.
    pub(super) fn reduce(mut self, comm: &dyn Comm) -> Vec<CellStats> {
        comm.all_reduce_sum_f64(&mut self.buf);
        let per = CellStats::len_f64(self.n_bl);
        self.buf.chunks(per).map(CellStats::read_from).collect()
    }
}

/// Per (integration, channel, pol) of `g`: whether the slice is kept. Slices the flagger
/// has mostly flagged over the summed baselines (`rows`) are left out whole: what it kept
/// of them is the part of an RFI burst that happened to lower the amplitude of the
/// calibrator's visibilities (it flags where the RFI adds, keeps where it cancels), a bias
/// of -0.13 % in the gain amplitudes over the bursts' channels on seed1
/// (tests/calibration_independent.rs).
fn kept_slices(g: &GroupVis, rows: &[u32]) -> Vec<bool> {
    let per_row = g.n_times() * g.n_chan() * g.npol;
    let bad = rows
        .par_iter()
        .fold(
            || vec![0u32; per_row],
            |mut bad, &k| {
                let w = &g.weight[k as usize * per_row..(k as usize + 1) * per_row];
                for (b, x) in bad.iter_mut().zip(w) {
                    *b += u32::from(*x <= crate::core::FLAGGED);
                }
                bad
            },
        )
        .reduce(
            || vec![0u32; per_row],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        );
    bad.iter()
        .map(|&n| (n as f64) <= MAX_SLICE_FLAGGED * rows.len() as f64)
        .collect()
}
