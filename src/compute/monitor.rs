//! GPU utilisation and memory over a run, from NVML (feature `gpu`; libnvidia-ml is
//! loaded at run time): a thread samples the rank's device twice a second while the rank
//! works; the run summary gets the mean and peak utilisation and the peak memory in use.
//! Without the feature, a device or NVML, there is no monitor and no figures.

use serde::{Deserialize, Serialize};

/// What a rank's GPU did during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuUsage {
    pub device: String,
    pub samples: usize,
    pub utilization_mean_pct: f64,
    pub utilization_max_pct: u32,
    pub memory_used_max_gib: f64,
    pub memory_total_gib: f64,
}

/// Running statistics of the samples (kept apart from NVML so they can be tested).
#[derive(Debug, Default, Clone)]
pub struct Samples {
    n: usize,
    util_sum: f64,
    util_max: u32,
    mem_max: u64,
}

impl Samples {
    pub fn add(&mut self, util_pct: u32, mem_used: u64) {
        self.n += 1;
        self.util_sum += util_pct as f64;
        self.util_max = self.util_max.max(util_pct);
        self.mem_max = self.mem_max.max(mem_used);
    }

    pub fn usage(&self, device: String, mem_total: u64) -> GpuUsage {
        let gib = (1u64 << 30) as f64;
        GpuUsage {
            device,
            samples: self.n,
            utilization_mean_pct: if self.n > 0 {
                self.util_sum / self.n as f64
            } else {
                0.0
            },
            utilization_max_pct: self.util_max,
            memory_used_max_gib: self.mem_max as f64 / gib,
            memory_total_gib: mem_total as f64 / gib,
        }
    }
}

#[cfg(feature = "gpu")]
pub struct Monitor {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<GpuUsage>>,
}

#[cfg(not(feature = "gpu"))]
pub struct Monitor;

impl Monitor {
    /// Starts sampling the device at PCI (domain, bus, device); None (and a log line) when
    /// NVML or the device cannot be reached.
    #[cfg(feature = "gpu")]
    pub fn start(pci: Option<(u32, u32, u32)>) -> Option<Monitor> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let pci = pci?;
        let nvml = match nvml_wrapper::Nvml::init() {
            Ok(n) => n,
            Err(e) => {
                log::info!("no GPU utilisation figures: NVML unavailable ({e})");
                return None;
            }
        };
        let count = nvml.device_count().ok()?;
        let index = (0..count).find(|&i| {
            nvml.device_by_index(i)
                .and_then(|d| d.pci_info())
                .is_ok_and(|p| (p.domain, p.bus, p.device) == pci)
        })?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let dev = nvml.device_by_index(index).ok()?;
            let name = dev.name().unwrap_or_else(|_| format!("GPU {index}"));
            let total = dev.memory_info().map(|m| m.total).unwrap_or(0);
            let mut s = Samples::default();
            while !flag.load(Ordering::Relaxed) {
                if let (Ok(u), Ok(m)) = (dev.utilization_rates(), dev.memory_info()) {
                    s.add(u.gpu, m.used);
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            Some(s.usage(name, total))
        });
        Some(Monitor { stop, thread })
    }

    #[cfg(not(feature = "gpu"))]
    pub fn start(_pci: Option<(u32, u32, u32)>) -> Option<Monitor> {
        None
    }

    /// Stops sampling; the figures, if any were taken.
    #[cfg(feature = "gpu")]
    pub fn finish(self) -> Option<GpuUsage> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }

    #[cfg(not(feature = "gpu"))]
    pub fn finish(self) -> Option<GpuUsage> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_give_mean_and_peaks() {
        let mut s = Samples::default();
        for (u, m) in [(10, 1 << 30), (90, 3 << 30), (50, 2 << 30)] {
            s.add(u, m);
        }
        let g = s.usage("dev".into(), 80 << 30);
        assert_eq!((g.samples, g.utilization_max_pct), (3, 90));
        assert!((g.utilization_mean_pct - 50.0).abs() < 1e-12);
        assert!(
            (g.memory_used_max_gib - 3.0).abs() < 1e-12
                && (g.memory_total_gib - 80.0).abs() < 1e-12
        );
    }
}
