//! Direct reads of the data arrays: the correlator writes `Data/visdata`, `Data/flags` and
//! `Data/nsamples` uncompressed and contiguous, so each is one byte range of the file. HDF5 is
//! asked once per file where those ranges are (and whether their types are the ones we
//! decode); the bytes are then read with positional reads, in parallel, outside the HDF5
//! library (whose calls are serialised behind one global lock). Anything else (chunked,
//! compressed, compact or external storage, another type or byte order) goes through the
//! library, dataset by dataset.

use super::{Uvh5Data, Uvh5Error, Uvh5Header};
use num_complex::Complex32;
use rayon::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The data arrays, in the order of `DataRoutes::all`.
pub const DATASETS: [&str; 3] = ["Data/visdata", "Data/flags", "Data/nsamples"];

/// Largest single positional read; bigger ranges are split and read in parallel.
const PIECE_BYTES: usize = 8 << 20;

/// How one data array of one file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Contiguous, uncompressed, of the expected type and size: bytes at `offset` of the file.
    Direct { offset: u64 },
    /// Through the HDF5 library (chunked, compressed, another type, or not yet allocated).
    Library,
    /// Not in the file (flags: none set; nsamples: 1).
    Absent,
}

/// The routes of `Data/visdata`, `Data/flags` and `Data/nsamples` of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRoutes {
    pub vis: Route,
    pub flags: Route,
    pub nsamples: Route,
}

impl DataRoutes {
    /// Every dataset through the library (what `read_data` does).
    pub const LIBRARY: DataRoutes = DataRoutes {
        vis: Route::Library,
        flags: Route::Library,
        nsamples: Route::Library,
    };

    pub fn all(&self) -> [Route; 3] {
        [self.vis, self.flags, self.nsamples]
    }

    /// True when no dataset needs the library: the file can be read in time blocks.
    pub fn fully_direct(&self) -> bool {
        self.all().iter().all(|r| *r != Route::Library)
    }
}

fn invalid(path: &Path, dataset: &str, problem: impl Into<String>) -> Uvh5Error {
    Uvh5Error::Invalid {
        path: path.into(),
        dataset: dataset.into(),
        problem: problem.into(),
    }
}

/// Asks HDF5 where the data arrays of `path` lie. A dataset is read directly only when its
/// storage is contiguous and unfiltered, its type is exactly what the library path would
/// decode without conversion (h5py's little-endian complex compound {r, i} of f32, the h5py
/// boolean enum over int8, little-endian f32), and its stored size is exactly the expected
/// byte count; otherwise the library reads it. A range past the end of the file is an error.
pub fn locate_data(path: &Path, h: &Uvh5Header) -> Result<DataRoutes, Uvh5Error> {
    let file_len = std::fs::metadata(path)
        .map_err(|source| Uvh5Error::Io {
            path: path.into(),
            source,
        })?
        .len();
    let file = hdf5::File::open(path).map_err(|source| Uvh5Error::Open {
        path: path.into(),
        source,
    })?;
    let n = h.nblts() * h.nfreqs * h.npols;
    let native = cfg!(target_endian = "little");
    let expected = |name: &str| -> Result<hdf5::Datatype, Uvh5Error> {
        match name {
            "Data/visdata" => hdf5::Datatype::from_type::<Complex32>(),
            "Data/flags" => hdf5::Datatype::from_type::<bool>(),
            _ => hdf5::Datatype::from_type::<f32>(),
        }
        .map_err(|source| Uvh5Error::Dataset {
            path: path.into(),
            dataset: name.into(),
            source,
        })
    };
    let mut routes = [Route::Library; 3];
    for (k, name) in DATASETS.iter().enumerate() {
        if k > 0 && !file.link_exists(name) {
            routes[k] = Route::Absent;
            continue;
        }
        let Ok(ds) = file.dataset(name) else { continue };
        if !native || ds.size() != n || ds.is_chunked() || !ds.filters().is_empty() {
            continue;
        }
        let Ok(dtype) = ds.dtype() else { continue };
        let want = expected(name)?;
        if dtype != want {
            continue;
        }
        let nbytes = (n * dtype.size()) as u64;
        if ds.storage_size() != nbytes {
            continue;
        }
        let Some(offset) = ds.offset() else { continue };
        if offset.checked_add(nbytes).is_none_or(|end| end > file_len) {
            return Err(invalid(
                path,
                name,
                format!("its {nbytes} bytes at offset {offset} run past the end of the file ({file_len} bytes): the file is truncated"),
            ));
        }
        routes[k] = Route::Direct { offset };
    }
    Ok(DataRoutes {
        vis: routes[0],
        flags: routes[1],
        nsamples: routes[2],
    })
}

/// Element types whose every bit pattern is a valid value, so a file's bytes may be read
/// straight into them.
pub(crate) trait Plain: Copy + Send + Sync {}
impl Plain for u8 {}
impl Plain for f32 {}
impl Plain for Complex32 {}

fn as_bytes_mut<T: Plain>(s: &mut [T]) -> &mut [u8] {
    // SAFETY: `Plain` types (u8, f32, and Complex32 = repr(C) {f32, f32}) have no padding and
    // accept any bit pattern; the byte slice covers exactly the same memory.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

/// Reads `dst.len()` elements of `dataset` (stored at byte `offset`, little-endian, as
/// checked by `locate_data`), starting at element `first`, with parallel positional reads.
pub(crate) fn read_elements<T: Plain>(
    file: &File,
    path: &Path,
    dataset: &str,
    offset: u64,
    first: usize,
    dst: &mut [T],
) -> Result<(), Uvh5Error> {
    let esize = std::mem::size_of::<T>();
    let start = offset + (first * esize) as u64;
    let bytes = as_bytes_mut(dst);
    bytes.par_chunks_mut(PIECE_BYTES).enumerate().try_for_each(|(i, piece)| {
        let at = start + (i * PIECE_BYTES) as u64;
        file.read_exact_at(piece, at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                invalid(path, dataset, format!("the file ends before byte {} that the dataset needs: the file is truncated", at + piece.len() as u64))
            } else {
                invalid(path, dataset, format!("read of {} bytes at offset {at} failed: {e}", piece.len()))
            }
        })
    })
}

fn open(path: &Path) -> Result<File, Uvh5Error> {
    File::open(path).map_err(|source| Uvh5Error::Io {
        path: path.into(),
        source,
    })
}

/// Reads a whole dataset through the library (with its type conversion), as `read_data` does.
fn library_vec<T: hdf5::H5Type>(
    file: &hdf5::File,
    path: &Path,
    name: &str,
    n: usize,
) -> Result<Vec<T>, Uvh5Error> {
    let missing = |source| Uvh5Error::Dataset {
        path: path.into(),
        dataset: name.into(),
        source,
    };
    let ds = file.dataset(name).map_err(missing)?;
    if ds.size() != n {
        return Err(invalid(
            path,
            name,
            format!(
                "has {} elements (shape {:?}), expected {n}",
                ds.size(),
                ds.shape()
            ),
        ));
    }
    ds.read_raw().map_err(missing)
}

/// Reads one file's data arrays, each by its route (direct bytes or the library), into the
/// same flattened form as `read_data`.
pub fn read_data_routed(
    path: &Path,
    h: &Uvh5Header,
    routes: &DataRoutes,
) -> Result<Uvh5Data, Uvh5Error> {
    let n = h.nblts() * h.nfreqs * h.npols;
    let needs_library = routes.all().contains(&Route::Library);
    let lib = if needs_library {
        Some(hdf5::File::open(path).map_err(|source| Uvh5Error::Open {
            path: path.into(),
            source,
        })?)
    } else {
        None
    };
    let raw = if routes
        .all()
        .iter()
        .any(|r| matches!(r, Route::Direct { .. }))
    {
        Some(open(path)?)
    } else {
        None
    };
    let vis: Vec<Complex32> = match routes.vis {
        Route::Direct { offset } => {
            let mut v = vec![Complex32::new(0.0, 0.0); n];
            read_elements(
                raw.as_ref().expect("opened"),
                path,
                DATASETS[0],
                offset,
                0,
                &mut v,
            )?;
            v
        }
        _ => library_vec(lib.as_ref().expect("opened"), path, DATASETS[0], n)?,
    };
    let flags: Vec<bool> = match routes.flags {
        Route::Direct { offset } => {
            let mut b = vec![0u8; n];
            read_elements(
                raw.as_ref().expect("opened"),
                path,
                DATASETS[1],
                offset,
                0,
                &mut b,
            )?;
            b.into_iter().map(|x| x != 0).collect()
        }
        Route::Library => library_vec(lib.as_ref().expect("opened"), path, DATASETS[1], n)?,
        Route::Absent => vec![false; n],
    };
    let nsamples: Vec<f32> = match routes.nsamples {
        Route::Direct { offset } => {
            let mut v = vec![0f32; n];
            read_elements(
                raw.as_ref().expect("opened"),
                path,
                DATASETS[2],
                offset,
                0,
                &mut v,
            )?;
            v
        }
        Route::Library => library_vec(lib.as_ref().expect("opened"), path, DATASETS[2], n)?,
        Route::Absent => vec![1.0; n],
    };
    Ok(Uvh5Data {
        vis,
        flags,
        nsamples,
    })
}

/// A fully direct file, open for positional reads from any thread.
pub(crate) struct DirectFile {
    file: File,
    routes: DataRoutes,
}

/// A thread's buffers for one block of a file's samples (reused from block to block).
#[derive(Default)]
pub(crate) struct Scratch {
    pub vis: Vec<Complex32>,
    /// Flag bytes as stored (0 = false); empty when the file has no flags.
    pub flags: Vec<u8>,
    /// Empty when the file has no nsamples.
    pub nsamples: Vec<f32>,
}

impl DirectFile {
    pub(crate) fn open(path: &Path, routes: DataRoutes) -> Result<Self, Uvh5Error> {
        debug_assert!(routes.fully_direct());
        Ok(DirectFile {
            file: open(path)?,
            routes,
        })
    }

    /// Reads elements `first..first + len` (file order) of each array into `s`.
    pub(crate) fn read(
        &self,
        path: &Path,
        first: usize,
        len: usize,
        s: &mut Scratch,
    ) -> Result<(), Uvh5Error> {
        s.vis.resize(len, Complex32::new(0.0, 0.0));
        match self.routes.vis {
            Route::Direct { offset } => {
                read_elements(&self.file, path, DATASETS[0], offset, first, &mut s.vis)?
            }
            _ => unreachable!("DirectFile::open takes fully direct routes with visibilities"),
        }
        s.flags.clear();
        if let Route::Direct { offset } = self.routes.flags {
            s.flags.resize(len, 0);
            read_elements(&self.file, path, DATASETS[1], offset, first, &mut s.flags)?;
        }
        s.nsamples.clear();
        if let Route::Direct { offset } = self.routes.nsamples {
            s.nsamples.resize(len, 0.0);
            read_elements(
                &self.file,
                path,
                DATASETS[2],
                offset,
                first,
                &mut s.nsamples,
            )?;
        }
        Ok(())
    }
}
