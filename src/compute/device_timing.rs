//! Where a device call's time goes (feature `gpu`): CUDA events recorded on the call's
//! stream between its phases, summed per phase name and logged as one debug line when the
//! call ends. Only with the debug log on (`RUST_LOG=contimg=debug`, as scripts/gpu-check.sh
//! runs a group): otherwise nothing is recorded and nothing waits.
//!
//! An interval is the stream's time from one mark to the next: the kernels and copies of
//! the phase, and any time the stream sat idle waiting for the host to queue more (host
//! work between two marks shows up in the later phase). The line also gives the call's wall
//! time on the host, so that the two can be compared. Timing never fails a call: an event
//! that cannot be recorded or read turns the timing off for that call.

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaStream};
use std::sync::Arc;
use std::time::Instant;

/// The phases of one device call being timed.
pub(super) struct Phases {
    stream: Arc<CudaStream>,
    what: &'static str,
    wall: Instant,
    start: Option<CudaEvent>,
    marks: Vec<(&'static str, CudaEvent)>,
}

impl Phases {
    /// Starts timing `what` on `stream` (a no-op unless the debug log is on).
    pub(super) fn start(stream: &Arc<CudaStream>, what: &'static str) -> Self {
        let on = log::log_enabled!(log::Level::Debug);
        Phases {
            stream: stream.clone(),
            what,
            wall: Instant::now(),
            start: on.then(|| record(stream)).flatten(),
            marks: Vec::new(),
        }
    }

    /// Ends the phase `name` here (on the stream: when the work queued so far is done).
    pub(super) fn mark(&mut self, name: &'static str) {
        if self.start.is_none() {
            return;
        }
        match record(&self.stream) {
            Some(e) => self.marks.push((name, e)),
            None => self.start = None,
        }
    }

    /// The milliseconds per phase name, in the order the names first appeared, and their
    /// total; None when timing was off or an event could not be read.
    fn intervals(&self) -> Option<(Vec<(&'static str, f64)>, f64)> {
        let mut prev = self.start.as_ref()?;
        let mut each = Vec::with_capacity(self.marks.len());
        for (name, e) in &self.marks {
            each.push((*name, f64::from(prev.elapsed_ms(e).ok()?)));
            prev = e;
        }
        Some(sum_by_name(&each))
    }

    /// Logs the phases (debug) after waiting for the last one.
    pub(super) fn finish(self) {
        let Some((sums, total)) = self.intervals() else {
            return;
        };
        log::debug!(
            "device {} (ms): {}; stream {:.1} of {:.1} wall",
            self.what,
            sums.iter()
                .map(|(n, ms)| format!("{n} {ms:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            total,
            self.wall.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// Per name, in the order the names first appear, the sum of its intervals; and the total.
fn sum_by_name(each: &[(&'static str, f64)]) -> (Vec<(&'static str, f64)>, f64) {
    let mut sums: Vec<(&'static str, f64)> = Vec::new();
    for &(name, ms) in each {
        match sums.iter_mut().find(|s| s.0 == name) {
            Some(s) => s.1 += ms,
            None => sums.push((name, ms)),
        }
    }
    let total = each.iter().map(|s| s.1).sum();
    (sums, total)
}

/// An event with timing recorded on `stream` now (None when the driver refuses).
fn record(stream: &Arc<CudaStream>) -> Option<CudaEvent> {
    stream
        .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .map_err(|e| log::debug!("device timing off for this call: {e}"))
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn phases_sum_per_name_in_first_appearance_order() {
        let (sums, total) = super::sum_by_name(&[
            ("prep", 2.0),
            ("grid", 5.0),
            ("fft", 1.5),
            ("grid", 4.0),
            ("fft", 1.0),
        ]);
        assert_eq!(sums, vec![("prep", 2.0), ("grid", 9.0), ("fft", 2.5)]);
        assert_eq!(total, 13.5);
    }
}
