//! Typed launches of every kernel in `kernels/*.cu`: one Rust function per entry point whose
//! parameters are the kernel's, in its order, with their types (feature `gpu`), and the same
//! parameters as data (`SIGNATURES`, in every build). A test reads the kernels' sources and
//! holds the table to them: the same parameters in the same order, `const T*` where the
//! launch only lends the buffer (`ro`), `T*` where the kernel writes it (`rw`), and scalars
//! (`val`) of the kernel's width (`int` i32, `long long` i64, `float` f32, `double` f64,
//! `unsigned char` u8; `float2` buffers are passed as interleaved f32, `ro2` / `rw2`). So a
//! launch that passes an argument too many or too few, a `usize` where the kernel reads an
//! `int`, or a read-only buffer where the kernel writes, fails to compile instead of
//! corrupting memory on a device no test here has.

/// One kernel's parameters as the typed launch passes them: (name, kind, element type).
#[derive(Debug)]
pub struct Signature {
    pub file: &'static str,
    pub entry: &'static str,
    pub params: &'static [(&'static str, &'static str, &'static str)],
}

/// A device buffer a kernel reads (a slice or a view of one).
#[cfg(feature = "gpu")]
pub(crate) trait DevRead<T> {
    fn push<'a>(&'a self, l: &mut cudarc::driver::LaunchArgs<'a>);
}

/// A device buffer a kernel writes.
#[cfg(feature = "gpu")]
pub(crate) trait DevWrite<T> {
    fn push<'a>(&'a mut self, l: &mut cudarc::driver::LaunchArgs<'a>);
}

#[cfg(feature = "gpu")]
mod buffers {
    use super::{DevRead, DevWrite};
    use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, LaunchArgs, PushKernelArg};

    impl<T> DevRead<T> for CudaSlice<T> {
        fn push<'a>(&'a self, l: &mut LaunchArgs<'a>) {
            l.arg(self);
        }
    }
    impl<T> DevRead<T> for CudaView<'_, T> {
        fn push<'a>(&'a self, l: &mut LaunchArgs<'a>) {
            l.arg(self);
        }
    }
    impl<T> DevWrite<T> for CudaSlice<T> {
        fn push<'a>(&'a mut self, l: &mut LaunchArgs<'a>) {
            l.arg(self);
        }
    }
    impl<T> DevWrite<T> for CudaViewMut<'_, T> {
        fn push<'a>(&'a mut self, l: &mut LaunchArgs<'a>) {
            l.arg(self);
        }
    }
}

#[cfg(feature = "gpu")]
use cudarc::cufft::sys::double2;

/// One thread an element of `n`, 1024 a block (Err past the grid's u32 count).
#[cfg(feature = "gpu")]
pub(crate) fn for_elems(n: usize) -> Result<cudarc::driver::LaunchConfig, super::GpuError> {
    u32::try_from(n)
        .map(cudarc::driver::LaunchConfig::for_num_elems)
        .map_err(|_| super::GpuError::Cuda(format!("{n} threads in one launch")))
}

/// One thread an element of `n`, in blocks of `entry`'s size (kernels::block_threads: 1024
/// unless the kernel is listed in kernels::SMALL_BLOCKS).
#[cfg(feature = "gpu")]
pub(crate) fn for_elems_of(
    entry: &str,
    n: usize,
) -> Result<cudarc::driver::LaunchConfig, super::GpuError> {
    let block = super::kernels::block_threads(entry);
    let blocks = u32::try_from(n.div_ceil(block as usize))
        .map_err(|_| super::GpuError::Cuda(format!("{n} threads in one launch")))?;
    Ok(cudarc::driver::LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Whether `cfg` runs any thread: a launch over zero elements (an empty batch) is no work,
/// where CUDA would refuse its empty grid.
#[cfg(feature = "gpu")]
fn launches_threads(cfg: &cudarc::driver::LaunchConfig) -> bool {
    let (g, b) = (cfg.grid_dim, cfg.block_dim);
    [g.0, g.1, g.2, b.0, b.1, b.2].iter().all(|&d| d > 0)
}

macro_rules! kernels {
    ($( $file:literal $entry:ident ( $( $p:ident : $k:ident $t:ty ),* ); )*) => {
        /// Every kernel entry's parameters as its typed launch passes them.
        pub const SIGNATURES: &[Signature] = &[$(
            Signature {
                file: $file,
                entry: stringify!($entry),
                params: &[$( (stringify!($p), stringify!($k), stringify!($t)) ),*],
            }
        ),*];
        $(
            #[doc = concat!("Launches `", stringify!($entry), "` of kernels/", $file, " on `stream`.")]
            ///
            /// # Safety
            /// The buffers must be as long as the kernel indexes for these sizes and
            /// `cfg`; `f` must be this entry point.
            #[cfg(feature = "gpu")]
            #[allow(clippy::too_many_arguments)]
            pub(crate) unsafe fn $entry(
                stream: &cudarc::driver::CudaStream,
                f: &cudarc::driver::CudaFunction,
                cfg: cudarc::driver::LaunchConfig,
                $( $p: kernels!(@ty $k $t) ),*
            ) -> Result<(), cudarc::driver::DriverError> {
                #[allow(unused_imports)]
                use cudarc::driver::PushKernelArg;
                if !launches_threads(&cfg) {
                    // No block or no thread: nothing to do (CUDA refuses such a launch).
                    return Ok(());
                }
                let mut l = stream.launch_builder(f);
                $( kernels!(@push l $k $p); )*
                // SAFETY: the caller's contract above.
                unsafe { l.launch(cfg) }.map(|_| ())
            }
        )*
    };
    (@ty ro $t:ty) => { &impl DevRead<$t> };
    (@ty ro2 $t:ty) => { &impl DevRead<$t> };
    (@ty rw $t:ty) => { &mut impl DevWrite<$t> };
    (@ty rw2 $t:ty) => { &mut impl DevWrite<$t> };
    (@ty val $t:ty) => { $t };
    (@push $l:ident ro $p:ident) => { $p.push(&mut $l) };
    (@push $l:ident ro2 $p:ident) => { $p.push(&mut $l) };
    (@push $l:ident rw $p:ident) => { $p.push(&mut $l) };
    (@push $l:ident rw2 $p:ident) => { $p.push(&mut $l) };
    (@push $l:ident val $p:ident) => { $l.arg(&$p) };
}

kernels! {
    "sumthreshold.cu" sumthreshold_lines(
        values: ro f32, flags: ro u8, new_flags: rw u8, nlines: val i32, line_step: val i32,
        stride: val i32, n: val i32, m: val i32, thr: val f32, nplanes: val i32, plane_size: val i64
    );
    "grid.cu" grid_tiles(
        grid: rw double2, ng: val i32, u_px: ro f64, v_px: ro f64, vis_w: ro double2,
        w_weight: ro f64, seg_tile: ro i32, seg_start: ro i32, tiles_x: val i32, support: val i32,
        beta: val f64
    );
    "degrid.cu" degrid_points(
        grid: ro double2, ng: val i32, u_px: ro f64, v_px: ro f64, w_weight: ro f64, n: val i32,
        support: val i32, beta: val f64, out: rw double2
    );
    "background.cu" smooth_prep(values: ro f32, flags: ro u8, n: val i64, v: rw f64, w: rw f64);
    "background.cu" smooth_pass(
        v: ro f64, w: ro f64, nlines: val i32, line_step: val i32, stride: val i32, n: val i32,
        kern: ro f64, h: val i32, linear: val i32, nplanes: val i32, plane: val i64, out_v: rw f64,
        out_w: rw f64
    );
    "background.cu" smooth_narrow(v: ro f64, n: val i64, out: rw f32);
    "residuals.cu" plane_noise(
        values: ro f32, bg: ro f32, mask: ro u8, plane_size: val i64, nplanes: val i32,
        sigma: rw f64, used: rw u8
    );
    "residuals.cu" normalise(
        values: rw f32, bg: ro f32, sigma: ro f64, used: ro u8, plane_size: val i64, n: val i64
    );
    "residuals.cu" threshold_values(
        res: ro f32, cells: ro u8, sign: val f32, plane_size: val i64, n: val i64, out: rw f32
    );
    "residuals.cu" or_flags(a: rw u8, b: ro u8, n: val i64);
    "convolve.cu" place_components(
        g: rw double2, m: val i32, n: val i32, idx: ro i64, flux: ro f64, count: val i32
    );
    "convolve.cu" multiply_accumulate(acc: rw double2, a: ro double2, p: ro2 f32, n: val i64);
    "convolve.cu" centre_real(g: ro double2, m: val i32, n: val i32, scale: val f64, out: rw f64);
    "convolve.cu" real_to_complex(g: rw double2, psf: ro f64, n: val i64);
    "convolve.cu" narrow_complex(out: rw f32, g: ro double2, n: val i64);
    "minor.cu" clark_minor(
        vals: rw f64, len: val i64, nt: val i32, xs: ro i32, ys: ro i32, psf: ro f64, m: val i64,
        n: val i64, hinv: ro f64, rules: ro f64, max_iter: val i32, state: rw f64, done: rw i32,
        comp_k: rw i32, comp_f: rw f64
    );
    "sir.cu" sir_lines(
        before: ro u8, out: rw u8, scratch: rw f64, nlines: val i32, line_step: val i32,
        stride: val i32, n: val i32, eta: val f64, extend: val i32, nplanes: val i32,
        plane_size: val i64
    );
    "dft.cu" predict_points(
        uvw: ro f64, dw: ro f64, use_row: ro u8, nrow: val i32, nt: val i32, freqs: ro f64,
        nc: val i32, dnu: val f64, lmn: ro f64, npts: val i32, amp: ro f32, out: rw2 f32
    );
    "wstack.cu" grid_prep(
        vis: ro2 f32, weight: ro f32, uvw: ro f64, dw: ro f64, freqs: ro f64, fdirty: ro f64,
        fpsf: ro f64, nrow: val i32, nchan: val i32, npol: val i32, scale: val f64, centre: val f64,
        uvmin2: val f64, uvmax2: val f64, limit: val f64, support: val i32, tiles_x: val i32,
        out0: val i64, u_px: rw f64, v_px: rw f64, w_lam: rw f64, val: rw double2, pval: rw double2,
        key: rw i32, counts: rw i32
    );
    "wstack.cu" tile_scatter(
        key: ro i32, n: val i64, u_px: ro f64, v_px: ro f64, w_lam: ro f64, val: ro double2,
        pval: ro double2, fill: rw i32, su: rw f64, sv: rw f64, sw: rw f64, sval: rw double2,
        spval: rw double2
    );
    "wstack.cu" w_weights(
        w_lam: ro f64, n: val i64, wp: val f64, halfwidth: val f64, beta: val f64, out: rw f64
    );
    "wstack.cu" checkerboard(g: rw double2, ng: val i32);
    "wstack.cu" wscreen_add(
        plane: ro double2, ng: val i32, n: val i32, cell: val f64, wp: val f64, img: rw f64
    );
    "wstack.cu" wscreen_fill(
        pre: ro f64, n: val i32, cell: val f64, wp: val f64, ng: val i32, plane: rw double2
    );
    "wstack.cu" degrid_prep(
        uvw: ro f64, freqs: ro f64, nrow: val i32, nchan: val i32, scale: val f64, centre: val f64,
        uvmin2: val f64, uvmax2: val f64, ng: val i32, support: val i32, u_px: rw f64, v_px: rw f64,
        w_lam: rw f64
    );
    "held.cu" gather_f32(src: ro f32, rows: ro i32, m: val i32, stride: val i32, dst: rw f32);
    "held.cu" gather_f64(src: ro f64, rows: ro i32, m: val i32, stride: val i32, dst: rw f64);
    "held.cu" subtract_rows(
        vis: rw2 f32, pred: ro2 f32, rows: ro i32, wrow: ro f32, wchan: ro f32, m: val i32,
        nchan: val i32, npol: val i32, scale: val f32
    );
    "held.cu" zero_column(x: rw f64, m: val i32, stride: val i32, col: val i32);
    "calstats.cu" calstats_partial(
        vis: ro f32, wt: ro u16, wscale: val f32, row0: val i32, rows: ro i32, bl_a: ro i32,
        bl_b: ro i32, nbl: val i32, nt: val i32, nc: val i32, np: val i32, keep: ro u8,
        run_of: ro i32, nrun: val i32, proj: ro f64, uv_min: val f64, freqs: ro f64, ns: val i32,
        n_ant: val i32, amp: ro f64, delay: ro f64, smear: ro f64, premul: ro f64,
        has_premul: val i32, partial: rw f64
    );
    "calstats.cu" calstats_cells(
        partial: ro f64, nbl: val i32, width: val i32, starts: ro i32, entries: ro i32,
        ncell: val i32, stride: val i32, j0: val i32, sums: rw f64
    );
    "outliers.cu" outlier_rows(
        vis: ro f32, wt: ro f32, use_row: ro u8, bl_a: ro i32, bl_b: ro i32, nrow: val i32,
        nt: val i32, nc: val i32, np: val i32, ns: val i32, n_ant: val i32, amp: ro f64,
        delay: ro f64, smear: ro f64, freqs: ro f64, xs: ro f64, with_ata: val i32, partial: rw f64
    );
    "outliers.cu" sum_row_chunks(
        partial: ro f64, nrow: val i32, width: val i32, chunk: val i32, out: rw f64
    );
    "outliers.cu" outlier_subtract(
        vis: rw f32, use_row: ro u8, bl_a: ro i32, bl_b: ro i32, nrow: val i32, nt: val i32,
        nc: val i32, np: val i32, ns: val i32, n_ant: val i32, amp: ro f64, delay: ro f64,
        smear: ro f64, freqs: ro f64, xs: ro f64, delta: ro f64
    );
    "planes.cu" or_cells(flags: rw u8, cells: ro u8, plane: val i64, n: val i64);
    "planes.cu" clear_cells(flags: ro u8, cells: ro u8, plane: val i64, n: val i64, out: rw u8);
    "planes.cu" apply_found(
        flags: rw u8, found: ro u8, used: ro u8, cells: ro u8, plane: val i64, n: val i64
    );
    "planes.cu" excess_partial(
        res: ro f32, flags: ro u8, used: ro u8, planes: val i32, plane: val i32, chunk: val i32,
        clip2: val f64, psum: rw f64, pcount: rw i32
    );
    "planes.cu" excess_reduce(
        psum: ro f64, pcount: ro i32, chunks: val i32, plane: val i32, sum: rw f64, count: rw i32
    );
    "planes.cu" count_planes(flags: ro u8, plane: val i64, planes: val i32, counts: rw i32);
    "planes.cu" flag_planes(flags: rw u8, which: ro u8, plane: val i64, n: val i64);
    "planes.cu" clip_sample(
        amp: ro f32, flags: ro u8, p: val i32, np: val i32, plane: val i64, stride: val i64,
        m: val i64, out: rw f32
    );
    "planes.cu" clip_above(
        amp: ro f32, flags: rw u8, p: val i32, np: val i32, plane: val i64, n: val i64,
        limit: val f32
    );
    "residual.cu" absmax_runs(res: ro f64, mask: ro u8, n: val i64, partial: rw f64);
    "residual.cu" count_above(res: ro f64, mask: ro u8, n: val i64, limit: val f64, counts: rw i32);
    "residual.cu" list_above(
        res: ro f64, mask: ro u8, n: val i64, limit: val f64, offsets: ro i64, idx: rw i32,
        val: rw f64
    );
    "residual.cu" gather_pixels(res: ro f64, idx: ro i32, k: val i32, out: rw f64);
    "residual.cu" subtract_image(res: rw f64, img: ro f64, n: val i64);
    "wstack.cu" add_to(acc: rw double2, x: ro double2, n: val i64);
    "wstack.cu" degrid_finish(
        acc: ro double2, uvw: ro f64, dw: ro f64, freqs: ro f64, nrow: val i32, nchan: val i32,
        out: rw2 f32
    );
}

/// Why `sig` does not match the kernel `entry` declared in `source` (a .cu file with its
/// headers inlined), or Ok.
pub fn check(source: &str, sig: &Signature) -> Result<(), String> {
    let head = format!("__global__ void {}(", sig.entry);
    let start = source
        .find(&head)
        .ok_or_else(|| format!("{}: no entry `{}`", sig.file, sig.entry))?
        + head.len();
    let len = source[start..]
        .find(')')
        .ok_or_else(|| format!("{}: `{}` unterminated", sig.file, sig.entry))?;
    let declared: Vec<&str> = source[start..start + len]
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let at = |what: String| format!("{} `{}`: {what}", sig.file, sig.entry);
    if declared.len() != sig.params.len() {
        return Err(at(format!(
            "the kernel takes {} parameters, the launch passes {}",
            declared.len(),
            sig.params.len()
        )));
    }
    for (k, (decl, &(name, kind, rust))) in declared.iter().zip(sig.params).enumerate() {
        let words: Vec<&str> = decl
            .split(|c: char| c.is_whitespace() || c == '*')
            .filter(|w| !w.is_empty() && *w != "__restrict__")
            .collect();
        let (c_name, ty) = words
            .split_last()
            .ok_or_else(|| at(format!("parameter {k} empty")))?;
        let is_const = ty.first() == Some(&"const");
        let base = ty[usize::from(is_const)..].join(" ");
        let pointer = decl.contains('*');
        let scalar = |b: &str| match b {
            "double" => Some("f64"),
            "float" => Some("f32"),
            "int" => Some("i32"),
            "long long" => Some("i64"),
            "unsigned char" => Some("u8"),
            "unsigned short" => Some("u16"),
            "unsigned int" => Some("u32"),
            "unsigned long long" => Some("u64"),
            _ => None,
        };
        let access = if is_const { "ro" } else { "rw" };
        // (kind, Rust type) the launch may pass for this parameter.
        let allowed: Vec<(String, &str)> = match (pointer, base.as_str()) {
            (false, b) => scalar(b).map(|r| ("val".into(), r)).into_iter().collect(),
            (true, "double2") => vec![(access.into(), "double2"), (format!("{access}2"), "f64")],
            (true, "float2") => vec![(access.into(), "float2"), (format!("{access}2"), "f32")],
            (true, b) => scalar(b).map(|r| (access.into(), r)).into_iter().collect(),
        };
        if *c_name != name {
            return Err(at(format!(
                "parameter {k} is `{c_name}` in the kernel, `{name}` in the launch"
            )));
        }
        if !allowed.iter().any(|(k2, r)| k2 == kind && *r == rust) {
            return Err(at(format!(
                "parameter {k} `{name}` is `{decl}`, the launch passes {kind} {rust} (expected one of {allowed:?})"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::kernels::{source, KERNELS};

    /// The typed launches pass every kernel exactly the parameters its source declares,
    /// and there is one for every entry point the sources list.
    #[test]
    fn every_launch_passes_the_kernels_parameters() {
        let mut entries = 0;
        for (file, _, names) in KERNELS {
            let src = source(file).unwrap();
            for name in *names {
                entries += 1;
                let sig = SIGNATURES
                    .iter()
                    .find(|s| s.entry == *name)
                    .unwrap_or_else(|| panic!("no typed launch for {file} `{name}`"));
                assert_eq!(sig.file, *file, "{name}");
                check(&src, sig).unwrap();
            }
        }
        assert_eq!(
            SIGNATURES.len(),
            entries,
            "a typed launch of no listed entry"
        );
    }

    /// A launch over no elements is skipped (CUDA refuses an empty grid), any other runs;
    /// one thread an element up to the grid's u32 count, an error past it.
    #[cfg(feature = "gpu")]
    #[test]
    fn an_empty_grid_is_no_launch() {
        use cudarc::driver::LaunchConfig;
        assert!(!launches_threads(&LaunchConfig::for_num_elems(0)));
        assert!(launches_threads(&LaunchConfig::for_num_elems(1)));
        let no_threads = LaunchConfig {
            grid_dim: (4, 1, 1),
            block_dim: (0, 1, 1),
            shared_mem_bytes: 0,
        };
        assert!(!launches_threads(&no_threads));
        assert_eq!(for_elems(2049).unwrap().grid_dim, (3, 1, 1));
        assert!(for_elems(u32::MAX as usize + 1).is_err());
    }

    /// The check finds each kind of mismatch it exists for.
    #[test]
    fn mismatched_launches_are_caught() {
        let src = "extern \"C\" __global__ void k(const double* __restrict__ a, float2* b, long long n) {}";
        let sig = |params| Signature {
            file: "k.cu",
            entry: "k",
            params,
        };
        check(
            src,
            &sig(&[("a", "ro", "f64"), ("b", "rw2", "f32"), ("n", "val", "i64")]),
        )
        .unwrap();
        for (params, why) in [
            (
                &[("a", "ro", "f64"), ("b", "rw2", "f32")][..],
                "takes 3 parameters",
            ),
            (
                &[("a", "rw", "f64"), ("b", "rw2", "f32"), ("n", "val", "i64")][..],
                "`a`",
            ),
            (
                &[("a", "ro", "f32"), ("b", "rw2", "f32"), ("n", "val", "i64")][..],
                "`a`",
            ),
            (
                &[("a", "ro", "f64"), ("b", "rw", "f32"), ("n", "val", "i64")][..],
                "`b`",
            ),
            (
                &[("a", "ro", "f64"), ("b", "rw2", "f32"), ("n", "val", "i32")][..],
                "`n`",
            ),
            (
                &[("a", "ro", "f64"), ("n", "val", "i64"), ("b", "rw2", "f32")][..],
                "parameter 1",
            ),
        ] {
            let e = check(src, &sig(params)).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert!(check(src, &sig(&[])).unwrap_err().contains("takes 3"));
        let other = Signature {
            entry: "j",
            ..sig(&[])
        };
        assert!(check(src, &other).unwrap_err().contains("no entry"));
    }
}
