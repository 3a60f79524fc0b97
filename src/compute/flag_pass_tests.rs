use super::*;
use crate::compute::host_kernels::{host_kernels, run_host, run_host_threads};
use crate::compute::vectors;

#[test]
fn noise_twin_matches_the_vectors() {
    let v = vectors::noise();
    let mut scratch = Vec::new();
    for (p, want) in v.expected_sigma.iter().enumerate() {
        let r = p * v.tf..(p + 1) * v.tf;
        let got = plane_noise(
            &v.values[r.clone()],
            &v.bg[r.clone()],
            &v.mask[r],
            &mut scratch,
        );
        assert_eq!(
            got.map(f64::to_bits),
            want.map(f64::to_bits),
            "plane {p}: {got:?} against {want:?}"
        );
    }
    let mut values = v.values.clone();
    let used = normalise_planes(&mut values, &v.bg, &v.mask, v.tf);
    assert_eq!(used, v.expected_used);
    // The vectors cover usable planes and each way of being unusable.
    assert_eq!(used.iter().filter(|&&u| u).count(), 6, "{used:?}");
    assert!(v.expected_sigma.contains(&None) && v.expected_sigma.contains(&Some(0.0)));
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&values), bits(&v.expected));
}

#[test]
fn sir_twin_matches_the_definition() {
    let v = vectors::sir();
    let before = v.flags.iter().filter(|&&f| f).count();
    for (eta, extend, want) in &v.expected {
        let mut got = v.flags.clone();
        sir_planes_cpu(&mut got, v.nt, v.nf, *eta, *extend);
        assert_eq!(&got, want, "eta {eta}, extend {extend}");
        // Each setting dilates the vectors' flags.
        assert!(want.iter().filter(|&&f| f).count() > before);
    }
}

#[test]
fn threshold_values_zero_the_cells_and_take_the_sign() {
    let res = [1.0f32, -2.0, 3.0, 4.0, -5.0, 6.0];
    let cells = [false, true, false];
    assert_eq!(
        threshold_values(&res, &cells, -1.0, 3),
        [-1.0, 0.0, -3.0, -4.0, 0.0, -6.0]
    );
    assert_eq!(threshold_values(&res, &[], 1.0, 3), res);
}

/// The pass on the CPU equals its steps run one by one: backgrounds, noise, and
/// SumThreshold of both signs with the cells at zero.
#[test]
fn composed_pass_equals_its_steps() {
    let v = vectors::flag_pass(3, 0.5);
    let (nt, nf, tf) = (v.nt, v.nf, v.nt * v.nf);
    let job = FlagPass {
        nt,
        nf,
        smoothing: v.smoothing,
        mask: &v.mask,
        cells: &v.cells,
        sumthreshold: Some((v.schedule, true)),
    };
    let mut values = v.amp.clone();
    let out = crate::compute::Cpu
        .flag_pass(&job, &mut values, &v.flags)
        .unwrap();
    let found = out.found.unwrap();

    let bg = crate::compute::Cpu
        .background_planes(&v.amp, &v.mask, nt, nf, &v.smoothing)
        .unwrap();
    let mut res = v.amp.clone();
    assert_eq!(normalise_planes(&mut res, &bg, &v.mask, tf), out.used);
    assert_eq!(res, values);
    let mut want = v.flags.clone();
    for sign in [1.0f32, -1.0] {
        let x: Vec<f32> = res
            .iter()
            .enumerate()
            .map(|(i, &r)| if v.cells[i % tf] { 0.0 } else { sign * r })
            .collect();
        let mut f = v.flags.clone();
        crate::compute::Cpu
            .sumthreshold_planes(&x, &mut f, nt, nf, &v.schedule)
            .unwrap();
        want.iter_mut().zip(f).for_each(|(w, f)| *w |= f);
    }
    assert_eq!(found, want);
    // The lines injected in the vectors are found.
    assert!(found.iter().filter(|&&f| f).count() > v.flags.iter().filter(|&&f| f).count());
}

/// The kernels of residuals.cu and sir.cu, compiled for the host through kernels/host
/// (one thread a block, and plane_noise also with the device's block of concurrent
/// threads) and run on the shared vectors, give the twins' results bit for bit.
#[test]
fn noise_and_sir_kernels_run_on_the_host_match_the_vectors() {
    let Some(run) = host_kernels() else { return };
    let v = vectors::noise();
    let planes = v.expected_used.len();
    let mut input = Vec::new();
    input.extend((planes as i64).to_le_bytes());
    input.extend((v.tf as i64).to_le_bytes());
    v.values.iter().for_each(|x| input.extend(x.to_le_bytes()));
    v.bg.iter().for_each(|x| input.extend(x.to_le_bytes()));
    input.extend(v.mask.iter().map(|&m| u8::from(m)));
    // As one thread a block, and as the device launches plane_noise.
    for threads in [1, super::NOISE_THREADS as usize] {
        let out = run_host_threads(&run, "noise", threads, &input);
        assert_eq!(out.len(), planes * 9 + v.values.len() * 4);
        let f64_at = |k: usize| f64::from_le_bytes(out[k * 8..k * 8 + 8].try_into().unwrap());
        for p in 0..planes {
            assert_eq!(
                f64_at(p).to_bits(),
                v.expected_sigma[p].unwrap_or(0.0).to_bits(),
                "plane {p}"
            );
            assert_eq!(out[planes * 8 + p] != 0, v.expected_used[p], "plane {p}");
        }
        let res: Vec<u32> = out[planes * 9..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            res,
            v.expected.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{threads} threads a block"
        );
    }

    let s = vectors::sir();
    let planes = s.flags.len() / (s.nt * s.nf);
    for (eta, extend, want) in &s.expected {
        let mut input = Vec::new();
        for x in [planes as i64, s.nt as i64, s.nf as i64] {
            input.extend(x.to_le_bytes());
        }
        input.extend(eta.to_le_bytes());
        input.extend(i64::from(*extend).to_le_bytes());
        input.extend(s.flags.iter().map(|&f| u8::from(f)));
        let out = run_host(&run, "sir", &input);
        let got: Vec<bool> = out.iter().map(|&x| x != 0).collect();
        assert_eq!(&got, want, "eta {eta}, extend {extend}");
    }
    let _ = std::fs::remove_dir_all(run.parent().unwrap());
}

/// SumThreshold's schedule and the masked backgrounds (linear and constant), as
/// device_flag.rs launches sumthreshold.cu and background.cu, run on the host against the
/// CPU backend: SumThreshold's flags equal, the backgrounds within two f32 ulps (the CPU's
/// first pass sums differently near flags, see flagging::binary_fit_line).
#[test]
fn sumthreshold_and_background_kernels_run_on_the_host_match_the_cpu() {
    let Some(run) = host_kernels() else { return };
    let v = vectors::flag_pass(3, 0.5);
    let (nt, nf) = (v.nt, v.nf);
    let planes = v.amp.len() / (nt * nf);
    let head = |input: &mut Vec<u8>| {
        for x in [planes, nt, nf] {
            input.extend((x as i64).to_le_bytes());
        }
    };
    let flag_bytes = |input: &mut Vec<u8>, f: &[bool]| input.extend(f.iter().map(|&f| u8::from(f)));
    let f32s =
        |input: &mut Vec<u8>, x: &[f32]| x.iter().for_each(|x| input.extend(x.to_le_bytes()));

    let sched = v.schedule;
    let mut input = Vec::new();
    head(&mut input);
    let windows: Vec<(usize, f32)> = sched.windows().collect();
    for x in [sched.max_m_time, sched.max_m_freq, windows.len()] {
        input.extend((x as i64).to_le_bytes());
    }
    for &(m, thr) in &windows {
        input.extend((m as i64).to_le_bytes());
        input.extend(thr.to_le_bytes());
    }
    // Residual-like values: the amplitudes about their mean, in units of their spread.
    let values: Vec<f32> = v.amp.iter().map(|a| (a - 0.8) * 2.5).collect();
    f32s(&mut input, &values);
    flag_bytes(&mut input, &v.flags);
    let got: Vec<bool> = run_host(&run, "sumthreshold", &input)
        .iter()
        .map(|&x| x != 0)
        .collect();
    let mut want = v.flags.clone();
    crate::compute::Cpu
        .sumthreshold_planes(&values, &mut want, nt, nf, &sched)
        .unwrap();
    assert!(want.iter().filter(|&&f| f).count() > v.flags.iter().filter(|&&f| f).count());
    assert_eq!(got, want);

    for linear in [false, true] {
        let sm = Smoothing {
            linear,
            ..v.smoothing
        };
        let mut input = Vec::new();
        head(&mut input);
        input.extend(i64::from(linear).to_le_bytes());
        for sigma in [sm.sigma_t, sm.sigma_f] {
            let taps = crate::compute::flagging::gaussian_taps(sigma);
            input.extend((taps.len() as i64).to_le_bytes());
            taps.iter().for_each(|x| input.extend(x.to_le_bytes()));
        }
        f32s(&mut input, &v.amp);
        flag_bytes(&mut input, &v.mask);
        let got: Vec<f32> = run_host(&run, "background", &input)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let want = crate::compute::Cpu
            .background_planes(&v.amp, &v.mask, nt, nf, &sm)
            .unwrap();
        // Equal here; the f64 sums may differ by ~1e-13, which can move an f32 by an ulp.
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(err < 2.5e-7, "linear {linear}: {err}");
    }
    let _ = std::fs::remove_dir_all(run.parent().unwrap());
}
