//! Degridding: model visibilities of a model image, the adjoint of the w-stacked gridder
//! (same kernel, planes and corrections), for CLEAN's major cycles.
//!
//! V(u, v, w) = sum_pixels I(l, m) exp(+2 pi i (u l + v m + w (n - 1))), returned in the
//! data's own phasing: multiplied by exp(+2 pi i dw nu / c), undoing the gridder's rephasing.

use super::gridder::{GridSpec, Planes, VisBlock};
use crate::primitives::fft::centred_fft2_inverse_from_centre;
use crate::primitives::kernel::MAX_SUPPORT;
use crate::primitives::C_M_S;
use num_complex::{Complex32, Complex64};
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

/// The CPU backend of `WUnstack`: adds the prediction to `out` (zero on entry).
pub fn unstack_cpu(job: &WUnstack, out: &mut [Complex32]) {
    let (spec, b, pre) = (job.spec, job.b, job.pre);
    let (n, ng, nchan, nrow) = (spec.n_image, spec.n_grid, b.freqs.len(), b.uvw_m.len());
    let (dw, support) = (job.planes.dw, spec.kernel.support);
    let half = support as f64 / 2.0;
    let scale = ng as f64 * spec.cell_rad;
    let centre = (ng / 2) as f64;
    let off = (ng - n) / 2;
    // Single-precision plane transforms where the kernel's accuracy allows (as the gridder).
    let single = support <= super::gridder::F32_MAX_SUPPORT;
    let mut grid64 = if single {
        Vec::new()
    } else {
        vec![Complex64::new(0.0, 0.0); ng * ng]
    };
    let mut grid32 = if single {
        vec![Complex32::new(0.0, 0.0); ng * ng]
    } else {
        Vec::new()
    };
    // The planes' contributions add up in the output itself (f32, as returned; a handful
    // of planes per visibility): no second visibility-sized buffer.
    let plane = PlaneGeometry {
        spec,
        b,
        sign: &job.planes.sign,
        scale,
        centre,
        dw,
        half,
    };
    for p in 0..job.planes.nplanes {
        let wp = job.planes.w0 + p as f64 * dw;
        let (lo, hi) = (wp - dw * half, wp + dw * half);
        let mut in_plane = vec![false; nrow];
        let mut any = false;
        for &r in &job.planes.rows {
            let r = r as usize;
            if job.planes.wrange[r][1] >= lo && job.planes.wrange[r][0] <= hi {
                in_plane[r] = true;
                any = true;
            }
        }
        if !any {
            continue;
        }
        // The pre-corrected model with this plane's w-screen, in the grid's centre.
        let screen = |x: usize, y: usize| -> Complex64 {
            let v = pre[y * n + x];
            if v != 0.0 {
                Complex64::from_polar(v, std::f64::consts::TAU * wp * spec.nm1(x, y))
            } else {
                Complex64::new(0.0, 0.0)
            }
        };
        if single {
            fill(&mut grid32, ng, off, n, |x, y| {
                let c = screen(x, y);
                Complex32::new(c.re as f32, c.im as f32)
            });
            centred_fft2_inverse_from_centre(&mut grid32, ng, n);
            plane.degrid(&grid32, wp, &in_plane, out);
        } else {
            fill(&mut grid64, ng, off, n, screen);
            centred_fft2_inverse_from_centre(&mut grid64, ng, n);
            plane.degrid(&grid64, wp, &in_plane, out);
        }
    }
    let mut used = vec![false; nrow];
    job.planes
        .rows
        .iter()
        .for_each(|&r| used[r as usize] = true);
    out.par_chunks_mut(nchan)
        .enumerate()
        .filter(|(r, _)| used[*r])
        .for_each(|(r, o)| {
            for (c, &f) in b.freqs.iter().enumerate() {
                let mut v = Complex64::new(o[c].re as f64, o[c].im as f64);
                if job.planes.sign[r] < 0.0 {
                    v = v.conj();
                }
                // Back to the data's phasing.
                v *= Complex64::from_polar(1.0, std::f64::consts::TAU * b.dw_m[r] * f / C_M_S);
                o[c] = Complex32::new(v.re as f32, v.im as f32);
            }
        });
}

/// Zeroes the grid and writes `value(x, y)` for the n x n image at offset `off`.
fn fill<T: Copy + Send + Sync + Default>(
    grid: &mut [num_complex::Complex<T>],
    ng: usize,
    off: usize,
    n: usize,
    value: impl Fn(usize, usize) -> num_complex::Complex<T> + Sync,
) where
    num_complex::Complex<T>: Default,
{
    grid.par_chunks_mut(ng).enumerate().for_each(|(gy, row)| {
        row.iter_mut().for_each(|c| *c = Default::default());
        if gy >= off && gy < off + n {
            for x in 0..n {
                row[x + off] = value(x, gy - off);
            }
        }
    });
}

/// A grid cell read as f64.
trait Cell: Copy + Send + Sync {
    fn c64(self) -> Complex64;
}

impl Cell for Complex64 {
    #[inline(always)]
    fn c64(self) -> Complex64 {
        self
    }
}

impl Cell for Complex32 {
    #[inline(always)]
    fn c64(self) -> Complex64 {
        Complex64::new(self.re as f64, self.im as f64)
    }
}

/// What every plane's degridding shares.
struct PlaneGeometry<'a> {
    spec: &'a GridSpec,
    b: &'a VisBlock<'a>,
    sign: &'a [f64],
    scale: f64,
    centre: f64,
    dw: f64,
    half: f64,
}

impl PlaneGeometry<'_> {
    /// Adds every in-plane row's interpolated visibilities (times the w kernel) to `acc`.
    fn degrid<T: Cell>(&self, g: &[T], wp: f64, in_plane: &[bool], acc: &mut [Complex32]) {
        let (spec, b, k) = (self.spec, self.b, self.spec.kernel);
        let (support, ng, nchan) = (k.support, spec.n_grid, b.freqs.len());
        acc.par_chunks_mut(nchan)
            .enumerate()
            .filter(|(r, _)| in_plane[*r])
            .for_each(|(r, vals)| {
                let s = self.sign[r];
                let [um, vm, wm] = b.uvw_m[r];
                let mut wu = [0.0f64; MAX_SUPPORT];
                let mut wv = [0.0f64; MAX_SUPPORT];
                for (c, &f) in b.freqs.iter().enumerate() {
                    let lam = f / C_M_S;
                    let (u, v, w) = (s * um * lam, s * vm * lam, s * wm * lam);
                    let kw = k.phi((w - wp) / (self.dw * self.half));
                    if kw == 0.0 {
                        continue;
                    }
                    let q = u * u + v * v;
                    if q < spec.uv_min_lambda.powi(2)
                        || (spec.uv_max_lambda > 0.0 && q > spec.uv_max_lambda.powi(2))
                    {
                        continue;
                    }
                    let fx = k.taps(self.centre - u * self.scale, &mut wu);
                    let fy = k.taps(self.centre + v * self.scale, &mut wv);
                    if fx < 0 || fy < 0 || fx as usize + support > ng || fy as usize + support > ng
                    {
                        continue;
                    }
                    let mut sum = Complex64::new(0.0, 0.0);
                    for (ky, &kvy) in wv.iter().enumerate().take(support) {
                        let base = (fy as usize + ky) * ng + fx as usize;
                        let mut rs = Complex64::new(0.0, 0.0);
                        for (kx, &kvx) in wu.iter().enumerate().take(support) {
                            rs += g[base + kx].c64() * kvx;
                        }
                        sum += rs * kvy;
                    }
                    let v = sum * kw;
                    vals[c] += Complex32::new(v.re as f32, v.im as f32);
                }
            });
    }
}
