//! `flags/<group>.h5`: a group's final flags for inspection and re-use.
//!
//! Schema: `flags` u8 (time, baseline, channel, polarization), 1 = flagged, channels
//! ascending, polarizations (XX, YY); `ant1`, `ant2` u32 station numbers per baseline
//! (ant1 <= ant2, autocorrelations included); `time_jd` f64 (UTC JD, integration centres);
//! `freq_hz` f64 (ascending). Written to a temporary name, then renamed.

use crate::core::GroupVis;
use std::path::Path;

pub fn write_flags(path: &Path, g: &GroupVis) -> Result<(), hdf5::Error> {
    let (nt, nf, np, nb) = (g.n_times(), g.n_chan(), g.npol, g.baselines.len());
    let mut flags = vec![0u8; nt * nb * nf * np];
    for b in 0..nb {
        for t in 0..nt {
            for c in 0..nf {
                for p in 0..np {
                    flags[((t * nb + b) * nf + c) * np + p] =
                        u8::from(g.weight[g.index(b, t, c, p)] == crate::core::FLAGGED);
                }
            }
        }
    }
    let station = |a: usize| g.antenna_names[a].parse::<u32>().unwrap_or(a as u32 + 1);
    let ant1: Vec<u32> = g.baselines.iter().map(|&(a, _)| station(a)).collect();
    let ant2: Vec<u32> = g.baselines.iter().map(|&(_, b)| station(b)).collect();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let f = hdf5::File::create(&tmp)?;
        f.new_dataset::<u8>()
            .shape([nt, nb, nf, np])
            .create("flags")?
            .write_raw(&flags)?;
        f.new_dataset::<u32>()
            .shape([nb])
            .create("ant1")?
            .write_raw(&ant1)?;
        f.new_dataset::<u32>()
            .shape([nb])
            .create("ant2")?
            .write_raw(&ant2)?;
        f.new_dataset::<f64>()
            .shape([nt])
            .create("time_jd")?
            .write_raw(&g.times_jd)?;
        f.new_dataset::<f64>()
            .shape([nf])
            .create("freq_hz")?
            .write_raw(&g.freqs)?;
    }
    std::fs::rename(&tmp, path)
        .map_err(|e| hdf5::Error::from(format!("{}: {e}", path.display()).as_str()))
}
