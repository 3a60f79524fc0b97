//! Discovery and grouping: finds `YYYY-MM-DDTHH:MM:SS_sbNN.hdf5` files, pre-groups them by
//! file-name time (each node's clock differs by seconds), then decides groups by
//! `Header/time_array[0]`, which is identical in all files of a group.

use crate::primitives::time::{iso_to_jd, jd_to_iso};
use crate::uvh5::{read_time0, Uvh5Error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One file of a cluster: (file-name time (JD), subband, path, its `time_array[0]` or why
/// it could not be read).
type ClusterFile = (f64, usize, PathBuf, Result<f64, Uvh5Error>);

/// Files whose `time_array[0]` differ by less than this (days, ~0.09 s) are one group.
const TIME0_TOLERANCE_DAYS: f64 = 1e-6;

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{path}: cannot list input directory ({source})")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupFiles {
    /// Group id: the ISO time of `time_array[0]` (integration centre of the first integration).
    pub id: String,
    pub time0_jd: f64,
    /// Path per subband index (None = missing).
    pub files: Vec<Option<PathBuf>>,
    /// Why the group cannot be processed, if it cannot (missing or duplicate subbands).
    pub problem: Option<String>,
}

impl GroupFiles {
    pub fn present(&self) -> impl Iterator<Item = (usize, &PathBuf)> {
        self.files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|p| (i, p)))
    }
    pub fn missing(&self) -> Vec<usize> {
        self.files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_none())
            .map(|(i, _)| i)
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Discovery {
    /// Groups in time order, including those with problems.
    pub groups: Vec<GroupFiles>,
    /// Files that match the name pattern but could not be read: (path, error).
    pub bad_files: Vec<(PathBuf, String)>,
}

/// Parses `YYYY-MM-DDTHH:MM:SS_sbNN.hdf5` into (JD of the name time, subband).
pub fn parse_name(name: &str) -> Option<(f64, usize)> {
    let stem = name.strip_suffix(".hdf5")?;
    let (time, sb) = stem.rsplit_once("_sb")?;
    if sb.len() != 2 || !sb.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((iso_to_jd(time)?, sb.parse().ok()?))
}

/// Finds and groups the files in `dir`. `n_subbands` is the number a complete group has;
/// with `require_complete`, a group missing any is marked with a problem naming them.
pub fn discover(
    dir: &Path,
    n_subbands: usize,
    require_complete: bool,
    name_tolerance_s: f64,
) -> Result<Discovery, DiscoverError> {
    let named = list_named(dir)?;
    let read = read_clusters(named, name_tolerance_s);
    let mut out = Discovery::default();
    for cluster in merge_clusters(read) {
        groups_of_cluster(cluster, n_subbands, require_complete, &mut out);
    }
    out.groups.sort_by(|a, b| a.time0_jd.total_cmp(&b.time0_jd));
    Ok(out)
}

/// The files of `dir` whose names match the pattern: (file-name time, subband, path), in
/// time, subband and path order.
fn list_named(dir: &Path) -> Result<Vec<(f64, usize, PathBuf)>, DiscoverError> {
    let io = |source| DiscoverError::Io {
        path: dir.into(),
        source,
    };
    let mut named: Vec<(f64, usize, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((t, sb)) = parse_name(&name) {
            named.push((t, sb, e.path()));
        }
    }
    named.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    Ok(named)
}

/// Pre-filters the files into chains of file-name times closer than the tolerance and reads
/// `time_array[0]` of every file, once.
fn read_clusters(
    named: Vec<(f64, usize, PathBuf)>,
    name_tolerance_s: f64,
) -> Vec<Vec<ClusterFile>> {
    let tol = name_tolerance_s / 86_400.0;
    let mut clusters: Vec<Vec<(f64, usize, PathBuf)>> = Vec::new();
    for f in named {
        match clusters.last_mut() {
            Some(c) if f.0 - c.last().expect("non-empty").0 <= tol => c.push(f),
            _ => clusters.push(vec![f]),
        }
    }
    clusters
        .into_iter()
        .map(|c| {
            c.into_iter()
                .map(|(t, sb, p)| {
                    let t0 = read_time0(&p);
                    (t, sb, p, t0)
                })
                .collect()
        })
        .collect()
}

/// Files of one group whose names fell into different clusters (a tolerance below the
/// spread of the nodes' clocks, e.g. 0) join one cluster, so that group ids stay unique.
fn merge_clusters(read: Vec<Vec<ClusterFile>>) -> Vec<Vec<ClusterFile>> {
    let mut root: Vec<usize> = (0..read.len()).collect();
    fn find(root: &mut [usize], mut i: usize) -> usize {
        while root[i] != i {
            root[i] = root[root[i]];
            i = root[i];
        }
        i
    }
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for (ci, c) in read.iter().enumerate() {
        for t0 in c.iter().filter_map(|f| f.3.as_ref().ok()) {
            let key = (t0 / TIME0_TOLERANCE_DAYS).round() as i64;
            for k in [key - 1, key, key + 1] {
                if let Some(&other) = seen.get(&k) {
                    let (a, b) = (find(&mut root, ci), find(&mut root, other));
                    root[a.max(b)] = a.min(b);
                }
            }
            seen.entry(key).or_insert(ci);
        }
    }
    let mut merged: BTreeMap<usize, Vec<ClusterFile>> = BTreeMap::new();
    for (ci, c) in read.into_iter().enumerate() {
        merged.entry(find(&mut root, ci)).or_default().extend(c);
    }
    merged.into_values().collect()
}

/// A file whose `time_array[0]` could not be read: (file-name time, subband, path, why).
type Unreadable = (f64, usize, PathBuf, Uvh5Error);

/// Decides the groups of one cluster by `time_array[0]` into `out` (unreadable files into
/// `out.bad_files`, each explaining the missing subband of the group nearest in time).
fn groups_of_cluster(
    cluster: Vec<ClusterFile>,
    n_subbands: usize,
    require_complete: bool,
    out: &mut Discovery,
) {
    // time_array[0] key -> (its value, the (subband, path) files, their file-name times).
    type ByT0 = BTreeMap<i64, (f64, Vec<(usize, PathBuf)>, Vec<f64>)>;
    let mut by_t0: ByT0 = BTreeMap::new();
    let mut unreadable: Vec<Unreadable> = Vec::new();
    for (name_t, sb, path, t0) in cluster {
        match t0 {
            Ok(t0) => {
                let key = (t0 / TIME0_TOLERANCE_DAYS).round() as i64;
                let slot = [key - 1, key, key + 1]
                    .into_iter()
                    .find(|k| by_t0.contains_key(k))
                    .unwrap_or(key);
                let e = by_t0.entry(slot).or_insert((t0, Vec::new(), Vec::new()));
                e.1.push((sb, path));
                e.2.push(name_t);
            }
            Err(e) => unreadable.push((name_t, sb, path, e)),
        }
    }
    for (_, sb, path, err) in &unreadable {
        log::warn!("sb{sb:02} file {} is unreadable: {err}", path.display());
        // The discovery is a record (broadcast with the plan, reported): the error as text.
        out.bad_files.push((path.clone(), err.to_string()));
    }
    // An unreadable file explains the missing subband of the group whose file names are
    // closest in time to its own.
    let centres: Vec<f64> = by_t0
        .values()
        .map(|(_, _, ts)| ts.iter().sum::<f64>() / ts.len() as f64)
        .collect();
    let owner = |name_t: f64| {
        centres
            .iter()
            .enumerate()
            .min_by(|a, b| (a.1 - name_t).abs().total_cmp(&(b.1 - name_t).abs()))
            .map(|(i, _)| i)
    };
    for (gi, (_, (t0, files, _))) in by_t0.into_iter().enumerate() {
        let mut g = group_of(t0, files, n_subbands);
        let missing = g.missing();
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|m| format!("sb{m:02}")).collect();
            let mut msg = format!("missing {}", names.join(", "));
            for (name_t, sb, path, err) in &unreadable {
                if missing.contains(sb) && owner(*name_t) == Some(gi) {
                    msg.push_str(&format!("; sb{sb:02} {} unreadable: {err}", path.display()));
                }
            }
            if require_complete {
                let p = format!("incomplete group: {msg}");
                g.problem = Some(match g.problem.take() {
                    Some(dup) => format!("{dup}; {p}"),
                    None => p,
                });
            } else {
                log::warn!("group {}: {msg}; imaging the subbands present", g.id);
            }
        }
        out.groups.push(g);
    }
}

/// The group at `time_array[0]` = `t0` of `files` (subband, path): a slot per subband,
/// duplicates as its problem, subbands beyond `n_subbands` ignored with a warning.
fn group_of(t0: f64, files: Vec<(usize, PathBuf)>, n_subbands: usize) -> GroupFiles {
    let mut slots: Vec<Option<PathBuf>> = vec![None; n_subbands];
    let mut problems = Vec::new();
    for (sb, path) in files {
        if sb >= n_subbands {
            // A stray file (e.g. sb16) does not spoil the group's real subbands.
            log::warn!(
                "{}: subband sb{sb:02} is beyond input.n_subbands = {n_subbands}: file ignored",
                path.display()
            );
            continue;
        }
        if let Some(prev) = &slots[sb] {
            problems.push(format!(
                "duplicate subband sb{sb:02}: {} and {}",
                prev.display(),
                path.display()
            ));
            continue;
        }
        slots[sb] = Some(path);
    }
    GroupFiles {
        id: jd_to_iso(t0, 1),
        time0_jd: t0,
        files: slots,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_names() {
        let (t, sb) = parse_name("2026-03-14T05:00:02_sb07.hdf5").unwrap();
        assert_eq!(sb, 7);
        assert_eq!(jd_to_iso(t, 0), "2026-03-14T05:00:02");
        assert!(parse_name("2026-03-14T05:00:02_sb7.hdf5").is_none());
        assert!(parse_name("notes.txt").is_none());
        assert!(parse_name("2026-03-14T05:00:02_sb07.h5").is_none());
    }
}

/// `input:` in the settings file: where the night's UVH5 files are and how they are grouped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// Directory searched (not recursively) for `YYYY-MM-DDTHH:MM:SS_sbNN.hdf5` files.
    pub dir: PathBuf,
    /// Subbands a complete group has (sb00..sb{n-1}); DSA-110 writes 16.
    pub n_subbands: usize,
    /// Skip groups missing any subband (true, the telescope pipeline's default) or image
    /// what is there (false). Missing subbands are reported either way.
    pub require_complete_groups: bool,
    /// File-name times within this many seconds may belong to one group (pre-filter only;
    /// groups are decided by `Header/time_array[0]`).
    pub filename_tolerance_s: f64,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            dir: PathBuf::from("night"),
            n_subbands: 16,
            require_complete_groups: true,
            filename_tolerance_s: 120.0,
        }
    }
}

impl InputConfig {
    /// Checks every option for range and finiteness; the error names the key.
    pub fn validate(&self) -> Result<(), crate::primitives::check::SettingError> {
        use crate::primitives::check::{closed, count};
        count("input.n_subbands", self.n_subbands, 1, 16)?;
        closed(
            "input.filename_tolerance_s",
            self.filename_tolerance_s,
            0.0,
            3600.0,
        )
    }
}
