//! No hangs under mpirun: a panic, a SIGKILL or a SIGSTOP on one of two ranks ends the whole
//! job within 60 s, with an error naming the rank (panic hook + MPI_Abort; the collective
//! watchdog, `mpi.collective_timeout_s`). Faults are injected by `CONTIMG_FAULT` (src/main.rs).

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `contimg run` on 2 ranks with a fault on `rank`; returns (exit code, output, seconds).
/// The job is killed (and the test fails) if it is still running after 120 s.
fn run_faulty(cfg: &Path, out: &Path, fault: &str) -> (i32, String, f64) {
    no_hdf5_locking();
    let t0 = Instant::now();
    let log = out.with_extension("log");
    let mut child = Command::new("mpirun")
        .args(["-n", "2", "--oversubscribe", "--bind-to", "none"])
        .arg(bin())
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .env("CONTIMG_FAULT", fault)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            std::fs::File::options().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .expect("mpirun");
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code().unwrap_or(-1);
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{fault}: the job was still running after 120 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // mpirun has ended: nothing of the job may be left (a stopped rank included).
    (
        code,
        std::fs::read_to_string(&log).unwrap_or_default(),
        t0.elapsed().as_secs_f64(),
    )
}

#[test]
fn a_panic_kill_or_stop_on_one_of_two_ranks_ends_the_job() {
    assert!(
        Command::new("mpirun")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "mpirun is required"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config(dir.path());
    c.simulate.n_groups = 2;
    c.imaging.niter = 0;
    c.simulate.sources = vec![source(0.1, 0.1, 2.0)];
    c.output.mosaic = false;
    c.output.report = false;
    c.mpi.collective_timeout_s = 10.0;
    let cfg = simulate_night(&c, dir.path());
    // The control: no fault, the night completes.
    let (code, text) = run_mpi(2, &cfg, &dir.path().join("out-ok"));
    assert_eq!(code, 0, "{text}");
    for (fault, needle) in [
        ("panic@1", "rank 1/2: internal error (panic)"),
        ("panic@0", "rank 0/2: internal error (panic)"),
        ("kill@1", ""),
        ("stop@1", "rank 1 did not answer"),
        ("stop@0", "rank 1: rank 0 did not answer"),
    ] {
        let out = dir.path().join(format!("out-{}", fault.replace('@', "-")));
        let (code, text, secs) = run_faulty(&cfg, &out, fault);
        println!("{fault}: exit {code} after {secs:.1} s");
        assert!(
            secs < 60.0,
            "{fault}: the job took {secs:.1} s to end:\n{text}"
        );
        assert_ne!(code, 0, "{fault}: the job reported success:\n{text}");
        assert!(text.contains(needle), "{fault}: no {needle:?} in:\n{text}");
        assert!(
            !out.join("summary.json").exists(),
            "{fault}: a summary was written"
        );
    }
}
