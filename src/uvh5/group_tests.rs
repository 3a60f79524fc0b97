//! Unit tests of the group loader (src/uvh5/group.rs).
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
