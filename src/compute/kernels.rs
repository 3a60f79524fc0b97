//! The kernel sources (`kernels/*.cu`, embedded in the binary) and their NVRTC compilation
//! for a device architecture. Local `#include "x.cuh"` lines are resolved from the same
//! embedded set, so the binary needs no files at run time.

/// (file name, source, entry points).
pub const KERNELS: &[(&str, &str, &[&str])] = &[
    (
        "sumthreshold.cu",
        include_str!("../../kernels/sumthreshold.cu"),
        &["sumthreshold_lines"],
    ),
    (
        "grid.cu",
        include_str!("../../kernels/grid.cu"),
        &["grid_tiles"],
    ),
    (
        "degrid.cu",
        include_str!("../../kernels/degrid.cu"),
        &["degrid_points"],
    ),
    (
        "background.cu",
        include_str!("../../kernels/background.cu"),
        &["smooth_prep", "smooth_pass", "smooth_narrow"],
    ),
    (
        "residuals.cu",
        include_str!("../../kernels/residuals.cu"),
        &["plane_noise", "normalise", "threshold_values", "or_flags"],
    ),
    (
        "convolve.cu",
        include_str!("../../kernels/convolve.cu"),
        &[
            "place_components",
            "multiply_accumulate",
            "centre_real",
            "real_to_complex",
            "narrow_complex",
        ],
    ),
    (
        "minor.cu",
        include_str!("../../kernels/minor.cu"),
        &["clark_minor"],
    ),
    (
        "sir.cu",
        include_str!("../../kernels/sir.cu"),
        &["sir_lines"],
    ),
    (
        "dft.cu",
        include_str!("../../kernels/dft.cu"),
        &["predict_points"],
    ),
    (
        "held.cu",
        include_str!("../../kernels/held.cu"),
        &["gather_f32", "gather_f64", "subtract_rows", "zero_column"],
    ),
    (
        "calstats.cu",
        include_str!("../../kernels/calstats.cu"),
        &["calstats_partial", "calstats_cells"],
    ),
    (
        "outliers.cu",
        include_str!("../../kernels/outliers.cu"),
        &["outlier_rows", "sum_row_chunks", "outlier_subtract"],
    ),
    (
        "planes.cu",
        include_str!("../../kernels/planes.cu"),
        &[
            "or_cells",
            "clear_cells",
            "apply_found",
            "excess_partial",
            "excess_reduce",
            "count_planes",
            "flag_planes",
            "clip_sample",
            "clip_above",
        ],
    ),
    (
        "residual.cu",
        include_str!("../../kernels/residual.cu"),
        &[
            "absmax_runs",
            "count_above",
            "list_above",
            "gather_pixels",
            "subtract_image",
        ],
    ),
    (
        "wstack.cu",
        include_str!("../../kernels/wstack.cu"),
        &[
            "grid_prep",
            "tile_scatter",
            "w_weights",
            "checkerboard",
            "wscreen_add",
            "wscreen_fill",
            "degrid_prep",
            "add_to",
            "degrid_finish",
        ],
    ),
];

/// Threads a block of the entries launched with fewer than 1024 (a block of 1024 leaves 64
/// registers a thread; these need more).
pub const SMALL_BLOCKS: &[(&str, u32)] = &[
    ("predict_points", 256),
    ("calstats_partial", 256),
    ("outlier_rows", 256),
];

/// The threads a block `entry` is launched with (1024 unless listed in SMALL_BLOCKS).
pub fn block_threads(entry: &str) -> u32 {
    SMALL_BLOCKS
        .iter()
        .find(|e| e.0 == entry)
        .map_or(1024, |e| e.1)
}

const HEADERS: &[(&str, &str)] = &[("common.cuh", include_str!("../../kernels/common.cuh"))];

/// The source with its local includes inlined.
pub fn source(file: &str) -> Option<String> {
    let (_, src, _) = KERNELS.iter().find(|k| k.0 == file)?;
    Some(
        src.lines()
            .map(|l| {
                match l
                    .trim()
                    .strip_prefix("#include \"")
                    .and_then(|r| r.strip_suffix('"'))
                {
                    Some(h) => HEADERS
                        .iter()
                        .find(|x| x.0 == h)
                        .map(|x| x.1.to_string())
                        .unwrap_or_else(|| l.to_string()),
                    None => l.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Whether NVRTC can be loaded (cudarc panics on first use otherwise).
#[cfg(feature = "gpu")]
pub fn nvrtc_present() -> bool {
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The NVRTC in use ("nvrtc12.8"): part of the PTX cache key, since PTX from a newer NVRTC
/// does not load on an older driver (nodes sharing a home directory may differ).
#[cfg(feature = "gpu")]
pub fn nvrtc_tag() -> String {
    if !nvrtc_present() {
        return "nvrtc-none".into();
    }
    let (mut major, mut minor) = (0, 0);
    match unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) } {
        cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS => format!("nvrtc{major}.{minor}"),
        _ => "nvrtc-unknown".into(),
    }
}

/// Compiles one kernel file to PTX for `arch` (e.g. "compute_80").
#[cfg(feature = "gpu")]
pub fn compile(file: &str, arch: &'static str) -> Result<cudarc::nvrtc::Ptx, super::GpuError> {
    let err = |log: String| super::GpuError::Compile {
        file: file.into(),
        arch: arch.into(),
        log,
    };
    if !nvrtc_present() {
        return Err(err("libnvrtc not found (install nvidia-cuda-nvrtc-cu12 and put its lib/ on LD_LIBRARY_PATH)".into()));
    }
    let src = source(file).ok_or_else(|| err("no such kernel".into()))?;
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some(arch),
        name: Some(file.into()),
        options: vec!["--std=c++17".into()],
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(src, opts).map_err(|e| err(format!("{e:?}")))
}

/// Where compiled PTX is kept between runs: $CONTIMG_PTX_CACHE ("off" for none), else
/// $XDG_CACHE_HOME/contimg/ptx, else $HOME/.cache/contimg/ptx.
pub fn ptx_cache_dir() -> Option<std::path::PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    match var("CONTIMG_PTX_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) => Some(v.into()),
        None => var("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| var("HOME").map(|h| std::path::Path::new(&h).join(".cache")))
            .map(|c| c.join("contimg").join("ptx")),
    }
}

/// The cache file of one kernel file's PTX for `arch` made by `compiler` (`nvrtc_tag`):
/// named by a stable hash of the source (includes inlined), the architecture and the
/// compiler, so an edited kernel or another NVRTC is compiled afresh.
pub fn ptx_cache_path(
    dir: &std::path::Path,
    file: &str,
    arch: &str,
    compiler: &str,
) -> Option<std::path::PathBuf> {
    let src = source(file)?;
    let key = crate::primitives::fnv64(format!("{arch}\n{compiler}\n{src}").as_bytes());
    Some(dir.join(format!(
        "{}-{arch}-{key:016x}.ptx",
        file.trim_end_matches(".cu")
    )))
}

/// `compile`, through the PTX cache in `dir` (None: no cache): read when present, else
/// compiled and written (to a temporary name, then renamed: ranks starting together never
/// read half a file). A cache that cannot be written only costs the next run a compile.
#[cfg(feature = "gpu")]
pub fn compile_cached(
    file: &str,
    arch: &'static str,
    dir: Option<&std::path::Path>,
) -> Result<cudarc::nvrtc::Ptx, super::GpuError> {
    let Some(path) = dir.and_then(|d| ptx_cache_path(d, file, arch, &nvrtc_tag())) else {
        return compile(file, arch);
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        if text.contains(".entry") {
            return Ok(cudarc::nvrtc::Ptx::from_src(text));
        }
    }
    let ptx = compile(file, arch)?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = path
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| std::fs::write(&tmp, ptx.to_src()))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        log::debug!("PTX cache {}: {e}", path.display());
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(ptx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache is used when present (a marked PTX text comes back), written when absent,
    /// and keyed by architecture and NVRTC version.
    #[cfg(feature = "gpu")]
    #[test]
    fn ptx_cache_is_read_and_written() {
        let dir = std::env::temp_dir().join(format!("contimg-ptx-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tag = nvrtc_tag();
        let p80 = ptx_cache_path(&dir, "held.cu", "compute_80", &tag).unwrap();
        assert_ne!(
            p80,
            ptx_cache_path(&dir, "held.cu", "compute_90", &tag).unwrap()
        );
        assert_ne!(
            p80,
            ptx_cache_path(&dir, "held.cu", "compute_80", "nvrtc99.0").unwrap()
        );
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&p80, "// marked\n.entry gather_f32\n").unwrap();
        assert!(compile_cached("held.cu", "compute_80", Some(&dir))
            .unwrap()
            .to_src()
            .contains("// marked"));
        if nvrtc_present() {
            let p90 = ptx_cache_path(&dir, "held.cu", "compute_90", &tag).unwrap();
            let first = compile_cached("held.cu", "compute_90", Some(&dir))
                .unwrap()
                .to_src();
            assert_eq!(std::fs::read_to_string(&p90).unwrap(), first);
            assert_eq!(
                compile_cached("held.cu", "compute_90", Some(&dir))
                    .unwrap()
                    .to_src(),
                first
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn includes_are_inlined() {
        let s = source("wstack.cu").unwrap();
        assert!(s.contains("CONTIMG_TWO_PI 6.28") && !s.contains("#include"));
    }

    /// Every (file, entry) the device backend loads is embedded here: Gpu::open fails on
    /// the first that is not (and with it the whole GPU path), which otherwise only a
    /// device would show.
    #[test]
    fn every_kernel_the_device_loads_is_embedded() {
        // Embedded, so the test runs from a prebuilt bundle too; where the tree is at hand,
        // no device file may be missing from this list.
        let sources = [
            ("device.rs", include_str!("device.rs")),
            ("device_calstats.rs", include_str!("device_calstats.rs")),
            ("device_flag.rs", include_str!("device_flag.rs")),
            ("device_held.rs", include_str!("device_held.rs")),
            ("device_planes.rs", include_str!("device_planes.rs")),
            ("device_outliers.rs", include_str!("device_outliers.rs")),
            ("device_residual.rs", include_str!("device_residual.rs")),
            ("device_unstack.rs", include_str!("device_unstack.rs")),
            ("device_convolve.rs", include_str!("device_convolve.rs")),
            ("device_dft.rs", include_str!("device_dft.rs")),
            ("device_minor.rs", include_str!("device_minor.rs")),
            ("device_stack.rs", include_str!("device_stack.rs")),
            ("device_timing.rs", include_str!("device_timing.rs")),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/compute");
        for f in std::fs::read_dir(&dir).into_iter().flatten() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with("device") && name.ends_with(".rs") {
                assert!(
                    sources.iter().any(|s| s.0 == name),
                    "{name} is not in this test's list"
                );
            }
        }
        let mut loads = 0;
        for (_, src) in sources {
            for (i, _) in src.match_indices("load(\"") {
                // `load("file", "entry")`: the quoted parts are the 2nd and 4th pieces.
                let parts: Vec<&str> = src[i + 5..].splitn(5, '"').collect();
                let (file, entry) = (parts[1], parts[3]);
                let known = KERNELS
                    .iter()
                    .any(|(f, _, entries)| *f == file && entries.contains(&entry));
                assert!(
                    known,
                    "the device loads {entry} from {file}, not in KERNELS"
                );
                loads += 1;
            }
        }
        // grid, degrid; 9 flagger, 5 convolution, 1 minor-cycle, 1 direct sum,
        // 9 w-stack, 4 held-group, 9 held flagging planes, 3 outliers' fits, 5 held residual
        // images, 2 calibration statistics.
        assert_eq!(loads, 50);
    }

    /// Every kernel compiles through NVRTC for sm_80 and sm_90, as the program compiles them
    /// at run time, and the PTX has each entry point. CI installs NVRTC (scripts/test.sh);
    /// elsewhere the test says it skipped.
    #[cfg(feature = "gpu")]
    #[test]
    fn every_kernel_compiles_for_sm80_and_sm90() {
        if !nvrtc_present() {
            assert!(
                std::env::var("CONTIMG_REQUIRE_NVRTC").is_err(),
                "CONTIMG_REQUIRE_NVRTC is set but libnvrtc cannot be loaded"
            );
            crate::compute::note_skipped_test("every_kernel_compiles_for_sm80_and_sm90: libnvrtc not found (scripts/test.sh installs it)");
            return;
        }
        for (file, _, entries) in KERNELS {
            for arch in ["compute_80", "compute_90"] {
                let ptx = compile(file, arch).unwrap_or_else(|e| panic!("{e}"));
                let text = ptx.to_src();
                for e in *entries {
                    assert!(
                        text.contains(&format!(".entry {e}")),
                        "{file} ({arch}): no entry {e}"
                    );
                }
                let target = arch.replace("compute_", "sm_");
                assert!(
                    text.contains(&format!(".target {target}")),
                    "{file}: PTX not for {target}"
                );
            }
        }
    }

    /// Every kernel assembles with NVIDIA's `ptxas` (from the venv's nvidia-cuda-nvcc-cu12,
    /// no GPU needed) for sm_80 and sm_90 within what a block of 1024 threads may use: at
    /// most 64 registers a thread and 48 KiB of static shared memory. The launchers use
    /// blocks of up to 1024 threads; a kernel over either limit would fail to launch, which
    /// otherwise only a device would show. `$CONTIMG_PTXAS` names the assembler
    /// (scripts/test.sh sets it and CONTIMG_REQUIRE_PTXAS); elsewhere the test says it
    /// skipped.
    #[cfg(feature = "gpu")]
    #[test]
    fn every_kernel_fits_its_block() {
        let ptxas = std::env::var_os("CONTIMG_PTXAS").filter(|p| std::path::Path::new(p).is_file());
        let (Some(ptxas), true) = (ptxas, nvrtc_present()) else {
            assert!(
                std::env::var("CONTIMG_REQUIRE_PTXAS").is_err(),
                "CONTIMG_REQUIRE_PTXAS is set but $CONTIMG_PTXAS or libnvrtc is missing"
            );
            crate::compute::note_skipped_test("every_kernel_fits_its_block: no $CONTIMG_PTXAS or libnvrtc (scripts/test.sh installs them)");
            return;
        };
        let dir = std::env::temp_dir().join(format!("contimg-ptxas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (file, _, entries) in KERNELS {
            for (arch, sm) in [("compute_80", "sm_80"), ("compute_90", "sm_90")] {
                let ptx = dir.join(format!("{file}.{sm}.ptx"));
                std::fs::write(&ptx, compile(file, arch).unwrap().to_src()).unwrap();
                let out = crate::compute::host_kernels::spawn_apart(
                    std::process::Command::new(&ptxas)
                        .args(["-v", "-arch", sm, "-o", "/dev/null"])
                        .arg(&ptx)
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped()),
                )
                .and_then(|child| child.wait_with_output())
                .unwrap();
                let log = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "ptxas {file} ({sm}): {log}");
                // "Compiling entry function 'e' for 'sm_90'", then "Used R registers, ...
                // S bytes smem" (smem only when there is some).
                let mut seen = Vec::new();
                for part in log.split("Compiling entry function '").skip(1) {
                    let entry = &part[..part.find('\'').unwrap()];
                    let number_before = |unit: &str| -> usize {
                        part.find(unit).map_or(0, |i| {
                            let head = part[..i].trim_end();
                            let digits = head.rsplit(|c: char| !c.is_ascii_digit()).next().unwrap();
                            digits.parse().unwrap()
                        })
                    };
                    let (regs, smem) = (number_before(" registers"), number_before(" bytes smem"));
                    // 64K registers a block (sm_80, sm_90), at most 255 a thread.
                    let limit = (65536 / block_threads(entry) as usize).min(255);
                    assert!(
                        regs > 0 && regs <= limit,
                        "{file} {entry} ({sm}): {regs} registers, {limit} allowed at {} threads a block",
                        block_threads(entry)
                    );
                    assert!(
                        smem <= 48 << 10,
                        "{file} {entry} ({sm}): {smem} bytes of shared memory"
                    );
                    seen.push(entry.to_string());
                }
                for e in *entries {
                    assert!(
                        seen.iter().any(|s| s == e),
                        "{file} ({sm}): ptxas did not report {e}: {log}"
                    );
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
