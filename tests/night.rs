//! Whole nights through the binary: the same night through 1, 2 and 3 MPI ranks gives the
//! same images (per-group tiles and joint images reduced over ranks); incomplete, duplicate
//! and unreadable groups are reported and skipped while the night completes.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mpirun_available() -> bool {
    Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn images(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "fits"))
        .collect();
    v.sort();
    v
}

/// Runs the night of `c` into `dir/out-<name>` (config `dir/<name>.yaml`): exit code, output.
fn run_variant(c: &mut contimg::config::Config, dir: &Path, name: &str) -> (i32, String) {
    run_variant_with(c, dir, name, &[])
}

fn run_variant_with(
    c: &mut contimg::config::Config,
    dir: &Path,
    name: &str,
    envs: &[(&str, &str)],
) -> (i32, String) {
    c.output.dir = dir.join(format!("out-{name}"));
    let cfg = dir.join(format!("{name}.yaml"));
    write_config(c, &cfg);
    run_bin(&["run", "--config", cfg.to_str().unwrap()], envs)
}

fn summary_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// The two runs wrote the same images, bit for bit.
fn assert_same_images(a: &[PathBuf], b: &[PathBuf]) {
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            read_fits(x).data,
            read_fits(y).data,
            "{} differs from {}",
            x.display(),
            y.display()
        );
    }
}

fn night_weighted(
    dir: &Path,
    groups_per_image: usize,
    weighting: contimg::imaging::weighting::Weighting,
) -> PathBuf {
    night_terms(dir, groups_per_image, weighting, 1)
}

fn night_terms(
    dir: &Path,
    groups_per_image: usize,
    weighting: contimg::imaging::weighting::Weighting,
    nterms: usize,
) -> PathBuf {
    let c = night_config(dir, groups_per_image, weighting, nterms);
    simulate_night(&c, dir)
}

/// The configuration of `night_terms`'s night (three groups, two random sources, noise).
fn night_config(
    dir: &Path,
    groups_per_image: usize,
    weighting: contimg::imaging::weighting::Weighting,
    nterms: usize,
) -> contimg::config::Config {
    let mut c = small_config(dir);
    c.imaging.nterms = nterms;
    let f: Vec<f64> = (0..c.simulate.n_subbands)
        .flat_map(|s| (0..4).map(move |ch| contimg::simulate::channel_freq(s, ch, 4)))
        .collect();
    c.imaging.spectral_ref_hz = f.iter().sum::<f64>() / f.len() as f64;
    c.imaging.weighting = weighting;
    c.imaging.robust = 0.0;
    c.simulate.n_groups = 3;
    c.simulate.noise.enabled = true;
    c.simulate.gains.enabled = false;
    c.simulate.n_random_sources = 2;
    c.imaging.groups_per_image = groups_per_image;
    c.imaging.npix = 128;
    c.imaging.cell_arcsec = 30.0;
    c
}

fn compare_over_ranks(groups_per_image: usize, expect_images: usize) {
    compare_over_ranks_weighted(
        groups_per_image,
        expect_images,
        contimg::imaging::weighting::Weighting::Natural,
    )
}

fn compare_over_ranks_weighted(
    groups_per_image: usize,
    expect_images: usize,
    weighting: contimg::imaging::weighting::Weighting,
) {
    compare_over_ranks_terms(groups_per_image, expect_images, weighting, 1);
}

fn compare_over_ranks_terms(
    groups_per_image: usize,
    expect_images: usize,
    weighting: contimg::imaging::weighting::Weighting,
    nterms: usize,
) {
    assert!(
        mpirun_available(),
        "mpirun is required (scripts/setup.sh installs OpenMPI)"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = night_terms(dir.path(), groups_per_image, weighting, nterms);
    let mut results: Vec<Vec<Vec<f32>>> = Vec::new();
    for n in [1, 2, 3] {
        let out = dir.path().join(format!("out{n}"));
        let (code, text) = run_mpi(n, &cfg, &out);
        assert_eq!(code, 0, "{n} ranks: {text}");
        let summary = summary_json(&out);
        assert_eq!(summary["n_ranks"], n);
        assert_eq!(summary["complete"], true);
        let imgs = images(&out);
        assert_eq!(imgs.len(), 7 * expect_images, "{imgs:?}");
        results.push(imgs.iter().map(|p| read_fits(p).data).collect());
    }
    for (n, r) in results.iter().enumerate().skip(1) {
        for (a, b) in results[0].iter().zip(r) {
            let peak = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            println!(
                "{} ranks vs 1: max difference {:.2e} of peak {peak:.3}",
                n + 1,
                diff
            );
            assert!(
                diff <= 1e-5 * peak,
                "{} ranks differ by {diff} (peak {peak})",
                n + 1
            );
        }
    }
}

#[test]
fn tiles_identical_over_1_2_3_ranks() {
    compare_over_ranks(1, 3);
}

#[test]
fn joint_image_reduced_over_1_2_3_ranks() {
    compare_over_ranks(3, 1);
}

/// Multi-term MFS: the spectral-term grids and both terms' residuals are reduced over the
/// ranks that hold the groups, and the model increments of both terms broadcast.
#[test]
fn multi_term_joint_image_reduced_over_1_2_3_ranks() {
    compare_over_ranks_terms(3, 1, contimg::imaging::weighting::Weighting::Natural, 2);
}

#[test]
fn briggs_joint_image_independent_of_rank_count() {
    compare_over_ranks_weighted(3, 1, contimg::imaging::weighting::Weighting::Briggs);
}

#[test]
fn uniform_weighting_narrows_the_beam() {
    use contimg::imaging::weighting::Weighting;
    let mut area = Vec::new();
    for w in [Weighting::Natural, Weighting::Briggs, Weighting::Uniform] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = night_weighted(dir.path(), 1, w);
        let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "{text}");
        let s = summary_json(&dir.path().join("out"));
        let b = &s["images"][0]["beam_deg"];
        let a = b[0].as_f64().unwrap() * b[1].as_f64().unwrap();
        println!(
            "{w:?}: beam {:.2}\" x {:.2}\"",
            b[0].as_f64().unwrap() * 3600.0,
            b[1].as_f64().unwrap() * 3600.0
        );
        area.push(a);
    }
    // Beams are fitted on 30" pixels here: Briggs(0) may round to uniform's size.
    assert!(
        area[1] < area[0] && area[2] <= area[1],
        "beam areas natural > briggs(0) >= uniform: {area:?}"
    );
}

/// A Gaussian taper of FWHM theta convolves the natural beam with (about) that Gaussian:
/// the fitted beam grows to ~sqrt(b^2 + theta^2), while a point source keeps its peak.
#[test]
fn gaussian_taper_widens_the_beam_and_keeps_point_source_flux() {
    let fit = |taper_arcsec: f64| {
        let dir = tempfile::tempdir().unwrap();
        let mut c = small_config(dir.path());
        c.simulate.sources = vec![source(0.0, 0.0, 5.0)];
        c.imaging.npix = 256;
        c.imaging.cell_arcsec = 10.0;
        c.imaging.niter = 0;
        c.imaging.taper_gaussian_arcsec = taper_arcsec;
        let cfg = simulate_night(&c, dir.path());
        let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
        assert_eq!(code, 0, "{text}");
        let s = summary_json(&dir.path().join("out"));
        let b = &s["images"][0]["beam_deg"];
        (
            b[0].as_f64().unwrap() * 3600.0,
            b[1].as_f64().unwrap() * 3600.0,
            s["images"][0]["peak_jy"].as_f64().unwrap(),
        )
    };
    let (maj0, min0, peak0) = fit(0.0);
    let theta = 2.0 * maj0;
    let (maj1, min1, peak1) = fit(theta);
    println!("natural {maj0:.1}\" x {min0:.1}\", peak {peak0:.3}; taper {theta:.1}\": {maj1:.1}\" x {min1:.1}\", peak {peak1:.3}");
    let expect = (maj0 * maj0 + theta * theta).sqrt();
    assert!(
        (maj1 / expect - 1.0).abs() < 0.2,
        "major axis {maj1:.1}\" vs ~{expect:.1}\""
    );
    assert!(
        min1 > 1.5 * min0,
        "minor axis {min1:.1}\" vs natural {min0:.1}\""
    );
    assert!(
        (peak1 / peak0 - 1.0).abs() < 0.02,
        "peak {peak1} vs {peak0}"
    );
}

/// Without a GPU, `gpu: auto` runs on the CPU and gives the same products as `gpu: off`;
/// `gpu: required` fails cleanly (exit 1, the reason on stderr, no panic).
#[test]
fn gpu_auto_equals_off_without_a_gpu_and_required_fails_cleanly() {
    use contimg::compute::GpuMode;
    if std::env::var("CONTIMG_EXPECT_GPU").is_ok() {
        contimg::compute::note_skipped_test(
            "gpu_auto_equals_off_without_a_gpu_and_required_fails_cleanly: this machine has a GPU",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config(dir.path());
    c.simulate.sources = vec![source(0.2, 0.1, 3.0)];
    c.simulate.noise.enabled = true;
    c.imaging.niter = 100;
    contimg::simulate::run(&c, &c.input.dir).unwrap();
    let mut outputs = Vec::new();
    for mode in [GpuMode::Off, GpuMode::Auto] {
        c.compute.gpu = mode;
        let (code, text) = run_variant(&mut c, dir.path(), &format!("{mode:?}"));
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("compute: cpu"), "{text}");
        outputs.push(images(&c.output.dir));
    }
    assert_same_images(&outputs[0], &outputs[1]);
    c.compute.gpu = GpuMode::Required;
    let (code, text) = run_variant(&mut c, dir.path(), "required");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("gpu: required, but"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

/// Reading, flagging and preparing one group ahead on a second thread
/// (`compute.prefetch`: calibrated, combined into Stokes I, its geometry and outliers)
/// changes nothing in the products: the same images as in line, over a night of four
/// groups with an unreadable second one (skipped, reported), imaged in pairs and as one
/// image each (then each group is read into the last one's buffers as read, and the
/// fourth combined into the first's held buffers: `prepare::HeldPool`,
/// `Inputs::retire`; in pairs, the first and third groups make one image and the fourth
/// another).
#[test]
fn prefetching_the_next_group_gives_the_same_products() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config(dir.path());
    c.simulate.n_groups = 4;
    c.simulate.sources = vec![source(0.2, 0.1, 3.0)];
    c.simulate.noise.enabled = true;
    c.imaging.niter = 50;
    c.imaging.groups_per_image = 2;
    contimg::simulate::run(&c, &c.input.dir).unwrap();
    // The second group's sb00 loses its visibilities: the plan skips that group, and the
    // others are read in turn.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&c.input.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .collect();
    files.sort();
    let sb00: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.to_string_lossy().contains("sb00"))
        .collect();
    assert_eq!(sb00.len(), 4);
    hdf5::File::open_rw(sb00[1])
        .unwrap()
        .unlink("Data/visdata")
        .unwrap();
    for per_image in [2, 1] {
        c.imaging.groups_per_image = per_image;
        let mut outputs = Vec::new();
        for prefetch in [false, true] {
            c.compute.prefetch = prefetch;
            let (code, text) = run_variant_with(
                &mut c,
                dir.path(),
                &format!("prefetch-{prefetch}-{per_image}"),
                &[("RUST_LOG", "info,contimg::pipeline::prepare=debug")],
            );
            // In line none are kept. Ahead, one image a group: the first image's buffers
            // go back before the fourth group (the third image) is made ready, so at
            // least it is combined into them (the third too where the reader is slower
            // than the first image's CLEAN). In pairs, only the fourth group can be, and
            // only when the reader is that slow: the counts allowed do not depend on
            // the two threads' timing.
            let reused = text
                .matches("combined into an earlier group's held buffers")
                .count();
            let allowed = match (prefetch, per_image) {
                (false, _) => 0..=0,
                (true, 1) => 1..=2,
                _ => 0..=1,
            };
            assert!(allowed.contains(&reused), "{reused} reused: {text}");
            assert_eq!(
                code, 3,
                "a night with a skipped group exits 3 (incomplete): {text}"
            );
            let s = summary_json(&c.output.dir);
            assert_eq!(s["groups_ok"], 3, "{s}");
            assert!(
                s["groups_skipped"].to_string().contains("Data/visdata"),
                "{s}"
            );
            // The products were written behind the image loop (pipeline::products::Writer),
            // every image's report back, in plan order.
            let r = &s["ranks"][0];
            assert!(r["stage_s"]["products"].as_f64().unwrap() > 0.0, "{r}");
            let names: Vec<&str> = r["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap())
                .collect();
            assert_eq!(7 * names.len(), images(&c.output.dir).len(), "{r}");
            assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
            outputs.push(images(&c.output.dir));
        }
        assert_same_images(&outputs[0], &outputs[1]);
    }
}

/// On a GPU machine, or on the emulated driver of kernels/host/emulator.cpp
/// (`CONTIMG_EXPECT_GPU` set; the binary built with `--features gpu`): `gpu: required`
/// runs every stage the seam covers on the device, and its images equal `gpu: off`'s
/// within 3e-7 of the dirty image's peak (issue 21 asks 1e-6; the emulated device: 8e-8,
/// the FITS images' f32 rounding) — CLEAN takes the same components. Both runs re-grid
/// the major cycles at the final epsilon: at the default `cycle_epsilon` (1e-3) the two
/// backends' gridders, different algorithms, differ by up to that, and CLEAN's later
/// components with them (5e-4 of the peak in the model seen). The summary names the
/// device and, on a real one, its NVML figures.
#[test]
fn gpu_required_matches_off_on_a_gpu() {
    use contimg::compute::GpuMode;
    if std::env::var("CONTIMG_EXPECT_GPU").is_err() {
        contimg::compute::note_skipped_test("gpu_required_matches_off_on_a_gpu: no GPU (set CONTIMG_EXPECT_GPU on a machine with one)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config(dir.path());
    c.simulate.sources = vec![source(0.2, 0.1, 3.0), source(-0.3, 0.25, 1.0)];
    c.simulate.noise.enabled = true;
    c.imaging.niter = 100;
    c.imaging.nterms = 2;
    c.imaging.epsilon = 1e-7;
    c.imaging.cycle_epsilon = 1e-7;
    contimg::simulate::run(&c, &c.input.dir).unwrap();
    let mut outputs = Vec::new();
    for mode in [GpuMode::Off, GpuMode::Required] {
        c.compute.gpu = mode;
        let t0 = std::time::Instant::now();
        let debug = [("RUST_LOG", "contimg=debug")];
        let (code, text) = run_variant_with(&mut c, dir.path(), &format!("{mode:?}"), &debug);
        println!("gpu {mode:?}: {:.1} s", t0.elapsed().as_secs_f64());
        assert_eq!(code, 0, "{text}");
        assert!(
            !text.contains(" failed (") && !text.contains("panicked"),
            "no stage may fall back to the CPU: {text}"
        );
        // On the device, the group is held there for CLEAN (HeldGroup::hold) and every
        // model increment is subtracted there; its flagging planes were held there for the
        // whole flagger, its minor cycles' residual images were held there, and no step fell
        // back to the CPU.
        let held = text.contains("1 of 1 groups held on the device for CLEAN")
            && text.contains("subtracted on the device");
        assert_eq!(held, mode == GpuMode::Required, "{text}");
        let planes = text.contains("flagging planes (") && text.contains(") held on gpu");
        assert_eq!(planes, mode == GpuMode::Required, "{text}");
        // CLEAN's minor cycles: the residual images held on the device, every cycle.
        let on_device = text.contains("residual images held on the device");
        assert_eq!(on_device, mode == GpuMode::Required, "{text}");
        assert!(
            !text.contains("residual images on the host") || mode == GpuMode::Off,
            "{text}"
        );
        assert!(!text.contains("on the CPU"), "{text}");
        outputs.push(images(&c.output.dir));
        if mode == GpuMode::Required {
            let s = summary_json(&c.output.dir);
            let r = &s["ranks"][0];
            let compute = r["compute"].as_str().unwrap();
            assert!(compute.starts_with("gpu"), "{r}");
            // NVML's figures: a real device has them, the emulated driver
            // (kernels/host/emulator.cpp) none.
            if !compute.contains("emulated device") {
                assert!(r["gpu"]["memory_total_gib"].as_f64().unwrap() > 1.0, "{r}");
            }
        }
    }
    let peak = assert_images_within(&outputs[0], &outputs[1], 3e-7);
    assert!(peak > 1.0, "dirty peak {peak}");
}

/// On a device (`CONTIMG_EXPECT_GPU`: a GPU, or the emulated driver in `scripts/test.sh`'s
/// second pass), reading ahead with the weights final once the reader is done (natural
/// weighting; Briggs for an image of one group, which the reader weights): the reader
/// copies each group up for CLEAN while the loop images the one before, or collects the
/// image's other groups (`HeldGroup::hold_ahead`), and the loop adopts the copy; in line
/// the loop holds each group itself. The images are the same bit for bit: the same
/// samples, held earlier. A Briggs image of three groups is weighted by the loop (the
/// density of all three), and none of its groups is held ahead.
#[test]
fn a_gpu_rank_holds_the_next_group_while_this_one_is_imaged() {
    use contimg::compute::GpuMode;
    use contimg::imaging::weighting::Weighting;
    if std::env::var("CONTIMG_EXPECT_GPU").is_err() {
        contimg::compute::note_skipped_test("a_gpu_rank_holds_the_next_group_while_this_one_is_imaged: no GPU (set CONTIMG_EXPECT_GPU on a machine with one)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = night_config(dir.path(), 1, Weighting::Natural, 1);
    c.imaging.niter = 50;
    c.compute.gpu = GpuMode::Required;
    simulate_night(&c, dir.path());
    let (natural, briggs) = (Weighting::Natural, Weighting::Briggs);
    // (groups an image, weighting, groups held ahead reading ahead)
    for (per_image, weighting, want) in [
        (1, natural, 3),
        (1, briggs, 3),
        (3, natural, 3),
        (3, briggs, 0),
    ] {
        c.imaging.groups_per_image = per_image;
        c.imaging.weighting = weighting;
        let mut outputs = Vec::new();
        for prefetch in [false, true] {
            c.compute.prefetch = prefetch;
            let name = format!("{weighting:?}-{prefetch}-{per_image}");
            let debug = [("RUST_LOG", "contimg=debug")];
            let (code, text) = run_variant_with(&mut c, dir.path(), &name, &debug);
            assert_eq!(code, 0, "{name}: {text}");
            let ahead = text
                .matches("held on the device ahead of the image loop")
                .count();
            let want = if prefetch { want } else { 0 };
            assert_eq!(ahead, want, "{name}: {text}");
            // Every group held for CLEAN, ahead or by the loop.
            let held = format!("{per_image} of {per_image} groups held on the device for CLEAN");
            assert_eq!(text.matches(&held).count(), 3 / per_image, "{name}: {text}");
            assert!(!text.contains(" failed ("), "{name}: {text}");
            let s = summary_json(&c.output.dir);
            let stages = &s["ranks"][0]["stage_s"];
            assert_eq!(
                stages["hold_ahead"].as_f64().is_some(),
                want > 0,
                "{name}: {s}"
            );
            // The reader weighted the groups of the Briggs images of one group.
            let reader_weighted = weighting == briggs && per_image == 1;
            assert_eq!(
                stages["reweight"].as_f64().is_some(),
                reader_weighted,
                "{name}: {s}"
            );
            outputs.push(images(&c.output.dir));
        }
        assert_same_images(&outputs[0], &outputs[1]);
    }
}

/// The images `b` equal `a` (the CPU run's) within `tol` of `a`'s dirty peak, product by
/// product; returns that peak.
fn assert_images_within(a: &[PathBuf], b: &[PathBuf], tol: f32) -> f32 {
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len());
    let dirty = a
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".dirty.fits"))
        .expect("a dirty image");
    let peak = read_fits(dirty)
        .data
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    for (pa, pb) in a.iter().zip(b) {
        let (x, y) = (read_fits(pa).data, read_fits(pb).data);
        let worst = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        println!(
            "{}: max |gpu - cpu| {worst:.2e} ({:.1e} of the dirty peak {peak:.4})",
            pa.file_name().unwrap().to_string_lossy(),
            worst / peak
        );
        assert!(
            worst <= tol * peak,
            "{} vs {}: max difference {worst} of the dirty peak {peak}",
            pa.display(),
            pb.display()
        );
    }
    peak
}

/// The device and its budget a rank's summary names (`compute`: "gpu N (name, sm_XY, F of
/// T GiB free, budget B GiB)"): (N, F, B).
fn device_of(rank: &serde_json::Value) -> (usize, f64, f64) {
    let c = rank["compute"].as_str().unwrap_or_default();
    let number_after = |key: &str| -> f64 {
        let i = c.find(key).unwrap_or_else(|| panic!("{key:?} in {c:?}")) + key.len();
        let word = c[i..].split([' ', ',', ')']).next().unwrap();
        word.parse()
            .unwrap_or_else(|_| panic!("{word:?} after {key:?} in {c:?}"))
    };
    let free = c
        .split(", ")
        .find(|p| p.ends_with(" GiB free"))
        .and_then(|p| p.split(' ').next())
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("free memory in {c:?}"));
    (number_after("gpu ") as usize, free, number_after("budget "))
}

/// Issue 21, deliverable 3, on a GPU machine with MPI or on the emulated driver
/// (`CONTIMG_EXPECT_GPU`): two ranks on one device (each opens it with 80 % of its free
/// memory split between them) and, where the driver offers several devices
/// (kernels/host/emulator.cpp's `CONTIMG_EMULATOR_DEVICES`), two ranks on two devices (each
/// on its own, with 80 % of it). A joint image of three groups spread over the ranks: each
/// rank flags, holds and re-grids its groups on its device, and the grids, the uv density
/// and CLEAN's major cycles are reduced over the ranks; the images equal the same two
/// ranks' `gpu: off` run's within the device test's bound (3e-7 of the dirty peak), and
/// the two device layouts give the same images.
#[test]
fn ranks_share_a_device_or_spread_over_several() {
    use contimg::compute::GpuMode;
    if std::env::var("CONTIMG_EXPECT_GPU").is_err() {
        contimg::compute::note_skipped_test("ranks_share_a_device_or_spread_over_several: no GPU (set CONTIMG_EXPECT_GPU on a machine with one)");
        return;
    }
    assert!(
        mpirun_available(),
        "mpirun is required (scripts/setup.sh installs OpenMPI)"
    );
    let dir = tempfile::tempdir().unwrap();
    let briggs = contimg::imaging::weighting::Weighting::Briggs;
    let mut c = night_config(dir.path(), 3, briggs, 1);
    c.imaging.niter = 200;
    c.imaging.epsilon = 1e-7;
    c.imaging.cycle_epsilon = 1e-7;
    simulate_night(&c, dir.path());
    let mut run = |name: &str, mode: GpuMode, devices: &str| {
        c.compute.gpu = mode;
        let cfg = dir.path().join(format!("{name}.yaml"));
        write_config(&c, &cfg);
        let out = dir.path().join(format!("out-{name}"));
        let envs = [
            ("RUST_LOG", "contimg=debug"),
            ("CONTIMG_EMULATOR_DEVICES", devices),
        ];
        let (code, text) = run_mpi_with(2, &cfg, &out, &envs);
        assert_eq!(code, 0, "{name}: {text}");
        let s = summary_json(&out);
        assert_eq!(s["n_ranks"], 2, "{name}");
        assert_eq!(s["complete"], true, "{name}");
        assert_eq!(s["groups_ok"], 3, "{name}");
        (s, text, images(&out))
    };
    let (_, _, cpu) = run("cpu", GpuMode::Off, "1");
    let mut layouts = Vec::new();
    let mut emulated = false;
    for devices in [1usize, 2] {
        if devices == 2 && !emulated {
            contimg::compute::note_skipped_test("ranks_share_a_device_or_spread_over_several: two devices on the emulated driver only");
            break;
        }
        let name = format!("gpu-{devices}");
        let (s, text, imgs) = run(&name, GpuMode::Required, &devices.to_string());
        let ranks = s["ranks"].as_array().unwrap();
        emulated = ranks[0]["compute"].to_string().contains("emulated device");
        for (r, rank) in ranks.iter().enumerate() {
            let (ordinal, free, budget) = device_of(rank);
            println!("{name}: rank {r}: {}", rank["compute"]);
            // Local ranks take the devices round-robin; a device's ranks split 80 % of
            // its free memory (rounded to 0.1 GiB in the line).
            assert_eq!(ordinal, r % devices, "{name}: {rank}");
            let sharing = 2 / devices;
            let want = 0.8 * free / sharing as f64;
            assert!(
                (budget - want).abs() <= 0.15,
                "{name}: budget {budget} GiB, {want} expected: {rank}"
            );
            // Every step on the device, nothing fell back to the CPU.
            let own = |needle: &str| {
                text.lines()
                    .any(|l| l.contains(&format!("rank {r}/2]")) && l.contains(needle))
            };
            assert!(
                own("groups held on the device for CLEAN"),
                "{name}, rank {r}: {text}"
            );
            assert!(own(") held on gpu"), "{name}, rank {r}: {text}");
        }
        assert!(
            !text.contains(" failed (") && !text.contains("on the CPU"),
            "{name}: {text}"
        );
        layouts.push(imgs);
    }
    let peak = assert_images_within(&cpu, &layouts[0], 3e-7);
    assert!(peak > 0.1, "dirty peak {peak}");
    if let [one, two] = &layouts[..] {
        assert_same_images(one, two);
    }
}

#[test]
fn bad_groups_are_skipped_and_the_night_completes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = small_config(d);
    c.simulate.n_groups = 4;
    c.simulate.noise.enabled = true;
    c.input.n_subbands = 2;
    let cfg = d.join("c.yaml");
    write_config(&c, &cfg);
    let night = c.input.dir.clone();
    contimg::simulate::run(&c, &night).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&night)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .collect();
    files.sort();
    // Group 0 (files 0, 1): remove one subband -> incomplete.
    std::fs::remove_file(&files[0]).unwrap();
    // Group 1 (files 2, 3): corrupt one file -> unreadable, the group is reported.
    std::fs::write(&files[3], b"corrupt").unwrap();
    // Group 2 (files 4, 5): a duplicate of its sb01 under another name -> duplicate subband.
    let (t5, _) =
        contimg::discover::parse_name(files[5].file_name().unwrap().to_str().unwrap()).unwrap();
    let dup_name = format!(
        "{}_sb01.hdf5",
        contimg::primitives::time::jd_to_iso(t5 + 1.0 / 86400.0, 0)
    );
    std::fs::copy(&files[5], night.join(&dup_name)).unwrap();
    // Group 3 stays good.
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    println!("{text}");
    assert_eq!(code, 3, "an incomplete night exits 3: {text}");
    let s = summary_json(&d.join("out"));
    assert_eq!(s["complete"], false);
    assert_eq!(s["groups_ok"], 1, "{s:#}");
    let skipped = s["groups_skipped"].to_string();
    assert!(skipped.contains("missing sb00"), "{skipped}");
    assert!(skipped.contains("duplicate subband sb01"), "{skipped}");
    assert!(
        skipped.contains("missing sb01") && skipped.contains("unreadable"),
        "{skipped}"
    );
    let bad = s["bad_files"].to_string();
    assert!(
        bad.contains(files[3].file_name().unwrap().to_str().unwrap()),
        "{bad}"
    );
    assert_eq!(images(&d.join("out")).len(), 7);
}

#[test]
fn bad_config_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, "imaging: {npix: [1, 2}\n").unwrap();
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains("bad.yaml") && text.contains("invalid YAML"),
        "{text}"
    );
    assert!(!text.contains("panicked"));
    std::fs::write(&cfg, "imaging: {npix: 7}\n").unwrap();
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(text.contains("imaging.npix"), "{text}");
}

#[test]
fn missing_input_dir_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config(dir.path());
    c.input.dir = dir.path().join("nope");
    let cfg = dir.path().join("c.yaml");
    write_config(&c, &cfg);
    let (code, text) = run_bin(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("nope") && !text.contains("panicked"),
        "{text}"
    );
}

#[test]
fn shipped_configs_load() {
    for name in ["default.yaml", "demo.yaml"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs")
            .join(name);
        let c = contimg::config::Config::load(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name == "default.yaml" {
            // Its relative directories are taken from configs/ (tests/settings.rs checks the
            // text against `contimg config`).
            let mut d = contimg::config::Config::default();
            d.input.dir = p.parent().unwrap().join("night");
            d.output.dir = p.parent().unwrap().join("out");
            assert_eq!(c, d, "configs/default.yaml must list the defaults");
        }
    }
    // The demo images as deeply as its QA gates ask.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let c = contimg::config::Config::load(&dir.join("demo.yaml")).expect("demo.yaml");
    assert_eq!(c.imaging.nterms, 3);
    assert_eq!(
        c.imaging.predict,
        contimg::imaging::deconvolve::PredictMode::Auto
    );
    assert_eq!(
        c.imaging.drift_beam,
        contimg::imaging::aterm::DriftMode::Cubic
    );
    assert!(c
        .imaging
        .outlier_catalog
        .is_some_and(|p| p.ends_with("demo-out/night/sky.csv")));
    // The demo calibrates on the field around 3C147 (the simulated sky's catalogue).
    assert!(c
        .calibration
        .model_catalog
        .is_some_and(|p| p.ends_with("demo-out/night/sky.csv")));
    assert!(c.calibration.model_radius_deg >= 2.0);
}
