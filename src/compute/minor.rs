//! CLEAN's minor-cycle iterations over one Clark round's pixel list, as one backend call
//! (`Compute::minor_cycle`): pick the list's brightest term-0 value, turn it into a
//! component through the terms' Hessian inverse, subtract that component times the whole
//! PSFs from every listed value, until a stop rule holds. [`minor_cpu`] is the CPU twin of
//! `kernels/minor.cu` and every backend's default; the device keeps the list and the PSFs
//! on the GPU for the whole round.
//!
//! Both sides do the same f64 operations in the same order (the kernel with explicit
//! round-to-nearest products and sums, so nothing is fused), so their components are
//! bit-identical; the brightest value is the first in list order among equals.

use rayon::prelude::*;

/// Threads of kernels/minor.cu's one block for a list of `len` pixels: a power of two, at
/// least a warp, at most 1024.
pub fn block_threads(len: usize) -> u32 {
    len.next_power_of_two().clamp(32, 1024) as u32
}

/// Where a minor cycle stops once it has subtracted `subtracted` Jy (the sum of its term-0
/// components' |flux|): the major-cycle limit `mgain_stop` or, with `deep`, where
/// `deep x subtracted` reaches it first; never below `floor` (see imaging::clark::Round).
pub fn stop_level(floor: f64, mgain_stop: f64, deep: Option<f64>, subtracted: f64) -> f64 {
    let level = deep.map_or(mgain_stop, |d| mgain_stop.min(d * subtracted));
    floor.max(level)
}

/// One round's iterations: the list (pixel coordinates and the T terms' residual values
/// there), the 2T - 1 PSFs (2n x 2n, peak at (n, n)) and the rules.
pub struct MinorJob<'a> {
    /// Image side; the PSFs are 2n x 2n.
    pub n: usize,
    /// The listed pixels' (x, y).
    pub xy: &'a [(u32, u32)],
    /// Per term, the residual at each listed pixel (T vectors of the list's length).
    pub vals: &'a [Vec<f64>],
    /// The 2T - 1 PSFs, and an identity per PSF a device may cache it by (it must change
    /// whenever the PSF does: the PsfHat id of its transform).
    pub psfs: &'a [&'a [f64]],
    pub psf_ids: &'a [u64],
    /// H^-1 (T x T, row-major).
    pub hinv: &'a [f64],
    pub gain: f64,
    /// The round's list threshold: a value at or below it ends the round.
    pub limit: f64,
    /// The stop rule's parts (see [`stop_level`]).
    pub floor: f64,
    pub mgain_stop: f64,
    pub deep: Option<f64>,
    /// The residual peak at the round's start: a listed value above 1.05 x this ends the
    /// round (runaway).
    pub peak: f64,
    /// Term-0 |flux| subtracted before this round.
    pub subtracted: f64,
    /// Iterations left.
    pub max_iter: usize,
}

impl MinorJob<'_> {
    pub fn terms(&self) -> usize {
        self.vals.len()
    }

    /// The kernel's `rules`: gain, limit, floor, mgain_stop, deep (NaN for none), peak.
    pub fn rules(&self) -> [f64; 6] {
        [
            self.gain,
            self.limit,
            self.floor,
            self.mgain_stop,
            self.deep.unwrap_or(f64::NAN),
            self.peak,
        ]
    }

    /// Whether the parts agree with each other.
    pub fn check(&self) -> Result<(), String> {
        let nt = self.terms();
        let len = self.xy.len();
        let m = 2 * self.n;
        if !(1..=3).contains(&nt)
            || self.psfs.len() != 2 * nt - 1
            || self.psf_ids.len() != self.psfs.len()
            || self.hinv.len() != nt * nt
            || self.vals.iter().any(|v| v.len() != len)
            || self.psfs.iter().any(|p| p.len() != m * m)
            || self
                .xy
                .iter()
                .any(|&(x, y)| x as usize >= self.n || y as usize >= self.n)
        {
            return Err(format!(
                "minor cycle: {nt} terms, {} PSFs, {} x {} inverse, a list of {len}, n = {}",
                self.psfs.len(),
                nt,
                self.hinv.len() / nt.max(1),
                self.n
            ));
        }
        Ok(())
    }
}

/// A round's outcome: its components in the order found, as (list index, flux per term),
/// and the term-0 |flux| subtracted so far (`MinorJob::subtracted` plus this round's).
#[derive(Debug, Clone, PartialEq)]
pub struct MinorOut {
    pub comps: Vec<(u32, Vec<f64>)>,
    pub subtracted: f64,
}

/// Lists longer than this are updated by rayon; shorter ones by one thread (a rayon
/// dispatch costs about what a thread spends on this many values).
const PARALLEL_FROM: usize = 16_384;

/// The brightest |value| and its index, the first among equals; None when no value is
/// above 0 (NaN never is).
type Best = Option<(usize, f64)>;

fn better(a: Best, b: Best) -> Best {
    match (a, b) {
        (Some((ka, va)), Some((kb, vb))) => {
            if vb.abs() > va.abs() || (vb.abs() == va.abs() && kb < ka) {
                b
            } else {
                a
            }
        }
        (None, b) => b,
        (a, None) => a,
    }
}

fn consider(best: Best, k: usize, v: f64) -> Best {
    if v.abs() > best.map_or(0.0, |b| b.1.abs()) {
        Some((k, v))
    } else {
        best
    }
}

fn brightest(v: &[f64]) -> Best {
    if v.len() < PARALLEL_FROM {
        return v
            .iter()
            .enumerate()
            .fold(None, |b, (k, &x)| consider(b, k, x));
    }
    v.par_iter()
        .enumerate()
        .fold(|| None, |b, (k, &x)| consider(b, k, x))
        .reduce(|| None, better)
}

/// The CPU twin of `kernels/minor.cu`'s `clark_minor`.
pub fn minor_cpu(job: &MinorJob) -> MinorOut {
    let nt = job.terms();
    let (n, m) = (job.n as i64, 2 * job.n);
    let mut vals: Vec<Vec<f64>> = job.vals.to_vec();
    let mut subtracted = job.subtracted;
    let mut comps = Vec::new();
    let mut best = brightest(&vals[0]);
    while comps.len() < job.max_iter {
        let (j, v) = best.unwrap_or((0, 0.0));
        let stop = stop_level(job.floor, job.mgain_stop, job.deep, subtracted);
        if v.abs() <= job.limit || v.abs() <= stop || v == 0.0 || v.abs() > 1.05 * job.peak {
            break;
        }
        let f: Vec<f64> = (0..nt)
            .map(|t| {
                let s = (0..nt).fold(0.0, |s, u| s + job.hinv[t * nt + u] * vals[u][j]);
                job.gain * s
            })
            .collect();
        subtracted += f[0].abs();
        let (px, py) = (job.xy[j].0 as i64, job.xy[j].1 as i64);
        let offset = move |(x, y): (u32, u32)| {
            (y as i64 - py + n) as usize * m + (x as i64 - px + n) as usize
        };
        // Terms after 0 first, then term 0 with the next brightest found on the way.
        for (tp, vt) in vals.iter_mut().enumerate().skip(1) {
            let sub = |k: usize| {
                let q = offset(job.xy[k]);
                (0..nt).fold(0.0, |s, t| s + f[t] * job.psfs[t + tp][q])
            };
            if vt.len() < PARALLEL_FROM {
                vt.iter_mut().enumerate().for_each(|(k, x)| *x -= sub(k));
            } else {
                vt.par_iter_mut()
                    .enumerate()
                    .for_each(|(k, x)| *x -= sub(k));
            }
        }
        let sub0 = |k: usize, x: &mut f64| {
            let q = offset(job.xy[k]);
            *x -= (0..nt).fold(0.0, |s, t| s + f[t] * job.psfs[t][q]);
        };
        best = if vals[0].len() < PARALLEL_FROM {
            vals[0].iter_mut().enumerate().fold(None, |b, (k, x)| {
                sub0(k, x);
                consider(b, k, *x)
            })
        } else {
            vals[0]
                .par_iter_mut()
                .enumerate()
                .fold(
                    || None,
                    |b, (k, x)| {
                        sub0(k, x);
                        consider(b, k, *x)
                    },
                )
                .reduce(|| None, better)
        };
        comps.push((j as u32, f));
    }
    MinorOut { comps, subtracted }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The list's pixels, its values per term, the PSFs.
    pub(crate) type Fixture = (Vec<(u32, u32)>, Vec<Vec<f64>>, Vec<Vec<f64>>);

    /// A list of `len` distinct pixels of an n x n image with T terms, and PSFs like a
    /// main lobe with sidelobes (positive definite, as a real PSF is, so CLEAN converges).
    pub(crate) fn fixture(n: usize, len: usize, nt: usize) -> Fixture {
        let m = 2 * n;
        assert!(len <= n * n && !(n * n).is_multiple_of(7919));
        let xy: Vec<(u32, u32)> = (0..len)
            .map(|k| (k * 7919 + 7) % (n * n))
            .map(|i| ((i % n) as u32, (i / n) as u32))
            .collect();
        let psfs: Vec<Vec<f64>> = (0..2 * nt - 1)
            .map(|t| {
                (0..m * m)
                    .map(|i| {
                        let (dx, dy) = ((i % m) as f64 - n as f64, (i / m) as f64 - n as f64);
                        let r2 = dx * dx + dy * dy;
                        ((-r2 / 8.0).exp()
                            + 0.05 * (dx * 0.7 + dy * 0.3).cos() * (-r2 / 900.0).exp())
                            / (1.0 + t as f64)
                    })
                    .collect()
            })
            .collect();
        let vals: Vec<Vec<f64>> = (0..nt)
            .map(|t| {
                (0..len)
                    .map(|k| (1.0 + (k as f64 * 0.37 + t as f64).sin()) * 0.5 / (1.0 + t as f64))
                    .collect()
            })
            .collect();
        (xy, vals, psfs)
    }

    fn job<'a>(
        n: usize,
        xy: &'a [(u32, u32)],
        vals: &'a [Vec<f64>],
        psfs: &'a [&'a [f64]],
        hinv: &'a [f64],
        max_iter: usize,
    ) -> MinorJob<'a> {
        MinorJob {
            n,
            xy,
            vals,
            psfs,
            psf_ids: &[1, 2, 3, 4, 5][..psfs.len()],
            hinv,
            gain: 0.1,
            limit: 0.05,
            floor: 0.0,
            mgain_stop: 0.0,
            deep: None,
            peak: 1.0,
            subtracted: 0.0,
            max_iter,
        }
    }

    /// The definition, spelled out: argmax over the list, subtract, repeat.
    fn reference(job: &MinorJob) -> MinorOut {
        let nt = job.terms();
        let m = 2 * job.n;
        let mut vals = job.vals.to_vec();
        let mut out = MinorOut {
            comps: vec![],
            subtracted: job.subtracted,
        };
        while out.comps.len() < job.max_iter {
            let mut j = 0;
            for k in 0..vals[0].len() {
                if vals[0][k].abs() > vals[0][j].abs() {
                    j = k;
                }
            }
            let v = vals[0][j];
            let stop = stop_level(job.floor, job.mgain_stop, job.deep, out.subtracted);
            if v.abs() <= job.limit || v.abs() <= stop || v == 0.0 || v.abs() > 1.05 * job.peak {
                break;
            }
            let f: Vec<f64> = (0..nt)
                .map(|t| job.gain * (0..nt).fold(0.0, |s, u| s + job.hinv[t * nt + u] * vals[u][j]))
                .collect();
            out.subtracted += f[0].abs();
            let (px, py) = job.xy[j];
            for k in 0..vals[0].len() {
                let (x, y) = job.xy[k];
                let q = (y as usize + job.n - py as usize) * m + (x as usize + job.n - px as usize);
                for tp in 0..nt {
                    vals[tp][k] -= (0..nt).fold(0.0, |s, t| s + f[t] * job.psfs[t + tp][q]);
                }
            }
            out.comps.push((j as u32, f));
        }
        out
    }

    #[test]
    fn twin_equals_the_definition_serial_and_parallel() {
        for (len, nt) in [
            (300, 1),
            (300, 3),
            (PARALLEL_FROM + 1000, 1),
            (PARALLEL_FROM + 1000, 2),
        ] {
            let n = 200;
            let (xy, vals, psfs) = fixture(n, len, nt);
            let p: Vec<&[f64]> = psfs.iter().map(Vec::as_slice).collect();
            let hinv: Vec<f64> = (0..nt * nt)
                .map(|i| if i % (nt + 1) == 0 { 1.0 } else { -0.1 })
                .collect();
            let j = job(n, &xy, &vals, &p, &hinv, 40);
            j.check().unwrap();
            let got = minor_cpu(&j);
            assert_eq!(got, reference(&j), "{len} pixels, {nt} terms");
            assert_eq!(
                got.comps.len(),
                40,
                "{len} pixels, {nt} terms: ran out of iterations"
            );
        }
    }

    #[test]
    fn each_stop_rule_ends_the_round() {
        let n = 64;
        let (xy, vals, psfs) = fixture(n, 500, 1);
        let p: Vec<&[f64]> = psfs.iter().map(Vec::as_slice).collect();
        let base = job(n, &xy, &vals, &p, &[1.0], 100_000);
        // The list threshold.
        let out = minor_cpu(&base);
        assert!(!out.comps.is_empty() && out.comps.len() < 100_000);
        // The floor, the mgain limit, `deep` and the runaway guard each end it sooner.
        for (what, j) in [
            ("floor", MinorJob { floor: 0.5, ..base }),
            (
                "mgain",
                MinorJob {
                    mgain_stop: 0.5,
                    ..base
                },
            ),
            (
                "deep",
                MinorJob {
                    mgain_stop: 0.9,
                    deep: Some(3.0),
                    ..base
                },
            ),
        ] {
            let o = minor_cpu(&j);
            assert!(o.comps.len() < out.comps.len(), "{what}");
            assert_eq!(o, reference(&j), "{what}");
        }
        let runaway = MinorJob { peak: 0.5, ..base };
        assert!(minor_cpu(&runaway).comps.is_empty());
        // Nothing left to do: all zeros.
        let zeros = vec![vec![0.0; 500]];
        assert!(minor_cpu(&MinorJob {
            vals: &zeros,
            ..base
        })
        .comps
        .is_empty());
        assert_eq!(stop_level(0.1, 0.5, Some(2.0), 0.1), 0.2);
        assert_eq!(stop_level(0.3, 0.5, Some(2.0), 0.1), 0.3);
        assert_eq!(stop_level(0.0, 0.5, None, 9.0), 0.5);
    }

    #[test]
    fn mismatched_parts_are_refused() {
        let n = 16;
        let (xy, vals, psfs) = fixture(n, 20, 2);
        let p: Vec<&[f64]> = psfs.iter().map(Vec::as_slice).collect();
        let hinv = [1.0, 0.0, 0.0, 1.0];
        assert!(job(n, &xy, &vals, &p, &hinv, 5).check().is_ok());
        assert!(job(n, &xy, &vals, &p[..2], &hinv, 5).check().is_err());
        assert!(job(n, &xy, &vals, &p, &hinv[..3], 5).check().is_err());
        let far = vec![(n as u32, 0u32); 20];
        assert!(job(n, &far, &vals, &p, &hinv, 5).check().is_err());
    }

    /// kernels/minor.cu run on the host (through kernels/host/shim.h, as one thread and
    /// with the device's block of `block_threads` concurrent threads): its components and
    /// sum equal the twin's to the last bit, with and without `deep`, the list threshold or
    /// the iteration count ending the round.
    #[test]
    fn kernel_run_on_the_host_equals_the_twin() {
        let Some(run) = crate::compute::host_kernels::host_kernels() else {
            return;
        };
        for (len, nt, iters, deep) in [
            (400, 1, 30, None),
            (700, 2, 500, Some(4.0)),
            (300, 3, 60, Some(0.5)),
        ] {
            let n = 48;
            let (xy, vals, psfs) = fixture(n, len, nt);
            let p: Vec<&[f64]> = psfs.iter().map(Vec::as_slice).collect();
            let hinv: Vec<f64> = (0..nt * nt)
                .map(|i| if i % (nt + 1) == 0 { 1.1 } else { -0.07 })
                .collect();
            let j = MinorJob {
                deep,
                subtracted: 0.125,
                ..job(n, &xy, &vals, &p, &hinv, iters)
            };
            let want = minor_cpu(&j);
            let mut input: Vec<u8> = Vec::new();
            for x in [n, len, nt, iters] {
                input.extend((x as i64).to_le_bytes());
            }
            for x in j.rules().iter().chain([j.subtracted].iter()).chain(&hinv) {
                input.extend(x.to_le_bytes());
            }
            for x in xy.iter().map(|p| p.0).chain(xy.iter().map(|p| p.1)) {
                input.extend((x as i32).to_le_bytes());
            }
            for x in vals.iter().flatten().chain(psfs.iter().flatten()) {
                input.extend(x.to_le_bytes());
            }
            for threads in [1, block_threads(len) as usize] {
                let out =
                    crate::compute::host_kernels::run_host_threads(&run, "minor", threads, &input);
                let int = |o: usize| i32::from_le_bytes(out[o..o + 4].try_into().unwrap());
                let float = |o: usize| f64::from_le_bytes(out[o..o + 8].try_into().unwrap());
                let ran = int(0) as usize;
                assert_eq!(
                    ran,
                    want.comps.len(),
                    "{len} pixels, {nt} terms, {threads} threads"
                );
                assert_eq!(
                    int(4) == 1,
                    ran < iters,
                    "{len} pixels, {nt} terms: stop flag"
                );
                assert_eq!(float(8).to_bits(), want.subtracted.to_bits());
                let fs = 16 + 4 * ran;
                for (i, (k, f)) in want.comps.iter().enumerate() {
                    assert_eq!(int(16 + 4 * i) as u32, *k, "iteration {i}");
                    for (t, f) in f.iter().enumerate() {
                        assert_eq!(
                            float(fs + 8 * (i * nt + t)).to_bits(),
                            f.to_bits(),
                            "iteration {i} term {t}"
                        );
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(run.parent().unwrap());
    }
}
