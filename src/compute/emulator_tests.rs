//! The emulated driver (kernels/host/emulator.cpp) catches what it is there to catch: a
//! kernel writing past the end of its buffer stops the process naming the kernel, and a
//! zero-byte allocation fails as the driver's does. These run only on the emulated
//! device (scripts/test.sh's second pass); elsewhere they say why they skip.

use super::device::Gpu;
use super::launch;
use crate::compute::Compute;
use cudarc::cufft::sys::double2;

/// The emulated device, or None (said as a skip) on a real one or none.
fn emulated() -> Option<Gpu> {
    let why = match Gpu::open(0, 1, 0.0) {
        Ok(g) if g.name().contains("emulated device") => return Some(g),
        Ok(g) => format!("{} is not the emulated device", g.name()),
        Err(e) => format!("no device ({e})"),
    };
    crate::compute::note_skipped_test(&format!("emulator test: {why}"));
    None
}

/// The child's part of `a_kernel_writing_past_its_buffer_stops_the_process`: wstack.cu's
/// add_to over 4 items more than its output buffer holds.
#[test]
#[ignore = "run as a child process by a_kernel_writing_past_its_buffer_stops_the_process"]
fn overrunning_child() {
    if std::env::var_os("CONTIMG_EMULATOR_CHILD").is_none() {
        return;
    }
    let g = emulated().expect("the emulated device");
    let arch = "compute_90";
    let ptx = super::kernels::compile_cached("wstack.cu", arch, None).unwrap();
    let f = g
        .ctx
        .load_module(ptx)
        .unwrap()
        .load_function("add_to")
        .unwrap();
    let s = &g.stream;
    let n = 1000;
    let mut acc = s.alloc_zeros::<double2>(n).unwrap();
    let x = s.alloc_zeros::<double2>(n + 4).unwrap();
    // SAFETY: deliberately not: n + 4 items into a buffer of n.
    unsafe {
        launch::add_to(
            s,
            &f,
            launch::for_elems(n + 4).unwrap(),
            &mut acc,
            &x,
            (n + 4) as i64,
        )
    }
    .unwrap();
    s.synchronize().unwrap();
    eprintln!("the overrun went unnoticed");
}

#[test]
fn a_kernel_writing_past_its_buffer_stops_the_process() {
    let Some(_g) = emulated() else { return };
    let out = super::host_kernels::spawn_apart(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "compute::emulator_tests::overrunning_child"])
            .args(["--ignored", "--nocapture", "--test-threads", "1"])
            .env("CONTIMG_EMULATOR_CHILD", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )
    .and_then(|c| c.wait_with_output())
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child passed: {err}");
    assert!(
        err.contains("emulated CUDA device: memory fault in kernel add_to"),
        "{err}"
    );
    assert!(!err.contains("went unnoticed"), "{err}");
}

#[test]
fn a_zero_byte_allocation_fails_as_on_a_device() {
    let Some(g) = emulated() else { return };
    assert!(g.stream.alloc_zeros::<f64>(0).is_err());
    assert!(g.stream.alloc_zeros::<f64>(1).is_ok());
}
