//! The emulated driver (kernels/host/emulator.cpp) catches what it is there to catch: a
//! kernel writing past the end of its buffer stops the process naming the kernel, a
//! zero-byte allocation fails as the driver's does, and streams run their work only when
//! the host waits for it, so that a missing synchronisation shows (stale results, a
//! pinned buffer read when its copy runs, a buffer freed under another stream's work).
//! These run only on the emulated device (scripts/test.sh's second pass); elsewhere they
//! say why they skip.

use super::device::Gpu;
use super::launch;
use crate::compute::Compute;
use cudarc::cufft::sys::double2;
use cudarc::driver::result;
use cudarc::driver::sys::{CUevent_flags, CUevent_wait_flags, CUresult};

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

/// Runs this binary's ignored test `child` in a process of its own and checks that the
/// emulator stopped it, saying `why`.
fn child_stops_saying(child: &str, why: &str) {
    let out = super::host_kernels::spawn_apart(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &format!("compute::emulator_tests::{child}")])
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
        err.contains(&format!("emulated CUDA device: {why}")),
        "{err}"
    );
    assert!(!err.contains("went unnoticed"), "{err}");
}

#[test]
fn a_kernel_writing_past_its_buffer_stops_the_process() {
    let Some(_g) = emulated() else { return };
    child_stops_saying("overrunning_child", "memory fault in kernel add_to");
}

#[test]
fn a_zero_byte_allocation_fails_as_on_a_device() {
    let Some(g) = emulated() else { return };
    assert!(g.stream.alloc_zeros::<f64>(0).is_err());
    assert!(g.stream.alloc_zeros::<f64>(1).is_ok());
}

/// Reads one f64 of device memory `d` (a synchronous copy: the default stream's work first).
fn read_back(d: u64) -> f64 {
    let mut v = [0f64];
    // SAFETY: `d` holds at least one f64.
    unsafe { result::memcpy_dtoh_sync(&mut v, d) }.unwrap();
    v[0]
}

/// What each stream of the emulated device does is done when the host waits for it, not
/// when it is asked, as a GPU may: a copy up from pinned memory reads it when the copy
/// runs (from pageable memory, when it is called), a stream's work runs only after the
/// events it waits for, and a query of pending work says it is not ready.
#[test]
fn streams_run_their_work_when_the_host_waits_for_it() {
    let Some(_g) = emulated() else { return };
    let new = || result::stream::create(result::stream::StreamKind::NonBlocking).unwrap();
    let (a, b) = (new(), new());
    let event = result::event::create(CUevent_flags::CU_EVENT_DEFAULT).unwrap();
    // SAFETY: every pointer below is one f64 of this test's, freed at its end; the streams
    // are synchronised before the memory they use is read or freed.
    unsafe {
        let d = result::malloc_sync(8).unwrap();
        let pinned = result::malloc_host(8, 0).unwrap() as *mut f64;
        let h = std::slice::from_raw_parts_mut(pinned, 1);

        // Pinned: the copy reads the host memory when the stream runs it.
        h[0] = 1.0;
        result::memcpy_htod_async(d, h, a).unwrap();
        h[0] = 2.0;
        result::stream::synchronize(a).unwrap();
        assert_eq!(
            read_back(d),
            2.0,
            "a pinned buffer is read when its copy runs"
        );

        // Pageable: staged when the copy is asked for.
        let mut v = vec![3.0f64];
        result::memcpy_htod_async(d, &v, a).unwrap();
        v[0] = 4.0;
        result::stream::synchronize(a).unwrap();
        assert_eq!(read_back(d), 3.0, "a pageable buffer is staged at once");
        assert_eq!(v[0], 4.0);

        // Stream b reads what a writes: without a wait it runs first and sees the old value.
        result::memcpy_htod_async(d, &[5.0f64], a).unwrap();
        h[0] = 0.0;
        result::memcpy_dtoh_async(h, d, b).unwrap();
        result::stream::synchronize(b).unwrap();
        assert_eq!(h[0], 3.0, "b did not wait for a");
        result::event::record(event, a).unwrap();
        assert_eq!(
            result::event::query(event).unwrap_err().0,
            CUresult::CUDA_ERROR_NOT_READY,
            "pending work is not ready"
        );
        result::memcpy_htod_async(d, &[6.0f64], a).unwrap();
        result::event::record(event, a).unwrap();
        result::stream::wait_event(b, event, CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT).unwrap();
        result::memcpy_dtoh_async(h, d, b).unwrap();
        assert_eq!(
            h[0], 3.0,
            "a copy down into pinned memory lands when it runs"
        );
        result::stream::synchronize(b).unwrap();
        assert_eq!(h[0], 6.0, "b waited for a's event");
        result::event::query(event).unwrap();

        result::free_host(pinned as *mut _).unwrap();
        result::free_sync(d).unwrap();
        result::event::destroy(event).unwrap();
        result::stream::destroy(a).unwrap();
        result::stream::destroy(b).unwrap();
    }
}

/// The child's part of `a_buffer_freed_under_another_streams_work_stops_the_process`:
/// memory freed in stream a's order while stream b, not waiting for a, still copies from it.
#[test]
#[ignore = "run as a child process by a_buffer_freed_under_another_streams_work_stops_the_process"]
fn freeing_child() {
    if std::env::var_os("CONTIMG_EMULATOR_CHILD").is_none() {
        return;
    }
    let _g = emulated().expect("the emulated device");
    let new = || result::stream::create(result::stream::StreamKind::NonBlocking).unwrap();
    let (a, b) = (new(), new());
    let mut v = [0f64; 4];
    // SAFETY: deliberately not: b copies from memory a frees first.
    unsafe {
        let d = result::malloc_async(a, 32).unwrap();
        result::free_async(d, a).unwrap();
        result::stream::synchronize(a).unwrap();
        result::memcpy_dtoh_async(&mut v, d, b).unwrap();
        result::stream::synchronize(b).unwrap();
    }
    eprintln!("the use after free went unnoticed");
}

#[test]
fn a_buffer_freed_under_another_streams_work_stops_the_process() {
    let Some(_g) = emulated() else { return };
    child_stops_saying(
        "freeing_child",
        "a copy reaches outside its device allocation",
    );
}
