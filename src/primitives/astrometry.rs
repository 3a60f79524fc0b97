//! Frames and UVW: ICRS (J2000) directions to apparent directions of date at the site and
//! back, ECEF baselines into the true equator and equinox of date, and UVW bases.
//!
//! Model: ICRS direction -> light deflection by the Sun -> aberration (relativistic, annual +
//! diurnal observer velocity, as ERFA's eraLdsun and eraAb define them) -> GCRS -> bias-precession-nutation (IAU 2006/2000A) -> true equator and equinox of date
//! -> polar motion, applied as ERFA applies it to observed places (a small rotation in the
//! local hour-angle frame). "Apparent" vectors below are these observed directions, with
//! right ascension counted from the local apparent sidereal time: hour angles and
//! declinations of date are exactly what the telescope uses. Baselines (ITRS) are rotated by
//! the apparent sidereal time alone, so their dot products with those directions are the
//! geometric delays (as in pyuvdata and CASA). Refraction does not enter interferometric
//! phases. Checked against ERFA's atco13/atoc13 to a few milliarcseconds (tests/astrometry.rs).

use super::time::Epoch;

pub type V3 = [f64; 3];
pub type M33 = [[f64; 3]; 3];

/// Earth's rotation rate (rad/s, sidereal).
const OMEGA_EARTH: f64 = 7.292_115_146_706_979e-5;
/// Speed of light in AU per day.
const C_AU_PER_DAY: f64 = 173.144_632_684_669_3;
/// Schwarzschild radius of the Sun (AU): 2 G M_sun / c^2.
const SRS_AU: f64 = 1.974_125_743_36e-8;

pub fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
pub fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
pub fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
pub fn normalize(a: V3) -> V3 {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}
fn mat_vec(m: &M33, v: V3) -> V3 {
    [dot(m[0], v), dot(m[1], v), dot(m[2], v)]
}
fn mat_t_vec(m: &M33, v: V3) -> V3 {
    [
        m[0][0] * v[0] + m[1][0] * v[1] + m[2][0] * v[2],
        m[0][1] * v[0] + m[1][1] * v[1] + m[2][1] * v[2],
        m[0][2] * v[0] + m[1][2] * v[1] + m[2][2] * v[2],
    ]
}
/// Rotates the vector by +angle about z (x toward y): ECEF -> true of date with angle = GAST.
fn rot_z(v: V3, angle: f64) -> V3 {
    let (s, c) = angle.sin_cos();
    [c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]]
}

/// Unit vector of a spherical direction (longitude-like `ra`, latitude-like `dec`, radians).
pub fn radec_to_vec(ra: f64, dec: f64) -> V3 {
    let (sd, cd) = dec.sin_cos();
    let (sa, ca) = ra.sin_cos();
    [cd * ca, cd * sa, sd]
}

/// Spherical angles (ra in 0..2pi, dec) of a vector.
pub fn vec_to_radec(v: V3) -> (f64, f64) {
    let r = dot(v, v).sqrt();
    let ra = v[1].atan2(v[0]).rem_euclid(std::f64::consts::TAU);
    (ra, (v[2] / r).clamp(-1.0, 1.0).asin())
}

/// Angular separation between two unit vectors (rad), accurate at all angles.
pub fn separation(a: V3, b: V3) -> f64 {
    let c = cross(a, b);
    dot(c, c).sqrt().atan2(dot(a, b))
}

/// An observatory site: geodetic (WGS84) position and its geocentric ECEF vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Site {
    pub lat_rad: f64,
    pub lon_rad: f64,
    pub height_m: f64,
    pub ecef: V3,
}

impl Site {
    pub fn from_geodetic_deg(lat_deg: f64, lon_deg: f64, height_m: f64) -> Self {
        let ecef = geodetic_to_ecef(lat_deg.to_radians(), lon_deg.to_radians(), height_m);
        Site {
            lat_rad: lat_deg.to_radians(),
            lon_rad: lon_deg.to_radians(),
            height_m,
            ecef,
        }
    }
}

/// WGS84 geodetic (radians, metres) to geocentric ECEF (metres).
pub fn geodetic_to_ecef(lat_rad: f64, lon_rad: f64, height_m: f64) -> V3 {
    erfa::transform::geodetic_to_geocentric(erfa::Ellipsoid::WGS84, lon_rad, lat_rad, height_m)
        .expect("WGS84 geodetic to geocentric cannot fail for finite terrestrial inputs")
}

/// Everything that maps ICRS directions and ECEF baselines into the apparent frame
/// (true equator and equinox of date) at one instant.
#[derive(Debug, Clone)]
pub struct FrameOfDate {
    pub epoch: Epoch,
    /// GCRS -> true of date (bias, precession, nutation).
    npb: M33,
    /// Greenwich apparent sidereal time (rad).
    pub gast: f64,
    /// Local apparent sidereal time (rad).
    pub last: f64,
    /// Observer velocity in GCRS axes, in units of c, and sqrt(1 - |beta|^2).
    beta: V3,
    bm1: f64,
    /// Unit vector Sun -> observer and its length (AU), for light deflection.
    sun_to_obs: V3,
    sun_dist_au: f64,
    /// Polar motion with respect to the local meridian (ERFA's xpl, ypl): sin and cos.
    pm: [f64; 4],
}

impl FrameOfDate {
    pub fn new(epoch: Epoch, site: &Site) -> Self {
        let (t1, t2) = epoch.tt();
        let npb = erfa::prenut::pn_matrix_06a(t1, t2);
        let gast = epoch.gast();
        // Barycentric velocity of the Earth (TDB ~ TT here: < 2 ms difference).
        let (_, pvh, pvb) = erfa::earth::position_velocity_00(t1, t2);
        let sun_dist_au = dot(pvh[0], pvh[0]).sqrt();
        let sun_to_obs = normalize(pvh[0]);
        let v_earth = [
            pvb[1][0] / C_AU_PER_DAY,
            pvb[1][1] / C_AU_PER_DAY,
            pvb[1][2] / C_AU_PER_DAY,
        ];
        // Diurnal velocity of the site: omega x r in the frame of date, then to GCRS.
        let r_tod = rot_z(site.ecef, gast);
        let v_tod = [-OMEGA_EARTH * r_tod[1], OMEGA_EARTH * r_tod[0], 0.0];
        let v_site = mat_t_vec(&npb, v_tod);
        let c = super::C_M_S;
        let beta = [
            v_earth[0] + v_site[0] / c,
            v_earth[1] + v_site[1] / c,
            v_earth[2] + v_site[2] / c,
        ];
        let last = (gast + site.lon_rad).rem_euclid(std::f64::consts::TAU);
        // Third column of Rz(elong) Rx(-yp) Ry(-xp): the pole in the local frame.
        let (sx, cx) = epoch.xp_rad.sin_cos();
        let (sy, cy) = epoch.yp_rad.sin_cos();
        let (se, ce) = site.lon_rad.sin_cos();
        let r02 = ce * sx - se * sy * cx;
        let r12 = -se * sx - ce * sy * cx;
        let r22 = cy * cx;
        let xpl = r02.clamp(-1.0, 1.0).asin();
        let ypl = -r12.atan2(r22);
        let pm = [xpl.sin(), xpl.cos(), ypl.sin(), ypl.cos()];
        let bm1 = (1.0 - dot(beta, beta)).sqrt();
        FrameOfDate {
            epoch,
            npb,
            gast,
            last,
            beta,
            bm1,
            sun_to_obs,
            sun_dist_au,
            pm,
        }
    }

    /// True-of-date vector -> observed (polar motion applied in the local -HA frame).
    fn polar_motion(&self, v: V3, inverse: bool) -> V3 {
        let [sx, cx, sy, cy] = self.pm;
        let h = rot_z(v, -self.last);
        let m = [
            [cx, 0.0, sx],
            [sx * sy, cy, -cx * sy],
            [-sx * cy, sy, cx * cy],
        ];
        let o = if inverse {
            mat_t_vec(&m, h)
        } else {
            mat_vec(&m, h)
        };
        rot_z(o, self.last)
    }

    /// Natural direction (ICRS) -> proper direction (GCRS): light deflection by the Sun for a
    /// source at infinity, then relativistic aberration including the Sun's potential term.
    fn aberrate(&self, p: V3) -> V3 {
        // Light deflection (eraLdsun with q = p): p + w p x (e x p), w = SRS / (em (1 + p.e)).
        let e = self.sun_to_obs;
        let em = self.sun_dist_au;
        let dlim = 1e-6 / (em * em).max(1.0);
        let w = SRS_AU / em / (1.0 + dot(p, e)).max(dlim);
        let pe = cross(p, cross(e, p));
        let p = [p[0] + w * pe[0], p[1] + w * pe[1], p[2] + w * pe[2]];
        // Aberration (eraAb).
        let v = self.beta;
        let pdv = dot(p, v);
        let w1 = 1.0 + pdv / (1.0 + self.bm1);
        let w2 = SRS_AU / em;
        normalize([
            p[0] * self.bm1 + w1 * v[0] + w2 * (v[0] - pdv * p[0]),
            p[1] * self.bm1 + w1 * v[1] + w2 * (v[1] - pdv * p[1]),
            p[2] * self.bm1 + w1 * v[2] + w2 * (v[2] - pdv * p[2]),
        ])
    }

    /// ICRS unit vector -> apparent (observed) unit vector.
    pub fn icrs_to_apparent(&self, p_icrs: V3) -> V3 {
        self.polar_motion(mat_vec(&self.npb, self.aberrate(p_icrs)), false)
    }

    /// Apparent (observed) unit vector -> ICRS unit vector (inverts aberration by iteration).
    pub fn apparent_to_icrs(&self, p_obs: V3) -> V3 {
        let target = mat_t_vec(&self.npb, self.polar_motion(p_obs, true));
        let mut p = target;
        for _ in 0..4 {
            let a = self.aberrate(p);
            p = normalize([
                p[0] + target[0] - a[0],
                p[1] + target[1] - a[1],
                p[2] + target[2] - a[2],
            ]);
        }
        p
    }

    /// Apparent direction of an hour angle / declination of date at this site's LAST.
    pub fn hadec_to_apparent(&self, ha: f64, dec: f64) -> V3 {
        radec_to_vec(self.last - ha, dec)
    }

    /// ICRS (ra, dec) of the apparent (HA, Dec) of date.
    pub fn hadec_to_icrs(&self, ha: f64, dec: f64) -> (f64, f64) {
        vec_to_radec(self.apparent_to_icrs(self.hadec_to_apparent(ha, dec)))
    }

    /// ECEF vector (e.g. a baseline) expressed in the true-of-date frame.
    pub fn ecef_to_tod(&self, b: V3) -> V3 {
        rot_z(b, self.gast)
    }

    /// UVW basis for a phase centre given in ICRS: w toward its apparent direction, u and v
    /// along the images of the ICRS east and north directions there under the full
    /// ICRS -> apparent map (precession-nutation and the aberration's small rotation), as
    /// pyuvdata's frame position angle and CASA's J2000 UVW define them.
    pub fn icrs_basis(&self, ra: f64, dec: f64) -> UvwBasis {
        let c = radec_to_vec(ra, dec);
        let w = self.icrs_to_apparent(c);
        // ICRS north at the centre, mapped by finite difference (the map is smooth; 1e-6 rad
        // keeps both the truncation and the rounding error near 1e-11).
        let h = 1e-6;
        let north_icrs = [-dec.sin() * ra.cos(), -dec.sin() * ra.sin(), dec.cos()];
        let ahead = self.icrs_to_apparent(normalize([
            c[0] + h * north_icrs[0],
            c[1] + h * north_icrs[1],
            c[2] + h * north_icrs[2],
        ]));
        let behind = self.icrs_to_apparent(normalize([
            c[0] - h * north_icrs[0],
            c[1] - h * north_icrs[1],
            c[2] - h * north_icrs[2],
        ]));
        let d = sub(ahead, behind);
        let v = normalize(sub(
            d,
            [w[0] * dot(d, w), w[1] * dot(d, w), w[2] * dot(d, w)],
        ));
        UvwBasis {
            u: cross(v, w),
            v,
            w,
        }
    }

    /// UVW basis for an apparent (HA, Dec) of date, u and v along the axes of date (the
    /// frame the correlator fringe-stops in).
    pub fn hadec_basis(&self, ha: f64, dec: f64) -> UvwBasis {
        UvwBasis::new(self.hadec_to_apparent(ha, dec), [0.0, 0.0, 1.0])
    }
}

/// An orthonormal (u, v, w) basis in the true-of-date frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UvwBasis {
    pub u: V3,
    pub v: V3,
    pub w: V3,
}

impl UvwBasis {
    /// w along `dir`, u toward the east of `pole`'s frame, v toward its north.
    pub fn new(dir: V3, pole: V3) -> Self {
        let w = normalize(dir);
        let u = normalize(cross(pole, w));
        let v = cross(w, u);
        UvwBasis { u, v, w }
    }

    pub fn project(&self, b: V3) -> V3 {
        [dot(self.u, b), dot(self.v, b), dot(self.w, b)]
    }

    /// Direction cosines (l, m, n) of a unit vector relative to this basis.
    pub fn lmn(&self, s: V3) -> V3 {
        self.project(s)
    }

    /// Unit vector at direction cosines (l, m) (SIN projection about w).
    pub fn from_lm(&self, l: f64, m: f64) -> V3 {
        let n = (1.0 - l * l - m * m).max(0.0).sqrt();
        [
            l * self.u[0] + m * self.v[0] + n * self.w[0],
            l * self.u[1] + m * self.v[1] + n * self.w[1],
            l * self.u[2] + m * self.v[2] + n * self.w[2],
        ]
    }
}

/// Circular mean of angles (rad), in 0..2pi: safe across the 0/2pi wrap.
pub fn circular_mean(angles: &[f64]) -> f64 {
    let (s, c) = angles
        .iter()
        .fold((0.0, 0.0), |(s, c), a| (s + a.sin(), c + a.cos()));
    s.atan2(c).rem_euclid(std::f64::consts::TAU)
}

/// Circular median: the sample minimising the summed angular distance (robust, wrap-safe).
pub fn circular_median(angles: &[f64]) -> f64 {
    let mean = circular_mean(angles);
    // Unwrap about the mean, take the ordinary median, wrap back.
    let mut un: Vec<f64> = angles
        .iter()
        .map(|a| {
            let d = (a - mean + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
                - std::f64::consts::PI;
            mean + d
        })
        .collect();
    un.sort_by(|a, b| a.total_cmp(b));
    let n = un.len();
    let med = if n % 2 == 1 {
        un[n / 2]
    } else {
        0.5 * (un[n / 2 - 1] + un[n / 2])
    };
    med.rem_euclid(std::f64::consts::TAU)
}

/// ICRS (ra, dec) of the median meridian position of a set of integrations: each
/// integration's phase centre is HA = 0 at the apparent declination `dec_app` at its time.
pub fn median_meridian_icrs(
    times_jd: &[f64],
    dec_app: f64,
    site: &Site,
    eop: &super::iers::EarthOrientation,
) -> (f64, f64) {
    let (ras, mut decs): (Vec<f64>, Vec<f64>) = times_jd
        .iter()
        .map(|&t| FrameOfDate::new(eop.epoch(t), site).hadec_to_icrs(0.0, dec_app))
        .unzip();
    let ra = circular_median(&ras);
    let dec = super::stats::median_mut(&mut decs).unwrap_or(dec_app);
    (ra, dec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_is_orthonormal_and_sin_projection_inverts() {
        let b = UvwBasis::new(radec_to_vec(1.0, 0.6), [0.0, 0.0, 1.0]);
        assert!(dot(b.u, b.v).abs() < 1e-15 && dot(b.u, b.w).abs() < 1e-15);
        // u points east (increasing RA), v north.
        let east = radec_to_vec(1.0 + 1e-6, 0.6);
        let north = radec_to_vec(1.0, 0.6 + 1e-6);
        assert!(b.lmn(east)[0] > 0.0 && b.lmn(north)[1] > 0.0);
        let s = b.from_lm(0.01, -0.02);
        let lmn = b.lmn(s);
        assert!((lmn[0] - 0.01).abs() < 1e-15 && (lmn[1] + 0.02).abs() < 1e-15);
    }

    #[test]
    fn apparent_round_trip_and_size_of_corrections() {
        let site = Site::from_geodetic_deg(37.2334, -118.2834, 1188.0);
        let f = FrameOfDate::new(Epoch::from_jd_utc(2_461_000.25), &site);
        let p = radec_to_vec(3.0, 0.9);
        let a = f.icrs_to_apparent(p);
        // Precession since J2000 (~26 yr x 50"/yr) plus aberration: tens of arcmin at most.
        let sep = separation(p, a).to_degrees() * 3600.0;
        assert!(sep > 60.0 && sep < 2400.0, "{sep}");
        let back = f.apparent_to_icrs(a);
        assert!(separation(p, back) < 1e-12);
    }

    #[test]
    fn circular_stats_wrap() {
        let a = [6.2, 0.05, 0.1];
        let m = circular_mean(&a);
        assert!(!(0.1..=6.2).contains(&m));
        let med = circular_median(&a);
        assert!((med - 0.05).abs() < 1e-12);
    }
}
