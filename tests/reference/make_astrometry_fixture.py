"""Reference astrometry for contimg, from ERFA (pyerfa), astropy and pyuvdata.

Writes tests/data/astrometry_reference.json and tests/data/finals2000A_extract.txt (rows of
astropy-iers-data's finals2000A.all for 2025-2027, the IERS table both sides use).

For pointing declinations 16.3, 54.6 and 71.6 deg and several UTC times at the DSA-110 site:
- local apparent sidereal time (pyuvdata.utils.times.get_lst_for_time, ERFA gst06a with
  UT1 from the IERS table);
- the ICRS position of HA = 0 at the declination of date (erfa.atoc13, observed HA/Dec ->
  ICRS with the IERS polar motion, no refraction);
- for a few DSA-110 baselines, the UVW pyuvdata computes after phasing unprojected (drift)
  data to an ICRS phase centre, and the phase it applies to the visibilities.

Run:  python tests/reference/make_astrometry_fixture.py   (pyuvdata>=3, astropy, pyerfa)
"""
import json
import pathlib

import erfa
import numpy as np
from astropy import units as u
from astropy.coordinates import EarthLocation
from astropy.time import Time
from astropy.utils import iers
from pyuvdata import Telescope, UVData
from pyuvdata.utils.phasing import calc_frame_pos_angle, calc_uvw
from pyuvdata.utils.times import get_lst_for_time

iers.conf.auto_download = False
here = pathlib.Path(__file__).resolve().parent
data = here.parent / "data"
repo = here.parent.parent

# The IERS rows both sides use.
import astropy_iers_data
finals = pathlib.Path(astropy_iers_data.__file__).parent / "data" / "finals2000A.all"
rows = [l for l in finals.read_text().splitlines() if 60676.0 <= float(l[7:15]) <= 61556.0]
(data / "finals2000A_extract.txt").write_text("\n".join(rows) + "\n")
iers_a = iers.IERS_A.open(str(finals))
iers.earth_orientation_table.set(iers_a)

lat, lon, alt = 37.233386982, -118.283405115, 1188.0
loc = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, alt * u.m)

# Station table -> ECEF offsets from the site (WGS84), as contimg does.
stations = {}
for line in (repo / "configs/dsa110/DSA110_Station_Coordinates.csv").read_text().splitlines()[6:]:
    c = [x.strip() for x in line.split(",")]
    if len(c) < 4 or not c[1].startswith("DSA-"):
        continue
    elev = float(c[4]) if len(c) > 4 and c[4] else 1182.6
    stations[int(c[1][4:])] = EarthLocation.from_geodetic(float(c[3]) * u.deg, float(c[2]) * u.deg, elev * u.m)
site_xyz = np.array([loc.x.to_value("m"), loc.y.to_value("m"), loc.z.to_value("m")])
ant_pos = np.array([[s.x.to_value("m"), s.y.to_value("m"), s.z.to_value("m")] for _, s in sorted(stations.items())]) - site_xyz

times_iso = ["2026-03-14T05:00:00", "2026-03-14T17:31:07.5", "2025-09-02T11:12:13"]
decs = [16.3, 54.6, 71.6]
cases = []
for iso in times_iso:
    t = Time(iso, scale="utc")
    dut1 = float(t.delta_ut1_utc)
    xp, yp = (q.to_value("rad") for q in iers.earth_orientation_table.get().pm_xy(t))
    lst = float(get_lst_for_time(np.array([t.jd]), telescope_loc=loc, astrometry_library="erfa")[0])
    for dec in decs:
        rc, dc = erfa.atoc13("H", 0.0, np.deg2rad(dec), t.jd1, t.jd2, dut1, np.deg2rad(lon), np.deg2rad(lat), alt, xp, yp, 0.0, 0.0, 0.0, 0.0)
        cases.append({"utc": iso, "jd": t.jd, "dut1_s": dut1, "xp_rad": float(xp), "yp_rad": float(yp), "last_rad": lst, "dec_app_deg": dec,
                      "meridian_icrs_ra_deg": float(np.rad2deg(rc)) % 360.0, "meridian_icrs_dec_deg": float(np.rad2deg(dc))})

# UVW and rephasing phases from pyuvdata: unprojected data (V = 1) phased to the meridian
# ICRS position of each case.
ants = [1, 24, 51, 52, 80, 102, 103, 110, 117]  # station numbers: both arms and outriggers
tel = Telescope.new(name="OVRO_MMA", location=loc, antenna_names=[str(i) for i in range(1, 118)],
                    antenna_numbers=np.arange(117), antenna_positions=ant_pos, instrument="DSA")
antpairs = [(ants[i] - 1, ants[j] - 1) for j in range(len(ants)) for i in range(j)]
freqs = np.array([1.3114e9, 1.4987e9])
uvw_cases = []
for case in cases:
    uvd = UVData.new(freq_array=freqs, polarization_array=[-5], times=np.array([case["jd"]]), telescope=tel,
                     antpairs=antpairs, do_blt_outer=True, integration_time=12.884901888, channel_width=244140.625,
                     data_array=np.ones((len(antpairs), 2, 1), dtype=np.complex64), history="reference")
    old_w = uvd.uvw_array[:, 2].copy()  # unprojected: ENU 'up' component
    uvd.phase(lon=np.deg2rad(case["meridian_icrs_ra_deg"]), lat=np.deg2rad(case["meridian_icrs_dec_deg"]),
              cat_name="centre", phase_frame="icrs")
    # pyuvdata's frame position angle comes from a +-0.5 deg finite difference, biased by
    # up to 0.17 mrad at dec 72 (0.4 m on 2.6 km baselines). Recompute it with a 1e-5 rad
    # offset (converged to 1e-9 rad) and let pyuvdata's calc_uvw form the UVW with it.
    pa = calc_frame_pos_angle(time_array=uvd.time_array, app_ra=uvd.phase_center_app_ra,
                              app_dec=uvd.phase_center_app_dec, telescope_loc=loc, ref_frame="icrs", offset_pos=1e-5)
    uvd.uvw_array = calc_uvw(app_ra=uvd.phase_center_app_ra, app_dec=uvd.phase_center_app_dec, frame_pa=pa,
                             lst_array=uvd.lst_array, use_ant_pos=True, antenna_positions=tel.antenna_positions,
                             antenna_numbers=tel.antenna_numbers, ant_1_array=uvd.ant_1_array,
                             ant_2_array=uvd.ant_2_array, telescope_lat=loc.lat.rad, telescope_lon=loc.lon.rad)
    uvd.phase_center_frame_pa = pa
    uvw_cases.append({
        "jd": case["jd"], "ra_deg": case["meridian_icrs_ra_deg"], "dec_deg": case["meridian_icrs_dec_deg"],
        "ant1": [int(a) for a in uvd.ant_1_array], "ant2": [int(a) for a in uvd.ant_2_array],
        "uvw_m": uvd.uvw_array.tolist(), "old_w_m": old_w.tolist(), "freq_hz": freqs.tolist(),
        "phase_rad": np.angle(uvd.data_array[:, :, 0].astype(np.complex128)).tolist(),
        "app_ra_rad": float(uvd.phase_center_app_ra[0]), "app_dec_rad": float(uvd.phase_center_app_dec[0]),
        "frame_pa_rad": float(uvd.phase_center_frame_pa[0]), "lst_rad": float(uvd.lst_array[0]),
    })

out = {"site": {"lat_deg": lat, "lon_deg": lon, "alt_m": alt}, "ant_pos_m": ant_pos.tolist(),
       "cases": cases, "uvw_cases": uvw_cases}
(data / "astrometry_reference.json").write_text(json.dumps(out, indent=1))
print("wrote", data / "astrometry_reference.json")
