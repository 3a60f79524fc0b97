//! Unit tests of the group loader (src/uvh5/group.rs).
use super::scatter::CHUNK;
use super::*;

#[test]
fn a_group_larger_than_the_memory_is_refused_before_it_is_read() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyuvdata_small.uvh5");
    let files = [f.as_path()];
    let (g, _) = load_group_limited(&files, ReadPath::Auto, BLOCK_BYTES, None, None).unwrap();
    let need = g.vis.len() as u64 * GROUP_BYTES_PER_SAMPLE;
    // Room for the group and one file's arrays: read as without a limit.
    let (h, _) =
        load_group_limited(&files, ReadPath::Auto, BLOCK_BYTES, Some(3 * need), None).unwrap();
    assert_eq!(h.vis, g.vis);
    for how in [ReadPath::Auto, ReadPath::Library] {
        let e = load_group_limited(&files, how, BLOCK_BYTES, Some(need - 1), None).unwrap_err();
        assert!(matches!(e, LoadError::Memory { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("pyuvdata_small.uvh5") && msg.contains("GiB of memory is available"),
            "{msg}"
        );
    }
}

#[test]
fn a_reused_group_buffer_is_overwritten_entirely() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pyuvdata_small.uvh5");
    let files = [f.as_path()];
    for how in [ReadPath::Auto, ReadPath::Library] {
        let (g, routes) = load_group_limited(&files, how, BLOCK_BYTES, None, None).unwrap();
        let mut spare = g.clone();
        spare.vis.fill(Complex32::new(f32::NAN, 7.0));
        spare.weight.fill(half::f16::from_f32(-3.0));
        let (vis_ptr, w_ptr) = (spare.vis.as_ptr(), spare.weight.as_ptr());
        let (h, _) = load_group_reusing(&files, how, spare).unwrap();
        assert_eq!((h.vis.as_ptr(), h.weight.as_ptr()), (vis_ptr, w_ptr));
        assert!(
            h.vis
                .iter()
                .zip(&g.vis)
                .all(|(a, b)| a.re.to_bits() == b.re.to_bits() && a.im.to_bits() == b.im.to_bits())
                && h.weight == g.weight
        );
        // Another size: new buffers, the same group.
        let mut small = g.clone();
        small.vis.truncate(3);
        small.weight = crate::core::Weights::from_stored(small.weight[..3].to_vec(), 1.0);
        let (k, _) = load_group_reusing(&files, how, small).unwrap();
        assert_eq!((k.vis.len(), k.weight), (g.vis.len(), g.weight.clone()));
        // A reused buffer needs no new memory for the group.
        let need = g.vis.len() as u64 * GROUP_BYTES_PER_SAMPLE;
        let spare = g.clone();
        let res = load_group_limited(
            &files,
            how,
            BLOCK_BYTES,
            Some(need / 2),
            Some((spare.vis, spare.weight.into_stored())),
        );
        // Direct reads need nothing beside a reused group; the library one file's arrays
        // (13 bytes a sample, more than need / 2).
        let direct = routes.iter().all(|r| r.fully_direct());
        assert_eq!(res.is_ok(), direct, "{how:?}");
    }
}

/// The direct path's chunked scatter against the library path's per-sample one: the same
/// group, bit for bit, for a file's channels ascending, descending (as the correlator writes
/// them; both stored as runs), permuted (stored channel by channel) and shifted off the
/// streaming stores' alignment in a wider group, more channels than one chunk, both polarization orders
/// and conjugated baselines, with NaN, zero, flagged and invalid-nsamples samples.
#[test]
fn the_chunked_scatter_matches_the_per_sample_one() {
    let (nbl, nt, nf) = (5, 3, CHUNK + 37);
    let n = nbl * nf * 2; // one integration of the file (bl, chan, pol)
    let vis: Vec<Complex32> = (0..n)
        .map(|i| match i % 29 {
            3 => Complex32::new(f32::NAN, 1.0),
            7 => Complex32::new(0.0, 0.0),
            11 => Complex32::new(f32::INFINITY, 0.5),
            _ => Complex32::new(i as f32 * 0.25 - 3.0, 1.5 - i as f32 * 0.125),
        })
        .collect();
    let flags: Vec<u8> = (0..n).map(|i| u8::from(i % 13 == 5)).collect();
    let nsamples: Vec<f32> = (0..n)
        .map(|i| match i % 17 {
            2 => 0.0,
            4 => -1.0,
            6 => 2.0 * MAX_NSAMPLES,
            8 => f32::NAN,
            _ => 0.5 + (i % 5) as f32,
        })
        .collect();
    let conj: Vec<bool> = (0..nbl).map(|b| b % 2 == 1).collect();
    let up: Vec<usize> = (0..nf).collect();
    let down: Vec<usize> = (0..nf).rev().collect();
    let mixed: Vec<usize> = (0..nf).map(|c| (c * 7) % nf).collect(); // 7 and nf coprime
                                                                     // Runs that start off a 16-byte boundary in a wider group (other files' channels below).
    let shifted_up: Vec<usize> = (3..nf + 3).collect();
    let shifted_down: Vec<usize> = (3..nf + 3).rev().collect();
    for cmap in [&up, &down, &mixed, &shifted_up, &shifted_down] {
        let nch = cmap.iter().max().unwrap() + 1;
        for pol_map in [[0usize, 1], [1, 0]] {
            for (fl, ns) in [(true, true), (false, false), (true, false)] {
                let d = Dims {
                    nbl,
                    nt,
                    nch,
                    pol_map: &pol_map,
                    conj: &conj,
                };
                let part = Part {
                    vis: &vis,
                    flags: fl.then_some(flags.as_slice()),
                    nsamples: ns.then_some(nsamples.as_slice()),
                    cmap,
                    nf,
                };
                let len = nbl * nt * nch * 2;
                let (mut rv, mut rw) = (vec![Complex32::new(9.0, 9.0); len], vec![f16::ONE; len]);
                let want = scatter(&mut rv, &mut rw, std::slice::from_ref(&part), 1, 1, &d);
                let (mut dv, mut dw) = (vec![Complex32::new(9.0, 9.0); len], vec![f16::ONE; len]);
                let out = GroupOut {
                    vis: dv.as_mut_ptr(),
                    weight: dw.as_mut_ptr(),
                    len,
                };
                // The per-sample scatter reads the block (integration 1 only) from row 0.
                // SAFETY: one thread; `out` covers the group's whole arrays.
                let got = unsafe { scatter_run(&out, &part, 1, 0..nbl, &d) };
                assert_eq!(got, want[0], "counts, {cmap:?} {pol_map:?}");
                assert!(want[0][0] > 0 && (!ns || want[0][1] > 0));
                let bits = |v: &[Complex32]| {
                    v.iter()
                        .map(|x| (x.re.to_bits(), x.im.to_bits()))
                        .collect::<Vec<_>>()
                };
                assert!(
                    bits(&dv) == bits(&rv),
                    "visibilities, {pol_map:?} {fl} {ns}"
                );
                assert!(dw == rw, "weights, {pol_map:?} {fl} {ns}");
            }
        }
    }
}
