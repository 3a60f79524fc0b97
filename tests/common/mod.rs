//! Helpers shared by the integration tests.
#![allow(dead_code)]

use contimg::config::{Config, SimSource};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn station_table() -> PathBuf {
    repo_file("configs/dsa110/DSA110_Station_Coordinates.csv")
}

/// A file of this checkout: the build's, or where `CONTIMG_TEST_DATA` names its
/// `tests/data` (a prebuilt test binary run from another checkout, scripts/gpu-check.sh).
pub fn repo_file(rel: &str) -> PathBuf {
    let root = std::env::var_os("CONTIMG_TEST_DATA")
        .map(PathBuf::from)
        .and_then(|d| Some(d.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    root.join(rel)
}

/// The binary under test: cargo's, or CONTIMG_BIN (a prebuilt one, scripts/gpu-check.sh).
pub fn bin() -> PathBuf {
    std::env::var_os("CONTIMG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_contimg")))
}

/// Test binaries spawn `contimg` while other test threads have HDF5 files open: children
/// inherit those descriptors and their locks (HDF5 opens without O_CLOEXEC), so HDF5's
/// advisory file locking is turned off for the test process and every child.
pub fn no_hdf5_locking() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE"));
}

/// A small, fast config: few antennas, 2 subbands of 4 channels, 6 integrations.
pub fn small_config(dir: &Path) -> Config {
    no_hdf5_locking();
    let mut c = Config {
        station_table: Some(station_table()),
        ..Default::default()
    };
    c.input.dir = dir.join("night");
    c.input.n_subbands = 2;
    c.output.dir = dir.join("out");
    c.imaging.npix = 256;
    c.imaging.cell_arcsec = 20.0;
    c.imaging.epsilon = 1e-5;
    // No calibrator transits these small nights: image the data as simulated.
    c.calibration.enabled = false;
    // Their bands are a few subbands at the top of DSA-110's: one spectral term (the
    // multi-term tests set their own reference frequency).
    c.imaging.nterms = 1;
    let s = &mut c.simulate;
    s.seed = 3;
    s.n_groups = 1;
    s.n_subbands = 2;
    s.n_channels = 4;
    s.n_times = 6;
    s.n_antennas = 16;
    s.n_random_sources = 0;
    s.gains.enabled = false;
    s.noise.enabled = false;
    s.rfi.enabled = false;
    s.sources = vec![];
    c
}

pub fn source(l_deg: f64, m_deg: f64, flux: f64) -> SimSource {
    SimSource {
        ra_deg: None,
        dec_deg: None,
        group: 0,
        l_deg,
        m_deg,
        flux_jy: flux,
        spectral_index: 0.0,
    }
}

pub fn write_config(c: &Config, path: &Path) {
    std::fs::write(path, serde_yaml_ng::to_string(c).unwrap()).unwrap();
}

/// Writes `c` to `dir/c.yaml` and simulates its night; returns the config's path.
pub fn simulate_night(c: &Config, dir: &Path) -> PathBuf {
    let cfg = dir.join("c.yaml");
    write_config(c, &cfg);
    contimg::simulate::run(c, &c.input.dir).unwrap();
    cfg
}

/// Runs `contimg` with args; returns (exit code, stdout+stderr).
pub fn run_bin(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    no_hdf5_locking();
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run contimg");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A FITS image and its WCS keywords.
pub struct Fits {
    pub n: usize,
    pub data: Vec<f32>,
    pub crval: [f64; 2],
    pub crpix: [f64; 2],
    pub cdelt: [f64; 2],
    pub ctype: [String; 2],
    /// The restoring beam from the header (BMAJ, BMIN in degrees; BPA in degrees east of
    /// north), where the image has one.
    pub beam: Option<[f64; 3]>,
}

/// The one restored image of a run's `images` folder and the robust rms (1.4826 x the median
/// of |x|) of its residual image.
pub fn restored_and_residual_rms(images_dir: &Path) -> (Fits, f64) {
    let images: Vec<PathBuf> = std::fs::read_dir(images_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".restored.fits"))
        .collect();
    assert_eq!(images.len(), 1, "{images:?}");
    let img = read_fits(&images[0]);
    let res = read_fits(&PathBuf::from(
        images[0]
            .to_string_lossy()
            .replace(".restored.", ".residual."),
    ));
    let mut r: Vec<f32> = res
        .data
        .iter()
        .map(|x| x.abs())
        .filter(|x| x.is_finite())
        .collect();
    r.sort_by(f32::total_cmp);
    (img, 1.4826 * r[r.len() / 2] as f64)
}

pub fn read_fits(path: &Path) -> Fits {
    let mut f = fitsio::FitsFile::open(path).unwrap();
    let hdu = f.primary_hdu().unwrap();
    let data: Vec<f32> = hdu.read_image(&mut f).unwrap();
    let n = hdu.read_key::<i64>(&mut f, "NAXIS1").unwrap() as usize;
    let k = |f: &mut fitsio::FitsFile, name: &str| hdu.read_key::<f64>(f, name).unwrap();
    Fits {
        n,
        crval: [k(&mut f, "CRVAL1"), k(&mut f, "CRVAL2")],
        crpix: [k(&mut f, "CRPIX1"), k(&mut f, "CRPIX2")],
        cdelt: [k(&mut f, "CDELT1"), k(&mut f, "CDELT2")],
        ctype: [
            hdu.read_key::<String>(&mut f, "CTYPE1").unwrap(),
            hdu.read_key::<String>(&mut f, "CTYPE2").unwrap(),
        ],
        beam: match (
            hdu.read_key::<f64>(&mut f, "BMAJ"),
            hdu.read_key::<f64>(&mut f, "BMIN"),
            hdu.read_key::<f64>(&mut f, "BPA"),
        ) {
            (Ok(a), Ok(b), Ok(p)) => Some([a, b, p]),
            _ => None,
        },
        data,
    }
}

impl Fits {
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.n + x]
    }

    /// Pixel (0-based x, y) of a J2000 position through the FITS SIN WCS, written from the
    /// FITS standard (Calabretta & Greisen 2002), independently of contimg's projection code.
    pub fn world_to_pixel(&self, ra_deg: f64, dec_deg: f64) -> (f64, f64) {
        assert_eq!(self.ctype[0], "RA---SIN");
        assert_eq!(self.ctype[1], "DEC--SIN");
        let (a, d) = (ra_deg.to_radians(), dec_deg.to_radians());
        let (a0, d0) = (self.crval[0].to_radians(), self.crval[1].to_radians());
        // Orthographic (SIN) projection: intermediate world coordinates in degrees.
        let x = (d.cos() * (a - a0).sin()).to_degrees();
        let y = (d.sin() * d0.cos() - d.cos() * d0.sin() * (a - a0).cos()).to_degrees();
        // FITS: x = CDELT1 (p1 - CRPIX1) with x positive toward increasing RA (east).
        let p1 = self.crpix[0] + x / self.cdelt[0];
        let p2 = self.crpix[1] + y / self.cdelt[1];
        (p1 - 1.0, p2 - 1.0)
    }

    /// The position (x, y in pixels) and amplitude of the header's restoring beam fitted by
    /// least squares to the pixels around (x, y) (a box of +-0.6 BMAJ, 2-8 pixels; the
    /// beam's shape fixed, amplitude and centre free: Gauss-Newton from the given start).
    /// A restored point source is its components convolved with exactly that beam, so the
    /// fit is unbiased whatever the beam's orientation (a separable 3-point fit is not, on
    /// a rotated elliptical beam).
    pub fn fit_beam_at(&self, x: f64, y: f64) -> (f64, f64, f64) {
        let [bmaj, bmin, bpa] = self.beam.expect("a restored image with BMAJ/BMIN/BPA");
        let to_px = |d: f64| d / self.cdelt[1].abs();
        let k = 4.0 * std::f64::consts::LN_2;
        let (ma, mi, th) = (to_px(bmaj), to_px(bmin), bpa.to_radians());
        // East is -x when CDELT1 < 0 (RA increasing to the left), north is +y.
        let east = -self.cdelt[0].signum();
        let half = (0.6 * ma).ceil().clamp(2.0, 8.0) as i64;
        let (xi, yi) = (x.round() as i64, y.round() as i64);
        let model = |p: &[f64; 3], px: f64, py: f64| {
            let (e, nn) = (east * (px - p[1]), py - p[2]);
            let along = e * th.sin() + nn * th.cos();
            let across = e * th.cos() - nn * th.sin();
            p[0] * (-k * (along * along / (ma * ma) + across * across / (mi * mi))).exp()
        };
        let pts: Vec<(f64, f64, f64)> = (yi - half..=yi + half)
            .flat_map(|py| (xi - half..=xi + half).map(move |px| (px, py)))
            .filter(|&(px, py)| {
                px >= 0 && py >= 0 && (px as usize) < self.n && (py as usize) < self.n
            })
            .map(|(px, py)| {
                (
                    px as f64,
                    py as f64,
                    self.at(px as usize, py as usize) as f64,
                )
            })
            .collect();
        let mut p = [self.at(xi as usize, yi as usize) as f64, x, y];
        for _ in 0..50 {
            // Normal equations with a numerical Jacobian (3 parameters).
            let mut m = [[0.0; 3]; 3];
            let mut r = [0.0; 3];
            for &(px, py, v) in &pts {
                let f0 = model(&p, px, py);
                let mut j = [0.0; 3];
                for (a, ja) in j.iter_mut().enumerate() {
                    let mut q = p;
                    let h = if a == 0 {
                        1e-6 * p[0].abs().max(1e-12)
                    } else {
                        1e-5
                    };
                    q[a] += h;
                    *ja = (model(&q, px, py) - f0) / h;
                }
                for a in 0..3 {
                    r[a] += j[a] * (v - f0);
                    for b in 0..3 {
                        m[a][b] += j[a] * j[b];
                    }
                }
            }
            let det = |a: [[f64; 3]; 3]| {
                a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
                    - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
                    + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
            };
            let d = det(m);
            let mut step = [0.0; 3];
            for (c, s) in step.iter_mut().enumerate() {
                let mut mc = m;
                for (row, rv) in mc.iter_mut().zip(r) {
                    row[c] = rv;
                }
                *s = det(mc) / d;
            }
            for a in 0..3 {
                p[a] += step[a];
            }
            if step[1].abs() < 1e-6 && step[2].abs() < 1e-6 {
                break;
            }
        }
        (p[1], p[2], p[0])
    }

    /// Peak near (x, y) and its sub-pixel position from a parabola through the maximum.
    pub fn peak_near(&self, x: f64, y: f64, r: usize) -> (f64, f64, f32) {
        let (xi, yi) = (x.round() as usize, y.round() as usize);
        let mut best = (xi, yi, f32::MIN);
        for yy in yi - r..=yi + r {
            for xx in xi - r..=xi + r {
                if self.at(xx, yy) > best.2 {
                    best = (xx, yy, self.at(xx, yy));
                }
            }
        }
        let (bx, by, v) = best;
        let para = |m: f32, c: f32, p: f32| {
            let den = m - 2.0 * c + p;
            if den.abs() < 1e-12 {
                0.0
            } else {
                0.5 * (m - p) as f64 / den as f64
            }
        };
        let dx = para(self.at(bx - 1, by), v, self.at(bx + 1, by));
        let dy = para(self.at(bx, by - 1), v, self.at(bx, by + 1));
        (bx as f64 + dx, by as f64 + dy, v)
    }
}

/// Runs `contimg run --config cfg --output out` under `mpirun -n n` (one thread per rank).
pub fn run_mpi(n: usize, cfg: &Path, out: &Path) -> (i32, String) {
    run_mpi_with(n, cfg, out, &[])
}

/// `run_mpi` with more environment variables for the ranks.
pub fn run_mpi_with(n: usize, cfg: &Path, out: &Path, envs: &[(&str, &str)]) -> (i32, String) {
    no_hdf5_locking();
    let o = Command::new("mpirun")
        .args(["-n", &n.to_string(), "--oversubscribe", "--bind-to", "none"])
        .arg(bin())
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .envs(envs.iter().copied())
        .output()
        .expect("mpirun");
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}
