//! The flagger's steps on the group itself (`HostPlanes`, compute::flag_planes's seam):
//! each step reads the amplitudes and flags from the group's visibilities and weights and
//! writes its flags there, batches of planes going to the `Compute` backend (the CPU, or a
//! device that could not hold the planes). Plane j is cross-correlation `cross[j / np]`,
//! polarization j % np.

use super::{amplitude, array};
use crate::compute::flag_pass::FlagPass;
use crate::compute::flag_planes::{FlagPlanes, PlanesPass};
use crate::compute::{Compute, GpuError};
use crate::core::{GroupVis, FLAGGED};
use half::f16;
use rayon::prelude::*;

/// The group's cross-correlations as flagging planes, flagged in place.
pub struct HostPlanes<'a> {
    g: &'a mut GroupVis,
    compute: &'a dyn Compute,
    /// The cross-correlations' baseline indices, in order.
    cross: &'a [usize],
}

impl<'a> HostPlanes<'a> {
    pub fn new(g: &'a mut GroupVis, compute: &'a dyn Compute, cross: &'a [usize]) -> Self {
        HostPlanes { g, compute, cross }
    }

    fn tf(&self) -> usize {
        self.g.n_times() * self.g.n_chan()
    }
}

/// Runs `f(baseline's weights, cross index)` on every cross-correlation, in parallel.
fn each_cross(g: &mut GroupVis, cross: &[usize], f: impl Fn(&mut [f16], usize) + Sync) {
    let plane = g.n_times() * g.n_chan() * g.npol;
    let mut slot = vec![usize::MAX; g.baselines.len()];
    cross.iter().enumerate().for_each(|(c, &b)| slot[b] = c);
    g.weight
        .par_chunks_mut(plane)
        .enumerate()
        .filter(|(b, _)| slot[*b] != usize::MAX)
        .for_each(|(b, w)| f(w, slot[b]));
}

/// The cross-correlations in the batches whose planes go to `compute` together (the
/// scratch memory is bounded): each batch's baselines and its (baseline, pol) planes.
type PlaneBatch = (Vec<usize>, Vec<(usize, usize)>);

fn plane_batches(cross: &[usize], np: usize, compute: &dyn Compute) -> Vec<PlaneBatch> {
    let per_batch = (compute.planes_per_batch() / np.max(1)).max(1);
    cross
        .chunks(per_batch)
        .map(|batch| {
            let planes = batch
                .iter()
                .flat_map(|&b| (0..np).map(move |p| (b, p)))
                .collect();
            (batch.to_vec(), planes)
        })
        .collect()
}

/// Each plane's amplitudes ((baseline, pol) pairs).
pub(super) fn fill_amplitudes(g: &GroupVis, planes: &[(usize, usize)], amp: &mut [f32]) {
    let np = g.npol;
    let tf = g.n_times() * g.n_chan();
    let vis = &g.vis;
    amp.par_chunks_mut(tf)
        .zip(planes.par_iter())
        .for_each(|(a, &(b, p))| {
            let v = &vis[b * tf * np..(b + 1) * tf * np];
            a.iter_mut()
                .enumerate()
                .for_each(|(i, a)| *a = amplitude(v[i * np + p]));
        });
}

/// Each plane's existing flags (zero weights).
pub(super) fn fill_flags(g: &GroupVis, planes: &[(usize, usize)], fl: &mut [bool]) {
    let np = g.npol;
    let tf = g.n_times() * g.n_chan();
    let weight = &g.weight;
    fl.par_chunks_mut(tf)
        .zip(planes.par_iter())
        .for_each(|(f, &(b, p))| {
            let w = &weight[b * tf * np..(b + 1) * tf * np];
            f.iter_mut()
                .enumerate()
                .for_each(|(i, f)| *f = w[i * np + p] == FLAGGED);
        })
}

/// Writes a batch's flags, per baseline in parallel: only usable planes, never on the
/// array's provisional cells (they are flagged on every baseline at the end if they hold).
fn apply_flags(
    g: &mut GroupVis,
    batch: &[usize],
    planes: &[(usize, usize)],
    flags: &[bool],
    used: &[bool],
    cells: &[bool],
) {
    let np = g.npol;
    let tf = g.n_times() * g.n_chan();
    let mut slot = vec![usize::MAX; g.baselines.len()];
    batch.iter().enumerate().for_each(|(q, &b)| slot[b] = q);
    g.weight
        .par_chunks_mut(tf * np)
        .enumerate()
        .filter(|(b, _)| slot[*b] != usize::MAX)
        .for_each(|(b, w)| {
            for (j, &(_, p)) in planes
                .iter()
                .enumerate()
                .skip(slot[b] * np)
                .take(np)
                .filter(|(j, _)| used[*j])
            {
                for i in 0..tf {
                    if flags[j * tf + i] && !cells.get(i).copied().unwrap_or(false) {
                        w[i * np + p] = FLAGGED;
                    }
                }
            }
        });
}

/// Flags the group's samples that planes' flags (one a sample, as `FlagPlanes::flags`
/// gives them) hold.
pub(super) fn set_flagged(g: &mut GroupVis, cross: &[usize], flags: &[bool]) {
    let np = g.npol;
    let tf = g.n_times() * g.n_chan();
    each_cross(g, cross, |w, c| {
        for p in 0..np {
            let f = &flags[(c * np + p) * tf..(c * np + p + 1) * tf];
            for (i, _) in f.iter().enumerate().filter(|(_, &f)| f) {
                w[i * np + p] = FLAGGED;
            }
        }
    });
}

impl FlagPlanes for HostPlanes<'_> {
    /// Each batch of baselines is one `Compute::flag_pass` (backgrounds, noise, residuals,
    /// SumThreshold); the amplitudes, the array's excess power and the flags' write-back
    /// stay here. No per-baseline copy is kept.
    fn pass(&mut self, job: &PlanesPass) -> Result<array::ExcessPower, GpuError> {
        let (nt, nf, tf) = (self.g.n_times(), self.g.n_chan(), self.tf());
        let cells = job.cells;
        let any_cells = cells.iter().any(|&c| c);
        let mut power = array::ExcessPower::new(tf);
        // Seconds gathering the inputs, in the backend's pass, summing the excess power and
        // writing the flags back (debug log: what stays on the host beside a device's pass).
        let mut secs = [0f64; 4];
        let mut clock = std::time::Instant::now();
        let mut lap = |k: usize| {
            secs[k] += clock.elapsed().as_secs_f64();
            clock = std::time::Instant::now();
        };
        let compute = self.compute;
        for (batch, planes) in plane_batches(self.cross, self.g.npol, compute) {
            let g = &mut *self.g;
            let mut values = vec![0f32; planes.len() * tf];
            let mut flags = vec![false; planes.len() * tf];
            fill_amplitudes(g, &planes, &mut values);
            fill_flags(g, &planes, &mut flags);
            let masked: Vec<bool> = if any_cells {
                flags
                    .par_chunks(tf)
                    .flat_map_iter(|f| f.iter().zip(cells).map(|(&f, &c)| f || c))
                    .collect()
            } else {
                Vec::new()
            };
            let pass = FlagPass {
                nt,
                nf,
                smoothing: job.smoothing,
                mask: if any_cells { &masked } else { &flags },
                cells: if any_cells { cells } else { &[] },
                sumthreshold: job.sumthreshold,
            };
            lap(0);
            let out = crate::compute::or_cpu(compute, "flagging pass", |c, retry| {
                if retry {
                    fill_amplitudes(g, &planes, &mut values); // the backend may have overwritten them
                }
                c.flag_pass(&pass, &mut values, &flags)
            });
            lap(1);
            let clip = job.clip;
            let part = values
                .par_chunks(tf)
                .zip(flags.par_chunks(tf))
                .zip(out.used.par_iter())
                .filter(|(_, &u)| u)
                .fold(
                    || array::ExcessPower::new(tf),
                    |mut acc, ((v, f), _)| {
                        acc.add(v, f, clip);
                        acc
                    },
                )
                .reduce(|| array::ExcessPower::new(tf), array::ExcessPower::merge);
            power = power.merge(part);
            lap(2);
            if let Some(found) = out.found {
                apply_flags(g, &batch, &planes, &found, &out.used, cells);
            }
            lap(3);
        }
        log::debug!(
            "baseline pass (s): inputs {:.2}, {} {:.2}, excess power {:.2}, write-back {:.2}",
            secs[0],
            compute.name(),
            secs[1],
            secs[2],
            secs[3]
        );
        Ok(power)
    }

    fn flag_cells(&mut self, cells: &[bool]) -> Result<(), GpuError> {
        let np = self.g.npol;
        each_cross(self.g, self.cross, |w, _| {
            for (i, _) in cells.iter().enumerate().filter(|(_, &f)| f) {
                w[i * np..(i + 1) * np]
                    .iter_mut()
                    .for_each(|x| *x = FLAGGED);
            }
        });
        Ok(())
    }

    /// In batches of planes on the backend (the CPU where it fails).
    fn sir(&mut self, cells: &[bool], eta: f64, extend: bool) -> Result<(), GpuError> {
        let (nt, nf, tf) = (self.g.n_times(), self.g.n_chan(), self.tf());
        let compute = self.compute;
        for (batch, planes) in plane_batches(self.cross, self.g.npol, compute) {
            let g = &mut *self.g;
            let mut fl = vec![false; planes.len() * tf];
            let fill = |fl: &mut [bool]| {
                fill_flags(g, &planes, fl);
                if cells.iter().any(|&c| c) {
                    fl.par_chunks_mut(tf)
                        .for_each(|f| f.iter_mut().zip(cells).for_each(|(f, &c)| *f &= !c));
                }
            };
            fill(&mut fl);
            crate::compute::or_cpu(compute, "SIR", |c, retry| {
                if retry {
                    fill(&mut fl);
                }
                c.sir_planes(&mut fl, nt, nf, eta, extend)
            });
            apply_flags(g, &batch, &planes, &fl, &vec![true; planes.len()], cells);
        }
        Ok(())
    }

    fn counts(&mut self) -> Result<Vec<usize>, GpuError> {
        let np = self.g.npol;
        let plane = self.tf() * np;
        let weight = &self.g.weight;
        Ok(self
            .cross
            .par_iter()
            .flat_map_iter(|&b| {
                let w = &weight[b * plane..(b + 1) * plane];
                (0..np).map(move |p| {
                    w.iter()
                        .skip(p)
                        .step_by(np)
                        .filter(|&&x| x == FLAGGED)
                        .count()
                })
            })
            .collect())
    }

    fn flag_planes(&mut self, which: &[bool]) -> Result<(), GpuError> {
        let np = self.g.npol;
        each_cross(self.g, self.cross, |w, c| {
            for p in (0..np).filter(|p| which[c * np + p]) {
                w.iter_mut().skip(p).step_by(np).for_each(|x| *x = FLAGGED);
            }
        });
        Ok(())
    }

    fn clip_sample(&mut self, pol: usize, stride: usize, m: usize) -> Result<Vec<f32>, GpuError> {
        let np = self.g.npol;
        let tf = self.tf();
        let plane = tf * np;
        let (vis, weight, cross) = (&self.g.vis, &self.g.weight, self.cross);
        Ok((0..m)
            .into_par_iter()
            .map(|j| {
                let i = j * stride;
                let s = cross[i / tf] * plane + (i % tf) * np + pol;
                if weight[s] > FLAGGED {
                    amplitude(vis[s])
                } else {
                    f32::NAN
                }
            })
            .collect())
    }

    fn clip(&mut self, pol: usize, limit: f32) -> Result<(), GpuError> {
        let np = self.g.npol;
        let plane = self.tf() * np;
        let vis = &self.g.vis;
        let cross = self.cross;
        self.g
            .weight
            .par_chunks_mut(plane)
            .enumerate()
            .filter(|(b, _)| cross.binary_search(b).is_ok())
            .for_each(|(b, w)| {
                let v = &vis[b * plane..(b + 1) * plane];
                for s in (pol..plane).step_by(np) {
                    if w[s] > FLAGGED && amplitude(v[s]) > limit {
                        w[s] = FLAGGED;
                    }
                }
            });
        Ok(())
    }

    fn flags(&mut self) -> Result<Vec<bool>, GpuError> {
        let np = self.g.npol;
        let planes: Vec<(usize, usize)> = self
            .cross
            .iter()
            .flat_map(|&b| (0..np).map(move |p| (b, p)))
            .collect();
        let mut fl = vec![false; planes.len() * self.tf()];
        fill_flags(self.g, &planes, &mut fl);
        Ok(fl)
    }
}
