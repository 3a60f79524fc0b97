//! The kernels of `kernels/*.cu` run on the host through `kernels/host/shim.h` (tests
//! only): `kernels/host/run.cpp` launches them as the device backend does, one thread a
//! block, reading and writing binary records on its standard streams.

/// kernels/host/run.cpp built with the system's C++ compiler (scripts/setup.sh installs
/// g++) from the sources embedded in the test (the tree need not be at hand, as on a GPU
/// node running a prebuilt bundle); None, said as a skip, where there is no compiler.
pub(crate) fn host_kernels() -> Option<std::path::PathBuf> {
    // One directory a call: the tests run in parallel in one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "contimg-host-kernels-{}-{call}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("host")).unwrap();
    for (path, text) in [
        ("host/run.cpp", include_str!("../../kernels/host/run.cpp")),
        ("host/shim.h", include_str!("../../kernels/host/shim.h")),
        ("residuals.cu", include_str!("../../kernels/residuals.cu")),
        ("sir.cu", include_str!("../../kernels/sir.cu")),
        (
            "sumthreshold.cu",
            include_str!("../../kernels/sumthreshold.cu"),
        ),
        ("background.cu", include_str!("../../kernels/background.cu")),
        ("minor.cu", include_str!("../../kernels/minor.cu")),
    ] {
        std::fs::write(dir.join(path), text).unwrap();
    }
    let exe = dir.join("run");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let status = std::process::Command::new(&cxx)
        .args(["-std=c++17", "-O1", "-ffp-contract=off", "-o"])
        .arg(&exe)
        .arg(dir.join("host/run.cpp"))
        .status();
    match status {
        Ok(s) => {
            assert!(s.success(), "{cxx} could not build kernels/host/run.cpp");
            Some(exe)
        }
        Err(e) => {
            crate::compute::note_skipped_test(&format!(
                "host run of the kernels: no C++ compiler `{cxx}` ({e})"
            ));
            None
        }
    }
}

pub(crate) fn run_host(exe: &std::path::Path, what: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new(exe)
        .arg(what)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what}: {:?}", out.status);
    out.stdout
}
