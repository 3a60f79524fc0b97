//! The kernels of `kernels/*.cu` run on the host through `kernels/host/shim.h` (tests
//! only): `kernels/host/run.cpp` launches them as the device backend does, reading and
//! writing binary records on its standard streams; the block-wide kernels either as one
//! thread a block or with the device's block size, one std::thread per CUDA thread.

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
        ("host/dft2.h", include_str!("../../kernels/host/dft2.h")),
    ] {
        std::fs::write(dir.join(path), text).unwrap();
    }
    // Every kernel as NVRTC gets it (kernels::KERNELS, headers inlined).
    for (file, _, _) in super::kernels::KERNELS {
        let text = super::kernels::source(file).expect("a listed kernel");
        std::fs::write(dir.join(file), text).unwrap();
    }
    let exe = dir.join("run");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let status = spawn_apart(
        std::process::Command::new(&cxx)
            .args(["-std=c++20", "-pthread", "-O1", "-ffp-contract=off", "-o"])
            .arg(&exe)
            .arg(dir.join("host/run.cpp")),
    )
    .and_then(|mut child| child.wait());
    // Where the compiler is missing or too old for the shim (C++20: GCC 11+), the host runs
    // are skipped, as on a GPU node without a full toolchain; scripts/test.sh installs g++
    // and sets CONTIMG_REQUIRE_HOST_KERNELS, under which they must build.
    let why = match status {
        Ok(s) if s.success() => return Some(exe),
        Ok(s) => format!("{cxx} could not build kernels/host/run.cpp ({s})"),
        Err(e) => format!("no C++ compiler `{cxx}` ({e})"),
    };
    assert!(
        std::env::var_os("CONTIMG_REQUIRE_HOST_KERNELS").is_none(),
        "CONTIMG_REQUIRE_HOST_KERNELS is set, but {why}"
    );
    crate::compute::note_skipped_test(&format!("host run of the kernels: {why}"));
    None
}

/// `cmd` spawned with every descriptor above stderr closed in the child, and with no HDF5
/// call running anywhere in the process meanwhile. The tests run in one process, and the
/// HDF5 library opens files without close-on-exec and holds an flock on each: a child
/// that inherits such a descriptor holds the lock with it, and a test that meanwhile
/// closes the file and reopens it for writing (or reads a file whose writer's lock a
/// child inherited) fails with "unable to lock file", as CI saw beside the seconds-long
/// host runs. Closing the descriptors in the child leaves the window between fork and
/// that close; holding the HDF5 library's own lock (every HDF5 call takes it) across the
/// spawn, which returns only once the child has exec'd, closes the window: no file can
/// be closed and reopened while a child still holds a copy of its descriptor.
pub(crate) fn spawn_apart(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    spawn_under_hdf5_lock(cmd, 0)
}

fn spawn_under_hdf5_lock(
    cmd: &mut std::process::Command,
    delay_ns: i64,
) -> std::io::Result<std::process::Child> {
    hdf5::sync::sync(|| closing_inherited_files(cmd, delay_ns).spawn())
}

/// `cmd` with every descriptor above stderr closed in the child before it execs, `delay_ns`
/// after the fork (0 but in the tests, which widen the window).
fn closing_inherited_files(
    cmd: &mut std::process::Command,
    delay_ns: i64,
) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (nanosleep, close_range, close).
    unsafe {
        cmd.pre_exec(move || {
            if delay_ns > 0 {
                let t = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: delay_ns,
                };
                libc::nanosleep(&t, std::ptr::null_mut());
            }
            if libc::close_range(3, libc::c_uint::MAX, 0) != 0 {
                // Kernels before Linux 5.9: one by one.
                for fd in 3..4096 {
                    libc::close(fd);
                }
            }
            Ok(())
        })
    }
}

/// The longest a host run may take: a kernel whose __syncthreads not every thread of
/// the block reaches would otherwise hang the test.
const HOST_RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// `exe what` on `input`: its output (each block as one thread).
pub(crate) fn run_host(exe: &std::path::Path, what: &str, input: &[u8]) -> Vec<u8> {
    run_host_threads(exe, what, 1, input)
}

/// `exe what threads` on `input`: its output, the block-wide kernels' blocks run with
/// `threads` concurrent threads each.
pub(crate) fn run_host_threads(
    exe: &std::path::Path,
    what: &str,
    threads: usize,
    input: &[u8],
) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut child = spawn_apart(
        std::process::Command::new(exe)
            .arg(what)
            .arg(threads.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped()),
    )
    .unwrap();
    // Written and read on their own threads: the pipes are small and the run is timed.
    let (mut stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let until = std::time::Instant::now() + HOST_RUN_LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} with {threads} threads a block still ran after {} s (a barrier not every thread reaches?)",
                HOST_RUN_LIMIT.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(status.success(), "{what} ({threads} threads): {status:?}");
    writer.join().unwrap().unwrap();
    reader.join().unwrap().unwrap()
}

#[cfg(test)]
mod tests {
    /// A child spawned while the test process has an HDF5 file open does not keep that
    /// file's lock once the process closes it (the library opens without close-on-exec).
    #[test]
    fn children_do_not_hold_the_test_processs_file_locks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.h5");
        drop(hdf5::File::create(&path).unwrap());
        let reader = hdf5::File::open(&path).unwrap();
        let mut child = super::spawn_apart(std::process::Command::new("sleep").arg("30")).unwrap();
        drop(reader);
        let rw = hdf5::File::open_rw(&path);
        let _ = child.kill();
        let _ = child.wait();
        assert!(rw.is_ok(), "reopening for writing: {:?}", rw.err());
    }

    /// How many read-then-rewrite rounds on one HDF5 file fail to lock it while another
    /// thread spawns children through `spawn` all the while: at least `rounds` rounds and
    /// until 20 children have been spawned (so that a slow start of the spawning thread
    /// cannot leave the rounds without children beside them).
    fn lock_failures_while_spawning(
        spawn: fn(&mut std::process::Command) -> std::io::Result<std::process::Child>,
        rounds: usize,
    ) -> usize {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.h5");
        drop(hdf5::File::create(&path).unwrap());
        let (done, spawned) = (AtomicBool::new(false), AtomicUsize::new(0));
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Relaxed) {
                    spawn(&mut std::process::Command::new("true"))
                        .and_then(|mut c| c.wait())
                        .unwrap();
                    spawned.fetch_add(1, Relaxed);
                }
            });
            let (mut round, mut failures) = (0, 0);
            while round < rounds || spawned.load(Relaxed) < 20 {
                let read = hdf5::File::open(&path).map(drop);
                failures += usize::from(read.is_err() || hdf5::File::open_rw(&path).is_err());
                round += 1;
            }
            done.store(true, Relaxed);
            failures
        })
    }

    /// Children that take 2 ms to close what they inherited: spawned beside the HDF5
    /// library, some hold the file's lock when the test reopens it; spawned under the
    /// library's lock, as `spawn_apart` does, none can.
    #[test]
    fn spawning_never_holds_a_file_that_is_being_reopened() {
        // Without file locks (as scripts/gpu-check.sh runs, for nodes whose file systems
        // have none) there is nothing to hold and nothing to show.
        if std::env::var("HDF5_USE_FILE_LOCKING").is_ok_and(|v| v.eq_ignore_ascii_case("false")) {
            eprintln!("HDF5_USE_FILE_LOCKING=FALSE: no file locks to hold, nothing to check");
            return;
        }
        let unguarded = lock_failures_while_spawning(
            |c| super::closing_inherited_files(c, 2_000_000).spawn(),
            300,
        );
        let guarded =
            lock_failures_while_spawning(|c| super::spawn_under_hdf5_lock(c, 2_000_000), 300);
        eprintln!(
            "lock failures in 300+ rounds: {unguarded} beside the library, {guarded} under its lock"
        );
        assert!(
            unguarded > 0,
            "the test's window is too narrow to show anything"
        );
        assert_eq!(guarded, 0);
    }
}
