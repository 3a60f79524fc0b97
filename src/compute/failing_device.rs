//! A device that fails part-way, for the tests of the stages' recovery (tests only, feature
//! `gpu`): the device backend, with the calls on what it holds counted (a held group's
//! griddings, subtractions and outlier refits, every call on held flagging planes or held
//! residual images, the calibration statistics) and failing from the `fail_at`-th on, as a device lost mid-group looks
//! to the pipeline (`fail_at` 0: residual images are not held).

use super::convolve::PsfHat;
use super::degridder::{WUnstack, Weights};
use super::device::Gpu;
use super::dft::{DftBlock, Point};
use super::flag_pass::ExcessPower;
use super::flag_planes::{FlagPlanes, PlanesFill, PlanesPass, PlanesShape};
use super::gridder::{VisBlock, WStack};
use super::held_images::HeldImages;
use super::minor::{MinorJob, MinorOut};
use super::{Compute, GpuError, Resident, Schedule, Smoothing};
use num_complex::Complex32;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct Failing<'a> {
    gpu: &'a Gpu,
    calls: AtomicUsize,
    fail_at: usize,
}

impl<'a> Failing<'a> {
    pub(crate) fn new(gpu: &'a Gpu, fail_at: usize) -> Self {
        Failing {
            gpu,
            calls: AtomicUsize::new(0),
            fail_at,
        }
    }

    /// The calls counted so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn tick(&self) -> Result<(), GpuError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 >= self.fail_at {
            Err(GpuError::Cuda("device lost (test)".into()))
        } else {
            Ok(())
        }
    }
}

/// Held residual images whose every call is counted by their `Failing` device.
struct FailingImages<'a> {
    inner: Box<dyn HeldImages + 'a>,
    owner: &'a Failing<'a>,
}

impl HeldImages for FailingImages<'_> {
    fn peak(&mut self) -> Result<f64, GpuError> {
        self.owner.tick()?;
        self.inner.peak()
    }
    fn above(&mut self, limit: f64) -> Result<Vec<(u32, f64)>, GpuError> {
        self.owner.tick()?;
        self.inner.above(limit)
    }
    fn values(&mut self, t: usize, idx: &[u32]) -> Result<Vec<f64>, GpuError> {
        self.owner.tick()?;
        self.inner.values(t, idx)
    }
    fn subtract(&mut self, comps: &[Vec<(usize, f64)>], hats: &[&PsfHat]) -> Result<(), GpuError> {
        self.owner.tick()?;
        self.inner.subtract(comps, hats)
    }
    fn fetch(&mut self, out: &mut [Vec<f64>]) -> Result<(), GpuError> {
        self.owner.tick()?;
        self.inner.fetch(out)
    }
}

/// Held flagging planes whose every call is counted by their `Failing` device.
struct FailingPlanes<'a> {
    inner: Box<dyn FlagPlanes + 'a>,
    owner: &'a Failing<'a>,
}

impl FlagPlanes for FailingPlanes<'_> {
    fn pass(&mut self, job: &PlanesPass) -> Result<ExcessPower, GpuError> {
        self.owner.tick()?;
        self.inner.pass(job)
    }
    fn flag_cells(&mut self, cells: &[bool]) -> Result<(), GpuError> {
        self.owner.tick()?;
        self.inner.flag_cells(cells)
    }
    fn sir(&mut self, cells: &[bool], eta: f64, extend: bool) -> Result<(), GpuError> {
        self.owner.tick()?;
        self.inner.sir(cells, eta, extend)
    }
    fn counts(&mut self) -> Result<Vec<usize>, GpuError> {
        self.owner.tick()?;
        self.inner.counts()
    }
    fn flag_planes(&mut self, which: &[bool]) -> Result<(), GpuError> {
        self.owner.tick()?;
        self.inner.flag_planes(which)
    }
    fn clip_sample(&mut self, pol: usize, stride: usize, m: usize) -> Result<Vec<f32>, GpuError> {
        self.owner.tick()?;
        self.inner.clip_sample(pol, stride, m)
    }
    fn clip(&mut self, pol: usize, limit: f32) -> Result<(), GpuError> {
        self.owner.tick()?;
        self.inner.clip(pol, limit)
    }
    fn flags(&mut self) -> Result<Vec<bool>, GpuError> {
        self.owner.tick()?;
        self.inner.flags()
    }
}

impl Compute for Failing<'_> {
    fn name(&self) -> String {
        "failing device (test)".into()
    }
    fn is_device(&self) -> bool {
        true
    }
    fn grid_wstack(&self, job: &WStack) -> Result<(Vec<f64>, Vec<f64>), GpuError> {
        if job.b.resident.is_some() {
            self.tick()?;
        }
        self.gpu.grid_wstack(job)
    }
    fn degrid_wstack(&self, job: &WUnstack, out: &mut [Complex32]) -> Result<(), GpuError> {
        self.gpu.degrid_wstack(job, out)
    }
    fn sumthreshold_planes(
        &self,
        values: &[f32],
        flags: &mut [bool],
        nt: usize,
        nf: usize,
        s: &Schedule,
    ) -> Result<(), GpuError> {
        self.gpu.sumthreshold_planes(values, flags, nt, nf, s)
    }
    fn background_planes(
        &self,
        values: &[f32],
        flags: &[bool],
        nt: usize,
        nf: usize,
        s: &Smoothing,
    ) -> Result<Vec<f32>, GpuError> {
        self.gpu.background_planes(values, flags, nt, nf, s)
    }
    fn hold(&self, b: &VisBlock) -> Result<Option<Box<dyn Resident>>, GpuError> {
        self.gpu.hold(b)
    }
    fn hold_ahead(&self, b: &VisBlock) -> Result<Option<Box<dyn Resident>>, GpuError> {
        self.gpu.hold_ahead(b)
    }
    fn adopt(&self, r: &dyn Resident) {
        self.gpu.adopt(r)
    }
    fn degrid_subtract(
        &self,
        r: &dyn Resident,
        jobs: &[WUnstack],
        weights: &[Weights],
        scale: f32,
    ) -> Result<(), GpuError> {
        self.tick()?;
        self.gpu.degrid_subtract(r, jobs, weights, scale)
    }
    fn predict_points_subtract(
        &self,
        r: &dyn Resident,
        b: &DftBlock,
        points: &[Point],
        amp: &[f32],
    ) -> Result<(), GpuError> {
        self.tick()?;
        self.gpu.predict_points_subtract(r, b, points, amp)
    }
    fn outlier_normal(
        &self,
        r: &dyn Resident,
        m: &super::outlier_fit::UnitModel,
        with_ata: bool,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>), GpuError> {
        self.tick()?;
        self.gpu.outlier_normal(r, m, with_ata)
    }
    fn outlier_subtract(
        &self,
        r: &dyn Resident,
        m: &super::outlier_fit::UnitModel,
        delta: &[f64],
    ) -> Result<(), GpuError> {
        self.tick()?;
        self.gpu.outlier_subtract(r, m, delta)
    }
    fn cal_stats(
        &self,
        job: &super::cal_stats::CalStatsJob,
        out: &mut [f64],
    ) -> Result<(), GpuError> {
        self.tick()?;
        self.gpu.cal_stats(job, out)
    }
    fn psf_hat(&self, psf: &[f64], m: usize) -> Result<PsfHat, GpuError> {
        self.gpu.psf_hat(psf, m)
    }
    fn convolve_components(
        &self,
        comps: &[Vec<(usize, f64)>],
        hats: &[&PsfHat],
        n: usize,
    ) -> Result<Vec<Vec<f64>>, GpuError> {
        self.gpu.convolve_components(comps, hats, n)
    }
    fn minor_cycle(&self, job: &MinorJob) -> Result<MinorOut, GpuError> {
        self.gpu.minor_cycle(job)
    }
    fn hold_images(
        &self,
        images: &[Vec<f64>],
        eligible: &[bool],
        n: usize,
    ) -> Result<Option<Box<dyn HeldImages + '_>>, GpuError> {
        if self.fail_at == 0 {
            return Ok(None); // (the device's minor cycles without held images)
        }
        Ok(self.gpu.hold_images(images, eligible, n)?.map(|inner| {
            Box::new(FailingImages { inner, owner: self }) as Box<dyn HeldImages + '_>
        }))
    }
    fn hold_planes(
        &self,
        shape: &PlanesShape,
        fill: &mut PlanesFill,
    ) -> Result<Option<Box<dyn FlagPlanes + '_>>, GpuError> {
        Ok(self.gpu.hold_planes(shape, fill)?.map(|inner| {
            Box::new(FailingPlanes { inner, owner: self }) as Box<dyn FlagPlanes + '_>
        }))
    }
}
