//! The fixed layout of a synthetic night: antennas, correlator baseline order, times and
//! frequencies exactly as the DSA-110 correlator lays them out.

use super::settings::SimConfig;
use super::SimError;
use crate::core::stations::Station;
use crate::primitives::time::iso_to_jd;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// DSA-110 fine channel (Hz) of the F-engine; output channels are `384 / n_channels` of them.
pub const FINE_CHANNEL_HZ: f64 = 30_517.578_125;

/// Frequency (Hz) of channel `c` of subband `s` with `n_channels` per subband (descending in c).
pub fn channel_freq(s: usize, c: usize, n_channels: usize) -> f64 {
    let k = (384 / n_channels) as f64;
    1.53e9 - (1024.0 + 384.0 * s as f64 + k * c as f64 + (k - 1.0) / 2.0) * FINE_CHANNEL_HZ
}

/// The default antenna selection for `n` antennas: spread over the east-west arm (1-51),
/// the north-south arm (52-102) and the outriggers (103-117), always including 103
/// (the reference antenna).
pub fn default_antennas(n: usize) -> Vec<u32> {
    let n = n.clamp(2, 117);
    if n >= 117 {
        return (1..=117).collect();
    }
    // Round-robin over the three arms, each sampled evenly.
    let arms: [Vec<u32>; 3] = [
        (1..=51).collect(),
        (52..=102).collect(),
        (103..=117).collect(),
    ];
    let share = [n * 51 / 117, n * 51 / 117, n - 2 * (n * 51 / 117)];
    let mut out = Vec::with_capacity(n);
    for (arm, &k) in arms.iter().zip(&share) {
        let k = k.min(arm.len());
        for i in 0..k {
            out.push(arm[(i * arm.len()) / k.max(1)]);
        }
    }
    if !out.contains(&103) {
        // Replace the first outrigger with 103.
        if let Some(p) = out.iter().position(|&s| s > 102) {
            out[p] = 103;
        } else {
            out.pop();
            out.push(103);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Antennas, baselines, times and frequencies of a synthetic night.
#[derive(Debug, Clone)]
pub struct NightLayout {
    /// All 117 stations (index = antenna number = station number - 1).
    pub stations: Vec<Station>,
    /// Active antenna numbers (0-based) in correlator order (unsorted).
    pub correlator_order: Vec<usize>,
    /// Baselines (ant_1, ant_2) in correlator order, autocorrelations included.
    pub baselines: Vec<(usize, usize)>,
    /// JD (UTC) of the first integration's start.
    pub start_jd: f64,
    pub integration_s: f64,
    pub n_times: usize,
    pub n_groups: usize,
    pub n_subbands: usize,
    pub n_channels: usize,
}

impl NightLayout {
    pub fn new(cfg: &SimConfig, stations: Vec<Station>, seed: u64) -> Result<Self, SimError> {
        if stations.len() != 117
            || stations
                .iter()
                .enumerate()
                .any(|(i, s)| s.number as usize != i + 1)
        {
            return Err(SimError::Layout(format!(
                "station table must list stations 1..117 once each (found {})",
                stations.len()
            )));
        }
        let active: Vec<u32> = if cfg.antennas.is_empty() {
            default_antennas(cfg.n_antennas)
        } else {
            cfg.antennas.clone()
        };
        if let Some(bad) = active.iter().find(|&&s| s == 0 || s > 117) {
            return Err(SimError::Layout(format!(
                "simulate.antennas: station {bad} is not in 1..117"
            )));
        }
        let mut order: Vec<usize> = active.iter().map(|&s| s as usize - 1).collect();
        order.sort_unstable();
        order.dedup();
        if order.len() < 2 {
            return Err(SimError::Layout(
                "simulate.antennas: need at least two distinct stations".into(),
            ));
        }
        // The correlator's antenna order is not sorted.
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0xC0_77E1));
        let mut baselines = Vec::new();
        for j in 0..order.len() {
            for i in 0..=j {
                baselines.push((order[i], order[j]));
            }
        }
        let start_jd = iso_to_jd(&cfg.start_time)
            .ok_or_else(|| SimError::Layout("simulate.start_time is not an ISO time".into()))?;
        Ok(NightLayout {
            stations,
            correlator_order: order,
            baselines,
            start_jd,
            integration_s: cfg.integration_s,
            n_times: cfg.n_times,
            n_groups: cfg.n_groups,
            n_subbands: cfg.n_subbands,
            n_channels: cfg.n_channels,
        })
    }

    /// JD at the centre of integration `k` of group `g`.
    pub fn time(&self, g: usize, k: usize) -> f64 {
        self.start_jd + ((g * self.n_times + k) as f64 + 0.5) * self.integration_s / 86_400.0
    }

    pub fn group_times(&self, g: usize) -> Vec<f64> {
        (0..self.n_times).map(|k| self.time(g, k)).collect()
    }

    /// JD of group `g`'s start (first integration's start).
    pub fn group_start(&self, g: usize) -> f64 {
        self.start_jd + (g * self.n_times) as f64 * self.integration_s / 86_400.0
    }

    /// All channel frequencies of the group, ascending; index = global channel.
    pub fn freqs_ascending(&self) -> Vec<f64> {
        let mut f: Vec<f64> = (0..self.n_subbands)
            .flat_map(|s| (0..self.n_channels).map(move |c| (s, c)))
            .map(|(s, c)| channel_freq(s, c, self.n_channels))
            .collect();
        f.sort_by(|a, b| a.total_cmp(b));
        f
    }

    /// Global ascending channel index of channel `c` of subband `s`.
    pub fn global_channel(&self, s: usize, c: usize) -> usize {
        let nch = self.n_subbands * self.n_channels;
        nch - 1 - (s * self.n_channels + c)
    }

    pub fn channel_width(&self) -> f64 {
        (384 / self.n_channels) as f64 * FINE_CHANNEL_HZ
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsa110_channel_plan() {
        // sb00 is the highest: 1498.64 to 1487.17 MHz; sb15 1322.86 to 1311.39 MHz.
        assert!((channel_freq(0, 0, 48) / 1e6 - 1498.64).abs() < 0.01);
        assert!((channel_freq(0, 47, 48) / 1e6 - 1487.17).abs() < 0.01);
        assert!((channel_freq(15, 0, 48) / 1e6 - 1322.86).abs() < 0.01);
        assert!((channel_freq(15, 47, 48) / 1e6 - 1311.39).abs() < 0.01);
        // Coarser channels keep the subband edges.
        assert!(
            (channel_freq(0, 0, 12) - 0.5 * (channel_freq(0, 0, 48) + channel_freq(0, 3, 48)))
                .abs()
                < 1.0
        );
    }

    #[test]
    fn default_selection_has_all_arms_and_reference() {
        let a = default_antennas(24);
        assert_eq!(a.len(), 24);
        assert!(a.contains(&103));
        assert!(a.iter().any(|&s| s <= 51) && a.iter().any(|&s| (52..=102).contains(&s)));
    }
}
