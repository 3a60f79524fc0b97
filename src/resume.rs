//! Resuming a night. Rerunning the same command skips what is done and retries what failed:
//!
//! - an image is done when `images/<name>.done.json` exists, names every product (each
//!   present with the size and checksum the marker records: a damaged or zeroed product
//!   is recomputed), and carries the same input hash: the contimg version, the config
//!   sections that shape the image and each of its files' path, size and modification
//!   time. A changed config, file or version recomputes just the images it affects. The
//!   image's owner writes the marker after the products, atomically, so a killed run
//!   leaves no marker for a half-written image;
//! - failed groups are recorded by rank 0 (the one writer) in `state/<group>.json` with
//!   their error and attempt count; past `output.max_retries` attempts they are skipped
//!   with their last error;
//! - the calibration solve is skipped when the registry already holds a valid table
//!   covering the transit.

use crate::calibrate::CalConfig;
use crate::flag::FlagConfig;
use crate::imaging::settings::ImagingConfig;
use crate::plan::Plan;
use crate::primitives::iers::AstrometryConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The stable hash of the input hashes (now in primitives, re-exported at its old path).
pub use crate::primitives::fnv64;

/// What resuming reads of the settings (the settings layer builds this from its `Config`):
/// the sections that shape an image (hashed) and `output.{dir, resume, max_retries}`.
#[derive(Debug, Clone, Copy)]
pub struct ResumeInputs<'a> {
    pub imaging: &'a ImagingConfig,
    pub flagging: &'a FlagConfig,
    pub calibration: &'a CalConfig,
    pub astrometry: &'a AstrometryConfig,
    /// `input.n_subbands`.
    pub n_subbands: usize,
    /// `output.dir`, `output.resume`, `output.max_retries`.
    pub out_dir: &'a Path,
    pub enabled: bool,
    pub max_retries: usize,
}

/// The input hash of image `i` of the plan.
pub fn image_hash(cfg: &ResumeInputs, plan: &Plan, i: usize) -> String {
    let mut text = serde_json::to_string(&(
        crate::VERSION,
        cfg.imaging,
        cfg.flagging,
        cfg.calibration,
        cfg.astrometry,
        cfg.n_subbands,
    ))
    .expect("config serialises");
    for &g in &plan.images[i].groups {
        for f in plan.groups[g].files.iter().flatten() {
            let meta = std::fs::metadata(f).ok();
            let mtime = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            text += &format!(
                "|{}:{}:{}",
                f.display(),
                meta.map(|m| m.len()).unwrap_or(0),
                mtime
            );
        }
    }
    format!("{:016x}", fnv64(text.as_bytes()))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DoneMarker {
    pub hash: String,
    pub groups: Vec<String>,
    pub products: Vec<PathBuf>,
    /// Per product: size (bytes) and `checksum64` (hex), verified before a rerun skips it.
    #[serde(default)]
    pub checksums: Vec<(u64, String)>,
}

impl DoneMarker {
    /// A marker for products just written (their checksums read back from disk).
    pub fn new(
        hash: String,
        groups: Vec<String>,
        products: Vec<PathBuf>,
    ) -> std::io::Result<DoneMarker> {
        let checksums = products
            .iter()
            .map(|p| file_checksum(p))
            .collect::<std::io::Result<_>>()?;
        Ok(DoneMarker {
            hash,
            groups,
            products,
            checksums,
        })
    }
}

/// A fast 64-bit checksum of bytes: FNV-1a over little-endian 8-byte words (and the tail
/// bytes), then the length; not cryptographic: it finds damaged or zeroed files.
pub fn checksum64(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    for w in words {
        h = (h ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))).wrapping_mul(0x0100_0000_01b3);
    }
    for &b in tail {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ bytes.len() as u64).wrapping_mul(0x0100_0000_01b3)
}

/// Size and checksum of a file.
pub fn file_checksum(path: &Path) -> std::io::Result<(u64, String)> {
    let bytes = std::fs::read(path)?;
    Ok((bytes.len() as u64, format!("{:016x}", checksum64(&bytes))))
}

pub fn marker_path(images_dir: &Path, name: &str) -> PathBuf {
    images_dir.join(format!("{name}.done.json"))
}

/// Whether the image's products are complete and from the same inputs.
pub fn is_done(images_dir: &Path, name: &str, hash: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(marker_path(images_dir, name)) else {
        return false;
    };
    let Ok(m) = serde_json::from_str::<DoneMarker>(&text) else {
        return false;
    };
    if m.hash != hash || m.products.is_empty() || m.checksums.len() != m.products.len() {
        return false;
    }
    // Re-verified: size first (cheap), then the checksum of the bytes on disk.
    m.products.iter().zip(&m.checksums).all(|(p, (size, sum))| {
        let intact = std::fs::metadata(p).is_ok_and(|md| md.len() == *size) && file_checksum(p).is_ok_and(|c| c.1 == *sum);
        if !intact && p.exists() {
            log::warn!("resume: {} changed since it was written (size or checksum): its image is recomputed", p.display());
        }
        intact
    })
}

pub fn write_done(images_dir: &Path, name: &str, marker: &DoneMarker) -> std::io::Result<()> {
    crate::products::write_atomic(
        &marker_path(images_dir, name),
        serde_json::to_string_pretty(marker)
            .expect("serialises")
            .as_bytes(),
    )
}

/// A group's last failure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupState {
    pub id: String,
    pub stage: String,
    pub error: String,
    pub attempts: usize,
}

fn state_path(out: &Path, id: &str) -> PathBuf {
    out.join("state").join(format!("{id}.json"))
}

pub fn read_failure(out: &Path, id: &str) -> Option<GroupState> {
    std::fs::read_to_string(state_path(out, id))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Records a failure (rank 0 only), counting attempts.
pub fn record_failure(out: &Path, id: &str, error: &str) -> std::io::Result<()> {
    let attempts = read_failure(out, id).map(|s| s.attempts).unwrap_or(0) + 1;
    let s = GroupState {
        id: id.into(),
        stage: "failed".into(),
        error: error.into(),
        attempts,
    };
    std::fs::create_dir_all(out.join("state"))?;
    crate::products::write_atomic(
        &state_path(out, id),
        serde_json::to_string_pretty(&s)
            .expect("serialises")
            .as_bytes(),
    )
}

/// Clears a group's failure record once it succeeded.
pub fn clear_failure(out: &Path, id: &str) {
    let _ = std::fs::remove_file(state_path(out, id));
}

/// Rank 0, after planning: marks done images, and drops groups that failed too often (they
/// become skipped with their last error; an image left without groups is dropped too).
pub fn apply<'a>(cfg: impl Into<ResumeInputs<'a>>, plan: &mut Plan) {
    let cfg: ResumeInputs = cfg.into();
    if !cfg.enabled {
        return;
    }
    let images_dir = cfg.out_dir.join("images");
    plan.image_hash = (0..plan.images.len())
        .map(|i| image_hash(&cfg, plan, i))
        .collect();
    plan.image_done = {
        use rayon::prelude::*;
        (0..plan.images.len())
            .into_par_iter()
            .map(|i| is_done(&images_dir, &plan.images[i].name, &plan.image_hash[i]))
            .collect()
    };
    for (i, done) in plan.image_done.iter().enumerate() {
        if *done {
            log::info!(
                "resume: image {} is done (inputs unchanged): skipped",
                plan.images[i].name
            );
        }
    }
    for g in &plan.groups {
        if let Some(s) = read_failure(cfg.out_dir, &g.id) {
            if s.attempts >= cfg.max_retries {
                plan.retired.push((
                    g.id.clone(),
                    format!(
                        "failed {} times, not retried (output.max_retries): {}",
                        s.attempts, s.error
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_the_published_function() {
        // FNV-1a 64 test vectors (Fowler, Noll, Vo).
        assert_eq!(fnv64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn markers_need_the_hash_and_every_product() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.fits");
        std::fs::write(&p, b"x").unwrap();
        let m = DoneMarker::new("abc".into(), vec!["g".into()], vec![p.clone()]).unwrap();
        write_done(d.path(), "img", &m).unwrap();
        assert!(is_done(d.path(), "img", "abc"));
        assert!(!is_done(d.path(), "img", "abd"));
        // Defect 11: a product zeroed in place (same size) is not done any more.
        std::fs::write(&p, b"\0").unwrap();
        assert!(!is_done(d.path(), "img", "abc"));
        std::fs::write(&p, b"x").unwrap();
        assert!(is_done(d.path(), "img", "abc"));
        // A marker without checksums (an older contimg's) is not trusted.
        write_done(
            d.path(),
            "img",
            &DoneMarker {
                checksums: vec![],
                ..m.clone()
            },
        )
        .unwrap();
        assert!(!is_done(d.path(), "img", "abc"));
        write_done(d.path(), "img", &m).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(!is_done(d.path(), "img", "abc"));
    }

    #[test]
    fn failures_count_attempts_and_clear() {
        let d = tempfile::tempdir().unwrap();
        record_failure(d.path(), "g1", "bad file").unwrap();
        record_failure(d.path(), "g1", "bad file again").unwrap();
        let s = read_failure(d.path(), "g1").unwrap();
        assert_eq!((s.attempts, s.error.as_str()), (2, "bad file again"));
        clear_failure(d.path(), "g1");
        assert!(read_failure(d.path(), "g1").is_none());
    }
}
