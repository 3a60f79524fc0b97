//! Degridding: model visibilities of a model image, the adjoint of the w-stacked gridder
//! (same kernel, planes and corrections), for CLEAN's major cycles.
//!
//! V(u, v, w) = sum_pixels I(l, m) exp(+2 pi i (u l + v m + w (n - 1))), returned in the
//! data's own phasing: multiplied by exp(+2 pi i dw nu / c), undoing the gridder's rephasing.

use super::gridder::{GridSpec, Planes, VisBlock};
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
    let n = spec.n_image;
    let nchan = b.freqs.len();
    let nrow = b.uvw_m.len();
    let mut out = vec![Complex32::new(0.0, 0.0); nrow * nchan];
    if model.iter().all(|&x| x == 0.0) {
        return out;
    }
    let Some(planes) = Planes::new(spec, b) else {
        return out;
    };
    let dw = planes.dw;
    let k = spec.kernel;
    let corr = k.correction(n, spec.n_grid);
    // Image pre-corrected for the u, v and w kernels (the model is sparse: the w kernel's
    // transform, a quadrature, only where there is flux).
    let pre: Vec<f64> = (0..n * n)
        .into_par_iter()
        .map(|i| {
            let (x, y) = (i % n, i / n);
            if model[i] == 0.0 {
                0.0
            } else {
                model[i] * corr[x] * corr[y] / k.fourier(spec.nm1(x, y) * dw)
            }
        })
        .collect();
    let job = WUnstack {
        spec,
        b,
        planes: &planes,
        pre: &pre,
    };
    crate::compute::or_cpu(compute, "degridding", |c, retry| {
        if retry {
            // zero on entry, as the job wants it
            out.iter_mut().for_each(|v| *v = Complex32::new(0.0, 0.0));
        }
        c.degrid_wstack(&job, &mut out)
    });
    out
}

/// One block's prediction as a backend runs it (`Compute::degrid_wstack`): for each plane,
/// the pre-corrected model times exp(+2 pi i w_p (n-1)) in the centre of the
/// grid, inverse-transformed and read at every visibility with the ES kernel in u, v and
/// w; the sums conjugated back for flipped rows and rotated to the data's phasing.
pub struct WUnstack<'a> {
    pub spec: &'a GridSpec,
    pub b: &'a VisBlock<'a>,
    pub planes: &'a Planes,
    /// The model divided by the u, v and w kernels' transforms (n x n).
    pub pre: &'a [f64],
}

/// The CPU backend of `WUnstack`: writes the prediction to `out` (zero on entry), by
/// primitives::wgridder (its own grid, kernel and planes, to its accuracy contract) from
/// the model recovered out of the pre-corrected image.
pub fn unstack_cpu(job: &WUnstack, out: &mut [Complex32]) {
    let (spec, b, pre) = (job.spec, job.b, job.pre);
    let n = spec.n_image;
    let (k, dw) = (spec.kernel, job.planes.dw);
    let corr = k.correction(n, spec.n_grid);
    let model: Vec<f64> = (0..n * n)
        .into_par_iter()
        .map(|i| {
            let (x, y) = (i % n, i / n);
            if pre[i] == 0.0 {
                0.0
            } else {
                pre[i] / (corr[x] * corr[y]) * k.fourier(spec.nm1(x, y) * dw)
            }
        })
        .collect();
    let opt = super::gridder::wgridder_options(spec, b);
    if let Err(e) = crate::primitives::wgridder::dirty2vis(b.uvw_m, b.freqs, &model, &opt, out) {
        // The block's arrays come from VisBlock's own layout: a mismatch is a bug.
        panic!("CPU degridder: {e}");
    }
}
