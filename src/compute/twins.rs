//! CPU twins of the kernels in `kernels/*.cu`: the same arithmetic, run with rayon. The CPU
//! backend is these functions; `vectors` holds the test vectors both sides are checked on.

use num_complex::Complex64;

/// Twin of `grid_tiles` (kernels/grid.cu): adds each visibility `vis_w[j]` (already
/// weighted) times its w-kernel weight `w_weight[j]` to the grid at pixel coordinates
/// (u_px, v_px) with the separable ES kernel of `support` taps and `beta`.
// The CPU twin of a CUDA kernel: its arguments are the kernel's, one for one.
#[allow(clippy::too_many_arguments)]
pub fn grid_tiles(
    grid: &mut [Complex64],
    ng: usize,
    u_px: &[f64],
    v_px: &[f64],
    vis_w: &[Complex64],
    w_weight: &[f64],
    support: usize,
    beta: f64,
) {
    let half = support as f64 / 2.0;
    let phi = |x: f64| {
        let t = 1.0 - x * x;
        if t > 0.0 {
            (beta * (t.sqrt() - 1.0)).exp()
        } else {
            0.0
        }
    };
    for j in 0..u_px.len() {
        let (u, v) = (u_px[j], v_px[j]);
        let (x0, y0) = ((u - half).ceil() as i64, (v - half).ceil() as i64);
        for dy in 0..support as i64 {
            let ky = phi(((y0 + dy) as f64 - v) / half) * w_weight[j];
            for dx in 0..support as i64 {
                let k = ky * phi(((x0 + dx) as f64 - u) / half);
                let (gx, gy) = (x0 + dx, y0 + dy);
                if gx >= 0 && gy >= 0 && (gx as usize) < ng && (gy as usize) < ng {
                    grid[gy as usize * ng + gx as usize] += vis_w[j] * k;
                }
            }
        }
    }
}

/// Twin of `degrid_points` (kernels/degrid.cu): for each visibility, the support x support
/// cells around (u_px, v_px) summed with the separable ES kernel, times `w_weight[j]`.
pub fn degrid_points(
    grid: &[Complex64],
    ng: usize,
    u_px: &[f64],
    v_px: &[f64],
    w_weight: &[f64],
    support: usize,
    beta: f64,
) -> Vec<Complex64> {
    let half = support as f64 / 2.0;
    let phi = |x: f64| {
        let t = 1.0 - x * x;
        if t > 0.0 {
            (beta * (t.sqrt() - 1.0)).exp()
        } else {
            0.0
        }
    };
    (0..u_px.len())
        .map(|j| {
            let (u, v) = (u_px[j], v_px[j]);
            let (x0, y0) = ((u - half).ceil() as i64, (v - half).ceil() as i64);
            let mut sum = Complex64::new(0.0, 0.0);
            for gy in y0..y0 + support as i64 {
                if gy < 0 || gy >= ng as i64 {
                    continue;
                }
                let ky = phi((gy as f64 - v) / half);
                let mut row = Complex64::new(0.0, 0.0);
                for gx in x0..x0 + support as i64 {
                    if gx < 0 || gx >= ng as i64 {
                        continue;
                    }
                    row += grid[gy as usize * ng + gx as usize] * phi((gx as f64 - u) / half);
                }
                sum += row * ky;
            }
            sum * w_weight[j]
        })
        .collect()
}
