//! Degridding: model visibilities of a model image, the adjoint of the w-stacked gridder
//! (same kernel, planes and corrections), for CLEAN's major cycles.
//!
//! V(u, v, w) = sum_pixels I(l, m) exp(+2 pi i (u l + v m + w (n - 1))), returned in the
//! data's own phasing: multiplied by exp(+2 pi i dw nu / c), undoing the gridder's rephasing.

use super::gridder::{GridSpec, Planes, VisBlock};
pub use crate::primitives::wgridder::Weights;
use num_complex::Complex32;
use rayon::prelude::*;

/// Predicts model visibilities for every row and channel of `b` (polarizations share the
/// Stokes I model): `out[r * nchan + c]`. Rows not in use get zero. On the CPU.
pub fn degrid(spec: &GridSpec, model: &[f64], b: &VisBlock) -> Vec<Complex32> {
    degrid_with(spec, model, b, &crate::compute::Cpu)
}

/// As `degrid`, the planes transformed and read by `compute` (a GPU where the rank has
/// one); a backend failure is logged and the block predicted on the CPU.
pub fn degrid_with(
    spec: &GridSpec,
    model: &[f64],
    b: &VisBlock,
    compute: &dyn crate::compute::Compute,
) -> Vec<Complex32> {
    degrid_sum_with(spec, &[model], &[Weights::default()], b, compute)
}

/// The weighted sum of several model images' predictions of the same block,
/// `sum_k weights[k].row[r] weights[k].chan[c] degrid(models[k])[r, c]`, in one pass where
/// the backend can (the CPU's shares the geometry and the kernel's taps between the images
/// and holds no image's prediction apart: the major cycles' spectral terms and
/// drifting-beam models at the memory of one prediction).
pub fn degrid_sum_with(
    spec: &GridSpec,
    models: &[&[f64]],
    weights: &[Weights],
    b: &VisBlock,
    compute: &dyn crate::compute::Compute,
) -> Vec<Complex32> {
    let nchan = b.freqs.len();
    let nrow = b.uvw_m.len();
    let mut out = vec![Complex32::new(0.0, 0.0); nrow * nchan];
    with_jobs(spec, models, weights, b, |jobs, live_w| {
        crate::compute::or_cpu(compute, "degridding", |c, retry| {
            if retry {
                // zero on entry, as the jobs want it
                out.iter_mut().for_each(|v| *v = Complex32::new(0.0, 0.0));
            }
            c.degrid_wstack_sum(jobs, live_w, &mut out)
        });
    });
    out
}

/// `scale` times `degrid_sum_with`'s prediction subtracted from the visibilities the
/// block's backend holds (`VisBlock::resident`, `Compute::degrid_subtract`); a failure is
/// returned, not handed to the CPU (the held visibilities may have lost part of it).
pub fn degrid_subtract_with(
    spec: &GridSpec,
    models: &[&[f64]],
    weights: &[Weights],
    b: &VisBlock,
    compute: &dyn crate::compute::Compute,
    scale: f32,
) -> Result<(), crate::compute::GpuError> {
    let r = b.resident.ok_or_else(|| {
        crate::compute::GpuError::Cuda("a prediction to subtract from a block not held".into())
    })?;
    with_jobs(spec, models, weights, b, |jobs, live_w| {
        compute.degrid_subtract(r, jobs, live_w, scale)
    })
    .unwrap_or(Ok(()))
}

/// The degridding jobs of the models that are not blank (each pre-corrected for the
/// kernels) and their weights, handed to `run`; None when there is nothing to predict.
fn with_jobs<R>(
    spec: &GridSpec,
    models: &[&[f64]],
    weights: &[Weights],
    b: &VisBlock,
    run: impl FnOnce(&[WUnstack], &[Weights]) -> R,
) -> Option<R> {
    // Blank models predict zero: only the others are transformed.
    let live: Vec<usize> = (0..models.len().min(weights.len()))
        .filter(|&i| models[i].iter().any(|&x| x != 0.0))
        .collect();
    if live.is_empty() {
        return None;
    }
    let planes = Planes::new(spec, b)?;
    // Images pre-corrected for the u, v and w kernels (the model is sparse: the w kernel's
    // transform, a quadrature, only where there is flux).
    let pres: Vec<Vec<f64>> = live
        .iter()
        .map(|&i| kernel_corrected(spec, planes.dw, models[i]))
        .collect();
    let jobs: Vec<WUnstack> = live
        .iter()
        .zip(&pres)
        .map(|(&i, pre)| WUnstack {
            spec,
            b,
            planes: &planes,
            model: models[i],
            pre,
        })
        .collect();
    let live_w: Vec<Weights> = live.iter().map(|&i| weights[i]).collect();
    Some(run(&jobs, &live_w))
}

/// One block's prediction as a backend runs it (`Compute::degrid_wstack`): for each plane,
/// the pre-corrected model times exp(+2 pi i w_p (n-1)) in the centre of the
/// grid, inverse-transformed and read at every visibility with the ES kernel in u, v and
/// w; the sums conjugated back for flipped rows and rotated to the data's phasing.
pub struct WUnstack<'a> {
    pub spec: &'a GridSpec,
    pub b: &'a VisBlock<'a>,
    pub planes: &'a Planes,
    /// The model (n x n, Jy per pixel).
    pub model: &'a [f64],
    /// The model divided by the u, v and w kernels' transforms (n x n).
    pub pre: &'a [f64],
}

/// The CPU backend of `WUnstack`: writes the prediction to `out` (zero on entry), by
/// primitives::wgridder (its own grid, kernel and planes, to its accuracy contract) from
/// the model itself (`pre` is the other backends' input).
pub fn unstack_cpu(job: &WUnstack, out: &mut [Complex32]) {
    unstack_cpu_sum(std::slice::from_ref(job), &[Weights::default()], out);
}

/// `unstack_cpu`'s weighted sum of several jobs on one block (the same spec, block and
/// planes) in one pass of the gridder (`primitives::wgridder::dirty2vis_sum`).
pub fn unstack_cpu_sum(jobs: &[WUnstack], weights: &[Weights], out: &mut [Complex32]) {
    let Some(first) = jobs.first() else { return };
    let (spec, b) = (first.spec, first.b);
    let images: Vec<&[f64]> = jobs.iter().map(|job| job.model).collect();
    let opt = super::gridder::wgridder_options(spec, b);
    if let Err(e) =
        crate::primitives::wgridder::dirty2vis_sum(b.uvw_m, b.freqs, &images, weights, &opt, out)
    {
        // The block's arrays come from VisBlock's own layout: a mismatch is a bug.
        panic!("CPU degridder: {e}");
    }
}

/// An image times the u, v and w kernels' corrections, corr(x) corr(y) / K_w(n - 1): the
/// prediction's pre-correction. Only the nonzero pixels are computed (K_w's transform is a
/// quadrature).
fn kernel_corrected(spec: &GridSpec, dw: f64, image: &[f64]) -> Vec<f64> {
    let n = spec.n_image;
    let k = spec.kernel;
    let corr = k.correction(n, spec.n_grid);
    (0..n * n)
        .into_par_iter()
        .map(|i| {
            let (x, y) = (i % n, i / n);
            if image[i] == 0.0 {
                0.0
            } else {
                image[i] * corr[x] * corr[y] / k.fourier(spec.nm1(x, y) * dw)
            }
        })
        .collect()
}
