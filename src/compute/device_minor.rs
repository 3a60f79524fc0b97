//! CLEAN's minor-cycle iterations on the device (feature `gpu`): `kernels/minor.cu` runs a
//! round's iterations in one block, the list's values staying on the device between them;
//! only the components come back. The PSFs (f64, 2n x 2n each: 184 MB apiece for a 2400^2
//! image) stay on the device between rounds and major cycles, cached by their ids: the
//! current image's only.

use super::device::{cuda, Gpu};
use super::minor::{MinorJob, MinorOut};
use super::{launch, GpuError};
use cudarc::driver::{CudaSlice, LaunchConfig};

/// The PSFs of one image on the device, one after another, by their ids.
pub(crate) type PsfImages = Option<(Vec<u64>, CudaSlice<f64>)>;

/// Iterations a launch may run (its component buffers' length); a round needing more
/// takes further launches, each resuming from the values the last one left.
const ITERATIONS_PER_LAUNCH: usize = 1 << 16;

impl Gpu {
    /// Compute::minor_cycle on the device.
    pub(super) fn minor_dev(&self, job: &MinorJob) -> Result<MinorOut, GpuError> {
        job.check().map_err(GpuError::Cuda)?;
        let (nt, len, m) = (job.terms(), job.xy.len(), 2 * job.n);
        let mut out = MinorOut {
            comps: Vec::new(),
            subtracted: job.subtracted,
        };
        if len == 0 || job.max_iter == 0 {
            return Ok(out);
        }
        // The kernel's list indices are ints.
        i32::try_from(len)
            .map_err(|_| GpuError::Cuda(format!("minor cycle: a list of {len} pixels")))?;
        let s = &self.stream;
        let mut cache = self
            .psf_images
            .lock()
            .map_err(|_| GpuError::Cuda("PSF image cache poisoned".into()))?;
        if cache.as_ref().is_none_or(|c| c.0 != job.psf_ids) {
            // Free the last image's PSFs before uploading this one's.
            *cache = None;
            let mut d = s.alloc_zeros::<f64>(job.psfs.len() * m * m).map_err(cuda)?;
            for (k, p) in job.psfs.iter().enumerate() {
                s.memcpy_htod(*p, &mut d.slice_mut(k * m * m..(k + 1) * m * m))
                    .map_err(cuda)?;
            }
            *cache = Some((job.psf_ids.to_vec(), d));
        }
        let psf = &cache.as_ref().expect("filled above").1;
        let xs: Vec<i32> = job.xy.iter().map(|p| p.0 as i32).collect();
        let ys: Vec<i32> = job.xy.iter().map(|p| p.1 as i32).collect();
        let flat: Vec<f64> = job.vals.iter().flatten().copied().collect();
        let rules = job.rules();
        let (d_xs, d_ys) = (
            s.clone_htod(&xs).map_err(cuda)?,
            s.clone_htod(&ys).map_err(cuda)?,
        );
        let mut d_vals = s.clone_htod(&flat).map_err(cuda)?;
        let (d_hinv, d_rules) = (
            s.clone_htod(job.hinv).map_err(cuda)?,
            s.clone_htod(&rules).map_err(cuda)?,
        );
        let per = ITERATIONS_PER_LAUNCH.min(job.max_iter);
        let mut d_state = s.clone_htod(&[job.subtracted]).map_err(cuda)?;
        let mut d_done = s.alloc_zeros::<i32>(2).map_err(cuda)?;
        let mut d_k = s.alloc_zeros::<i32>(per).map_err(cuda)?;
        let mut d_f = s.alloc_zeros::<f64>(per * nt).map_err(cuda)?;
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (super::minor::block_threads(len), 1, 1),
            shared_mem_bytes: 0,
        };
        let (len_l, nt_i, m_l, n_l) = (len as i64, nt as i32, m as i64, job.n as i64);
        loop {
            let batch = per.min(job.max_iter - out.comps.len()) as i32;
            // SAFETY: one block over the job's `len` values, `per` components at most.
            unsafe {
                launch::clark_minor(
                    s,
                    &self.clark_minor,
                    cfg,
                    &mut d_vals,
                    len_l,
                    nt_i,
                    &d_xs,
                    &d_ys,
                    psf,
                    m_l,
                    n_l,
                    &d_hinv,
                    &d_rules,
                    batch,
                    &mut d_state,
                    &mut d_done,
                    &mut d_k,
                    &mut d_f,
                )
            }
            .map_err(cuda)?;
            let done = s.clone_dtoh(&d_done).map_err(cuda)?;
            let ran = usize::try_from(done[0])
                .ok()
                .filter(|&r| r <= batch as usize)
                .ok_or_else(|| {
                    GpuError::Cuda(format!(
                        "minor cycle: the kernel reports {} iterations of {batch}",
                        done[0]
                    ))
                })?;
            if ran == 0 {
                // Stopped before a component: nothing changed since the last launch.
                return Ok(out);
            }
            // Only the components this launch found.
            let (ks, fs) = (
                s.clone_dtoh(&d_k.slice(..ran)).map_err(cuda)?,
                s.clone_dtoh(&d_f.slice(..ran * nt)).map_err(cuda)?,
            );
            for i in 0..ran {
                let k = u32::try_from(ks[i])
                    .ok()
                    .filter(|&k| (k as usize) < len)
                    .ok_or_else(|| GpuError::Cuda(format!("minor cycle: list index {}", ks[i])))?;
                out.comps.push((k, fs[i * nt..(i + 1) * nt].to_vec()));
            }
            out.subtracted = s.clone_dtoh(&d_state).map_err(cuda)?[0];
            if done[1] == 1 || out.comps.len() >= job.max_iter {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::compute::device::tests::device;
    use crate::compute::minor::{minor_cpu, tests::fixture, MinorJob};
    use crate::compute::Compute;

    /// One and three terms, a short list and one longer than a block, several launches'
    /// worth of iterations: the device's components equal the CPU twin's to the last bit.
    #[test]
    fn minor_cycle_matches_the_cpu() {
        let Some(g) = device() else { return };
        for (len, nt, iters) in [(300, 1, 50), (5000, 3, 40), (2000, 1, 70_000)] {
            let n = 256;
            let (xy, vals, psfs) = fixture(n, len, nt);
            let p: Vec<&[f64]> = psfs.iter().map(Vec::as_slice).collect();
            let hinv: Vec<f64> = (0..nt * nt)
                .map(|i| if i % (nt + 1) == 0 { 1.0 } else { -0.1 })
                .collect();
            let ids: Vec<u64> = (0..p.len() as u64).map(|k| 1000 * nt as u64 + k).collect();
            let job = MinorJob {
                n,
                xy: &xy,
                vals: &vals,
                psfs: &p,
                psf_ids: &ids,
                hinv: &hinv,
                gain: 0.1,
                limit: if iters > 60_000 { 0.0 } else { 0.05 },
                floor: 0.0,
                mgain_stop: 0.0,
                deep: Some(1e-3),
                peak: 1.0,
                subtracted: 0.25,
                max_iter: iters,
            };
            let cpu = minor_cpu(&job);
            // Twice: the second finds the PSFs cached.
            for _ in 0..2 {
                let dev = g.minor_cycle(&job).unwrap();
                assert_eq!(dev, cpu, "{len} pixels, {nt} terms");
            }
            assert!(!cpu.comps.is_empty());
        }
    }
}
