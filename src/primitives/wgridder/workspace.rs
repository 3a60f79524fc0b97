//! Buffers that a sequence of gridding passes of one shape reuses (CLEAN's residual
//! re-griddings): the w-planes, the FFT grid and the images. Without it every pass asks
//! the kernel for ~400 MB of fresh pages (a full-size group's 2048^2 image), faulted in and
//! zeroed one 4 kB page at a time; with it a pass only clears memory it already holds.
//!
//! A pass checks out everything the workspace holds, takes the buffers whose type and
//! length it needs, frees the rest before allocating what is missing (so memory never holds
//! both the old shape's buffers and the new), and hands its buffers back at the end. The
//! workspace therefore holds at most one pass's buffers, between passes too.

use std::any::Any;
use std::sync::Mutex;

/// A buffer and its size in bytes.
type Held = (Box<dyn Any + Send>, usize);

/// Buffers kept between gridding passes (`Options::workspace`).
#[derive(Default)]
pub struct Workspace {
    held: Mutex<Vec<Held>>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workspace({} bytes)", self.bytes())
    }
}

impl Workspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held (for logs and tests).
    pub fn bytes(&self) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.iter().map(|b| b.1).sum()
    }

    /// Everything held, taken out.
    pub(super) fn checkout(&self) -> Checkout {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        Checkout(std::mem::take(&mut *held))
    }

    /// Keeps `v` for a later pass.
    pub fn give<T: Send + 'static>(&self, v: Vec<T>) {
        if v.capacity() > 0 {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let bytes = v.len() * std::mem::size_of::<T>();
            held.push((Box::new(v), bytes));
        }
    }
}

/// A workspace's buffers during one pass (dropped: the ones the pass did not take).
pub(super) struct Checkout(Vec<Held>);

impl Checkout {
    /// An empty checkout (no workspace).
    pub(super) fn none() -> Self {
        Checkout(Vec::new())
    }

    /// A held `Vec<T>` of exactly `len` elements (contents stale), if any.
    pub(super) fn take<T: Send + 'static>(&mut self, len: usize) -> Option<Vec<T>> {
        let i = self
            .0
            .iter()
            .position(|b| b.0.downcast_ref::<Vec<T>>().is_some_and(|v| v.len() == len))?;
        self.0
            .swap_remove(i)
            .0
            .downcast::<Vec<T>>()
            .ok()
            .map(|b| *b)
    }
}

/// `found` completed to `count` buffers of `len` elements, all set to `fill`: the found ones
/// cleared in parallel, the missing ones newly allocated. Call after the checkout's
/// leftovers are dropped.
pub(super) fn filled<T: Copy + Send + Sync>(
    found: Vec<Vec<T>>,
    count: usize,
    len: usize,
    fill: T,
) -> Vec<Vec<T>> {
    use rayon::prelude::*;
    let mut out = found;
    out.truncate(count);
    for v in out.iter_mut() {
        v.par_chunks_mut(1 << 16).for_each(|c| c.fill(fill));
    }
    while out.len() < count {
        out.push(vec![fill; len]);
    }
    out
}

/// A gridding pass's buffers, all cleared: `planes[0]` planes of `planes[1]` cells, the
/// FFT grid of `fft` cells and `imgs[0]` images of `imgs[1]` pixels, from `ws` where it
/// holds them (the rest of what it holds freed before new buffers are made).
#[allow(clippy::type_complexity)]
pub(super) fn pass_buffers<C: Copy + Send + Sync + 'static>(
    ws: Option<&Workspace>,
    planes: [usize; 2],
    fft: usize,
    imgs: [usize; 2],
    zero: C,
) -> (Vec<Vec<C>>, Vec<C>, Vec<Vec<f64>>) {
    let mut held = ws.map_or_else(Checkout::none, Workspace::checkout);
    let found_planes: Vec<Vec<C>> = (0..planes[0]).map_while(|_| held.take(planes[1])).collect();
    let found_fft: Vec<Vec<C>> = held.take(fft).into_iter().collect();
    let found_imgs: Vec<Vec<f64>> = (0..imgs[0]).map_while(|_| held.take(imgs[1])).collect();
    drop(held);
    (
        filled(found_planes, planes[0], planes[1], zero),
        filled(found_fft, 1, fft, zero).remove(0),
        filled(found_imgs, imgs[0], imgs[1], 0.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_complex::Complex32;

    #[test]
    fn a_pass_takes_its_shapes_and_the_rest_is_freed() {
        let ws = Workspace::new();
        ws.give(vec![Complex32::new(1.0, 2.0); 10]);
        ws.give(vec![3.0f64; 7]);
        ws.give(vec![4.0f64; 5]);
        assert_eq!(ws.bytes(), 10 * 8 + 7 * 8 + 5 * 8);
        let mut c = ws.checkout();
        assert_eq!(ws.bytes(), 0);
        // Type and length must both match.
        assert!(c.take::<Complex32>(7).is_none());
        assert!(c.take::<f32>(10).is_none());
        let planes = c.take::<Complex32>(10).expect("held");
        let img = c.take::<f64>(7).expect("held");
        drop(c);
        let planes = filled(vec![planes], 2, 10, Complex32::new(0.0, 0.0));
        assert_eq!(planes.len(), 2);
        assert!(planes
            .iter()
            .all(|p| p.len() == 10 && p.iter().all(|z| z.norm() == 0.0)));
        let img = filled(vec![img], 1, 7, 0.0);
        assert!(img[0].iter().all(|&x| x == 0.0));
        // Only what is given back is held again (the 5-element image was freed).
        ws.give(img.into_iter().next().unwrap());
        assert_eq!(ws.bytes(), 7 * 8);
    }
}
