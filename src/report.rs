//! The night's QA report: `qa/report.json` and one self-contained `qa/report.html` (inline
//! SVG plots drawn with plotters) from what a run left: `summary.json`, the calibration
//! tables, the images, and, for simulated nights, `truth.json`.
//!
//! Contents: pass/warn/fail gates; throughput (groups per hour); flag fractions per group
//! and a groups x channels flag waterfall; bandpass amplitude and phase per antenna; image
//! thumbnails; residual noise against the thermal expectation (truth) per image; a source
//! recovery table (truth); the per-rank per-stage time.

use crate::night::Summary;
use crate::photometry::Image;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub night: PathBuf,
    pub complete: bool,
    pub groups_ok: usize,
    pub groups_planned: usize,
    pub groups_per_hour: f64,
    pub gates: Vec<(String, String)>,
    /// Per image: (name, residual rms Jy/beam, thermal expectation Jy/beam if known).
    pub noise: Vec<(String, f64, Option<f64>)>,
    /// Per truth source and image: (source, image, apparent Jy, measured Jy).
    pub recovery: Vec<(String, String, f64, f64)>,
}

fn svg(
    w: u32,
    h: u32,
    draw: impl FnOnce(
        DrawingArea<SVGBackend, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error + '_>>,
) -> String {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        if let Err(e) = draw(root) {
            return format!("<p>plot failed: {e}</p>");
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A grey-scale thumbnail (at most 128 x 128 cells) of an image as SVG rectangles. Each
/// cell is the maximum of its k x k block (so an unresolved source shows however small the
/// thumbnail), shown on an asinh stretch from the image's median (black) to its peak
/// (white) with the knee at 3 robust sigmas, so sources near the noise stay visible beside
/// a bright one.
fn thumbnail(img: &Image) -> String {
    let (w, h, cells) = block_maxima(img, 128);
    let finite: Vec<f64> = img
        .data
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| v as f64)
        .collect();
    let (med, sigma) =
        crate::primitives::stats::median_and_mad_sigma(&finite).unwrap_or((0.0, 1.0));
    let peak = cells
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let knee = (3.0 * sigma).max(1e-30);
    let top = ((peak - med) / knee).max(1.0).asinh();
    let mut s = format!("<svg xmlns='http://www.w3.org/2000/svg' width='256' height='256' viewBox='0 0 {w} {h}' shape-rendering='crispEdges'>");
    for y in 0..h {
        for x in 0..w {
            let v = cells[y * w + x];
            let g = if v.is_finite() {
                (255.0 * (((v - med) / knee).max(0.0).asinh() / top).clamp(0.0, 1.0)) as u8
            } else {
                0
            };
            // FITS rows go up: draw the top row first.
            s += &format!(
                "<rect x='{x}' y='{}' width='1' height='1' fill='rgb({g},{g},{g})'/>",
                h - 1 - y
            );
        }
    }
    s + "</svg>"
}

/// The image in blocks of k x k pixels (k the smallest that gives at most `max_cells` per
/// side), each cell the block's largest finite pixel (NaN when it has none): (w, h, cells).
fn block_maxima(img: &Image, max_cells: usize) -> (usize, usize, Vec<f64>) {
    let k = img.nx.max(img.ny).div_ceil(max_cells).max(1);
    let (w, h) = (img.nx.div_ceil(k), img.ny.div_ceil(k));
    let mut cells = vec![f64::NAN; w * h];
    for y in 0..img.ny {
        for x in 0..img.nx {
            let v = img.data[y * img.nx + x] as f64;
            let c = &mut cells[(y / k) * w + x / k];
            if v.is_finite() && (c.is_nan() || v > *c) {
                *c = v;
            }
        }
    }
    (w, h, cells)
}

/// Why the QA report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The simulation's truth (`--truth`) could not be read (the message names the file).
    #[error(transparent)]
    Truth(crate::simulate::SimError),
    #[error("{}: cannot write ({source})", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A gate's verdict: pass when `ok`, else warn when `warn`, else fail.
fn gate(ok: bool, warn: bool, what: String) -> (String, String) {
    let verdict = if ok {
        "pass"
    } else if warn {
        "warn"
    } else {
        "fail"
    };
    (what, verdict.to_string())
}

/// The night's `summary.json`.
fn read_summary(night: &Path) -> Result<Summary, ReportError> {
    let path = night.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Read {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReportError::Parse { path, source })
}

/// Builds the report for a night's output directory.
pub fn build(night: &Path, truth: Option<&Path>) -> Result<(Report, String), ReportError> {
    let summary = read_summary(night)?;
    let truth = match truth {
        Some(t) => Some(
            crate::simulate::Truth::load(t.parent().unwrap_or(Path::new(".")))
                .map_err(ReportError::Truth)?,
        ),
        None => None,
    };
    let groups: Vec<&crate::night::GroupReport> = {
        let mut g: Vec<_> = summary.ranks.iter().flat_map(|r| r.groups.iter()).collect();
        g.sort_by(|a, b| a.id.cmp(&b.id));
        g
    };
    let gph = if summary.wall_s > 0.0 {
        3600.0 * summary.groups_ok as f64 / summary.wall_s
    } else {
        0.0
    };
    let mut gates = night_gates(&summary, &groups);
    let noise = noise_gates(&summary, &groups, truth.as_ref(), &mut gates);
    let recovery = match &truth {
        Some(t) => recovery_gate(&summary, t, &mut gates),
        None => Vec::new(),
    };
    let report = Report {
        night: night.into(),
        complete: summary.complete,
        groups_ok: summary.groups_ok,
        groups_planned: summary.groups_planned,
        groups_per_hour: gph,
        gates,
        noise,
        recovery,
    };
    let html = render(&report, &summary, &groups, night);
    Ok((report, html))
}

/// The night's own gates: complete, the largest flagged fraction, and the calibration's.
fn night_gates(summary: &Summary, groups: &[&crate::night::GroupReport]) -> Vec<(String, String)> {
    let mut gates: Vec<(String, String)> = Vec::new();
    gates.push(gate(
        summary.complete,
        summary.groups_ok > 0,
        format!(
            "night complete: {} of {} groups imaged",
            summary.groups_ok, summary.groups_planned
        ),
    ));
    let max_flag = groups
        .iter()
        .map(|g| g.flagged_fraction)
        .fold(0.0, f64::max);
    gates.push(gate(
        max_flag < 0.3,
        max_flag < 0.6,
        format!(
            "largest flagged fraction of a group {:.1} %",
            100.0 * max_flag
        ),
    ));
    if let Some(c) = &summary.calibration {
        for (what, verdict) in &c.gates {
            gates.push((format!("calibration: {what}"), verdict.clone()));
        }
    }
    gates
}

/// Noise against the thermal expectation (simulated nights: sigma / sqrt(N samples)):
/// per image (name, residual rms, thermal), with a gate per image where the truth is known.
fn noise_gates(
    summary: &Summary,
    groups: &[&crate::night::GroupReport],
    truth: Option<&crate::simulate::Truth>,
    gates: &mut Vec<(String, String)>,
) -> Vec<(String, f64, Option<f64>)> {
    let mut noise = Vec::new();
    for im in &summary.images {
        let thermal = truth.filter(|t| t.noise_sigma_jy > 0.0).map(|t| {
            // The samples imaged: the group's visibilities less the flagged ones (the
            // autocorrelations among them), natural weighting.
            let n_used: f64 = groups
                .iter()
                .filter(|g| im.name.starts_with(&g.id[..g.id.len().min(16)]) || g.id == im.name)
                .map(|g| g.n_vis as f64 * (1.0 - g.flagged_fraction))
                .sum();
            t.noise_sigma_jy / n_used.max(1.0).sqrt()
        });
        if im.residual_rms_jy > 0.0 {
            if let Some(th) = thermal {
                let r = im.residual_rms_jy / th;
                // A survey's gate: the residual at the thermal noise (1.5x), warn to 3x.
                gates.push(gate(
                    r <= 1.5,
                    r <= 3.0,
                    format!("{}: residual rms {:.2} x thermal (pass <= 1.5)", im.name, r),
                ));
            }
            noise.push((im.name.clone(), im.residual_rms_jy, thermal));
        }
    }
    noise
}

/// Source recovery (truth): forced photometry in the restored images, (source, image,
/// apparent Jy, measured Jy) for every source above 5 x rms, and the gate on those with
/// SNR > 20 (within 5 %).
fn recovery_gate(
    summary: &Summary,
    t: &crate::simulate::Truth,
    gates: &mut Vec<(String, String)>,
) -> Vec<(String, String, f64, f64)> {
    let mut recovery = Vec::new();
    let mut rms_of: std::collections::HashMap<String, f64> = Default::default();
    for (gi, g) in t.groups.iter().enumerate() {
        let Some(im) = summary
            .images
            .iter()
            .find(|i| i.name.starts_with(&g.name[..g.name.len().min(16)]))
        else {
            continue;
        };
        let Some(p) = im
            .products
            .iter()
            .find(|p| p.to_string_lossy().ends_with(".restored.fits"))
        else {
            continue;
        };
        let Ok(img) = Image::read(p) else { continue };
        let rms = img.rms();
        rms_of.insert(im.name.clone(), rms);
        for (k, s) in t.sources.iter().enumerate() {
            let app = s.apparent_flux_jy.get(gi).copied().unwrap_or(0.0);
            if app < 5.0 * rms {
                continue;
            }
            if let Some((f, _)) = img.forced(s.ra_deg, s.dec_deg, rms) {
                recovery.push((format!("truth_{k}"), im.name.clone(), app, f));
            }
        }
    }
    // Every source with SNR > 20 (apparent flux over the image's rms) within 5 %; the
    // table lists every source above 5 x rms.
    let bright: Vec<f64> = recovery
        .iter()
        .filter(|r| r.2 > 20.0 * rms_of.get(&r.1).copied().unwrap_or(f64::INFINITY))
        .map(|r| (r.3 / r.2 - 1.0).abs())
        .collect();
    if !bright.is_empty() {
        let worst = bright.iter().copied().fold(0.0, f64::max);
        gates.push(gate(
            worst <= 0.05,
            worst <= 0.15,
            format!(
                "source recovery (SNR > 20): worst flux error {:.1} % over {} measurements",
                100.0 * worst,
                bright.len()
            ),
        ));
    }
    recovery
}

fn render(
    r: &Report,
    summary: &Summary,
    groups: &[&crate::night::GroupReport],
    night: &Path,
) -> String {
    let mut h = String::from("<!DOCTYPE html><html><head><meta charset='utf-8'><title>contimg QA</title><style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%}.pass{background:#cfc}.warn{background:#ffc}.fail{background:#fcc}.thumbs div{display:inline-block;margin:4px;text-align:center;font-size:80%}</style></head><body>");
    h += &format!("<h1>contimg QA: {}</h1>", esc(&night.display().to_string()));
    h += &format!(
        "<p>{} of {} groups imaged on {} ranks in {:.1} s: <b>{:.1} groups/hour</b>; night {}.</p>",
        r.groups_ok,
        r.groups_planned,
        summary.n_ranks,
        summary.wall_s,
        r.groups_per_hour,
        if r.complete { "complete" } else { "incomplete" }
    );
    h += "<h2>Gates</h2><table><tr><th>check</th><th>verdict</th></tr>";
    for (what, v) in &r.gates {
        h += &format!("<tr><td>{}</td><td class='{v}'>{v}</td></tr>", esc(what));
    }
    h += "</table>";
    h += &flagging_section(groups);
    h += &calibration_section(night);
    h += &tables_section(r);
    h += &thumbnails_section(summary);
    h += &stage_times_section(summary);
    h + "</body></html>"
}

/// Flag fractions per group and the groups x channels waterfall.
fn flagging_section(groups: &[&crate::night::GroupReport]) -> String {
    let mut h = String::new();
    h += "<h2>Flagging</h2>";
    let ff: Vec<f64> = groups.iter().map(|g| g.flagged_fraction).collect();
    h += &svg(900, 260, |root| {
        let mut c = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .caption("flagged fraction per group", ("sans-serif", 16))
            .build_cartesian_2d(0..ff.len().max(1), 0.0..1.0)?;
        c.configure_mesh()
            .x_desc("group")
            .y_desc("fraction")
            .draw()?;
        c.draw_series(
            ff.iter()
                .enumerate()
                .map(|(i, f)| Rectangle::new([(i, 0.0), (i + 1, *f)], BLUE.mix(0.6).filled())),
        )?;
        Ok(())
    });
    let wf: Vec<&Vec<f64>> = groups
        .iter()
        .filter_map(|g| g.flags.as_ref().map(|f| &f.per_channel))
        .filter(|v| !v.is_empty())
        .collect();
    if let Some(nc) = wf.first().map(|v| v.len()) {
        h += &svg(900, 60 + 12 * wf.len().min(60) as u32, |root| {
            let mut c = ChartBuilder::on(&root)
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .caption(
                    "flag waterfall: groups x channels (dark = flagged)",
                    ("sans-serif", 16),
                )
                .build_cartesian_2d(0..nc, 0..wf.len())?;
            c.configure_mesh()
                .x_desc("channel")
                .y_desc("group")
                .disable_mesh()
                .draw()?;
            c.draw_series(wf.iter().enumerate().flat_map(|(g, row)| {
                row.iter().enumerate().map(move |(ch, f)| {
                    let v = (255.0 * (1.0 - f.clamp(0.0, 1.0))) as u8;
                    Rectangle::new([(ch, g), (ch + 1, g + 1)], RGBColor(v, v, v).filled())
                })
            }))?;
            Ok(())
        });
    }
    h
}

/// Bandpass per antenna (amplitude and phase per polarisation) and delays, per table in
/// `<night>/cal`.
fn calibration_section(night: &Path) -> String {
    let mut h = String::new();
    let cal_dir = night.join("cal");
    let mut tables: Vec<PathBuf> = std::fs::read_dir(&cal_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "h5"))
        .collect();
    tables.sort();
    for p in &tables {
        let t = match crate::calibrate::table::CalTable::read(p) {
            Ok(t) => t,
            Err(e) => {
                h += &format!("<p>{}</p>", esc(&e.to_string()));
                continue;
            }
        };
        h += &format!(
            "<h2>Calibration: {} ({})</h2>",
            esc(&t.calibrator),
            esc(&p.file_name().unwrap_or_default().to_string_lossy())
        );
        for pol in 0..2 {
            h += &gain_plot(&t, pol, true);
            h += &gain_plot(&t, pol, false);
        }
        h += &delay_plot(&t);
    }
    h
}

/// The noise and source recovery tables (and the noise plot).
fn tables_section(r: &Report) -> String {
    let mut h = String::new();
    if !r.noise.is_empty() {
        h += &noise_plot(&r.noise);
        h += "<h2>Noise</h2><table><tr><th>image</th><th>residual rms (mJy/beam)</th><th>thermal (mJy/beam)</th><th>ratio</th></tr>";
        for (name, rms, th) in &r.noise {
            h += &format!(
                "<tr><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                rms * 1e3,
                th.map(|t| format!("{:.3}", t * 1e3)).unwrap_or("-".into()),
                th.map(|t| format!("{:.2}", rms / t)).unwrap_or("-".into())
            );
        }
        h += "</table>";
    }
    if !r.recovery.is_empty() {
        h += "<h2>Source recovery (truth)</h2><table><tr><th>source</th><th>image</th><th>apparent (Jy)</th><th>measured (Jy)</th><th>error</th></tr>";
        for (s, im, app, m) in &r.recovery {
            h += &format!(
                "<tr><td>{s}</td><td>{}</td><td>{app:.4}</td><td>{m:.4}</td><td>{:+.2} %</td></tr>",
                esc(im),
                100.0 * (m / app - 1.0)
            );
        }
        h += "</table>";
    }
    h
}

/// Thumbnails of the restored (else dirty) images, at most 48.
fn thumbnails_section(summary: &Summary) -> String {
    let mut h = String::new();
    h += "<h2>Images (restored)</h2><div class='thumbs'>";
    for im in summary.images.iter().take(48) {
        if let Some(p) = im.products.iter().find(|p| {
            p.to_string_lossy().ends_with(".restored.fits")
                || p.to_string_lossy().ends_with(".dirty.fits")
        }) {
            if let Ok(img) = Image::read(p) {
                h += &format!("<div>{}<br>{}</div>", thumbnail(&img), esc(&im.name));
            }
        }
    }
    h += "</div>";
    h
}

/// The per-rank per-stage time, stacked.
fn stage_times_section(summary: &Summary) -> String {
    let mut h = String::new();
    h += "<h2>Time per rank and stage</h2>";
    let stages: Vec<String> = {
        let mut s: Vec<String> = summary
            .ranks
            .iter()
            .flat_map(|r| r.stage_s.keys().cloned())
            .collect();
        s.sort();
        s.dedup();
        s
    };
    let tmax = summary
        .ranks
        .iter()
        .map(|r| r.stage_s.values().sum::<f64>())
        .fold(1e-9, f64::max);
    h += &svg(900, 80 + 30 * summary.ranks.len() as u32, |root| {
        let mut c = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .caption("seconds per stage (stacked)", ("sans-serif", 16))
            .build_cartesian_2d(0.0..tmax * 1.05, 0..summary.ranks.len())?;
        c.configure_mesh().x_desc("s").y_desc("rank").draw()?;
        for (k, st) in stages.iter().enumerate() {
            let col = Palette99::pick(k);
            c.draw_series(summary.ranks.iter().enumerate().map(|(i, rk)| {
                let before: f64 = stages[..k]
                    .iter()
                    .map(|s| rk.stage_s.get(s).copied().unwrap_or(0.0))
                    .sum();
                let v = rk.stage_s.get(st).copied().unwrap_or(0.0);
                Rectangle::new([(before, i), (before + v, i + 1)], col.filled())
            }))?
            .label(st.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], col.filled()));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    });
    h
}

/// The (lo, hi) of a plot axis holding `v`: its 0.5 and 99.5 percentiles, widened by 5 %
/// (and to at least `min_span`), so the curves fill the plot.
fn data_range(mut v: Vec<f64>, min_span: f64) -> (f64, f64) {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f64::total_cmp);
    let (lo, hi) = (v[v.len() / 200], v[v.len() - 1 - v.len() / 200]);
    let pad = ((hi - lo) * 0.05).max(0.5 * (min_span - (hi - lo)).max(0.0));
    (lo - pad, hi + pad.max(1e-12))
}

/// Gain amplitude or phase (deg) against frequency, one curve per antenna, of the first
/// solution interval of a caltable for one polarization, the axis scaled to the data.
fn gain_plot(t: &crate::calibrate::table::CalTable, pol: usize, amp: bool) -> String {
    let nf = t.freq_hz.len();
    if nf == 0 || t.time_jd.is_empty() {
        return String::new();
    }
    let val = |a: usize, ch: usize| {
        let g = t.gains[t.index(0, a, ch, pol)];
        if amp {
            g.norm()
        } else {
            g.arg().to_degrees()
        }
    };
    let good = |a: usize, ch: usize| !t.flags[t.index(0, a, ch, pol)];
    let all: Vec<f64> = (0..t.n_ant())
        .flat_map(|a| {
            (0..nf)
                .filter(move |&ch| good(a, ch))
                .map(move |ch| val(a, ch))
        })
        .collect();
    if all.is_empty() {
        return format!("<p>pol {}: every solution flagged.</p>", ["X", "Y"][pol]);
    }
    let (lo, hi) = data_range(all, if amp { 0.01 } else { 1.0 });
    let what = format!(
        "gain {} (pol {}; {} of {} antennas with solutions)",
        if amp {
            "amplitude"
        } else {
            "phase, deg (delay removed)"
        },
        ["X", "Y"][pol],
        (0..t.n_ant())
            .filter(|&a| (0..nf).any(|c| good(a, c)))
            .count(),
        t.n_ant()
    );
    svg(900, 260, |root| {
        let f0 = t.freq_hz[0] / 1e6;
        let f1 = t.freq_hz[nf - 1] / 1e6;
        let mut c = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .caption(what, ("sans-serif", 16))
            .build_cartesian_2d(f0.min(f1)..f1.max(f0 + 1e-6), lo..hi)?;
        c.configure_mesh().x_desc("MHz").draw()?;
        for a in 0..t.n_ant() {
            let col = Palette99::pick(a);
            c.draw_series(LineSeries::new(
                (0..nf)
                    .filter(|&ch| good(a, ch))
                    .map(|ch| (t.freq_hz[ch] / 1e6, val(a, ch))),
                col.stroke_width(1),
            ))?;
        }
        Ok(())
    })
}

/// Residual rms over the thermal expectation per image, with the 1.5x gate.
fn noise_plot(noise: &[(String, f64, Option<f64>)]) -> String {
    let rows: Vec<(usize, f64)> = noise
        .iter()
        .enumerate()
        .filter_map(|(i, (_, rms, th))| th.map(|t| (i, rms / t)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let top = rows.iter().map(|r| r.1).fold(2.0, f64::max) * 1.1;
    svg(900, 260, |root| {
        let mut c = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .caption(
                "residual rms / thermal per image (red line: the 1.5x gate)",
                ("sans-serif", 16),
            )
            .build_cartesian_2d(0..noise.len(), 0.0..top)?;
        c.configure_mesh()
            .x_desc("image (table order)")
            .y_desc("x thermal")
            .draw()?;
        c.draw_series(rows.iter().map(|&(i, v)| {
            let col = if v <= 1.5 { GREEN } else { RED };
            Rectangle::new([(i, 0.0), (i + 1, v)], col.mix(0.6).filled())
        }))?;
        c.draw_series(LineSeries::new(
            [(0, 1.5), (noise.len(), 1.5)],
            RED.stroke_width(2),
        ))?;
        Ok(())
    })
}

/// Per-antenna delays (ns, relative to the reference antenna) of a caltable, both
/// polarizations, with the antenna polarizations the QA flagged marked; empty when the table
/// has no delays (solved with `calibration.delay: off`, or written before delays existed).
fn delay_plot(t: &crate::calibrate::table::CalTable) -> String {
    let n = t.n_ant();
    let d: Vec<(usize, usize, f64)> = (0..n)
        .flat_map(|a| (0..2).map(move |p| (a, p)))
        .map(|(a, p)| (a, p, t.delay(a, p)))
        .collect();
    if d.iter().all(|x| x.2 == 0.0) {
        return "<p>No delays in the table (delay solve off, or none significant).</p>".into();
    }
    let flagged = |a: usize, p: usize| {
        (0..t.time_jd.len()).all(|k| (0..t.freq_hz.len()).all(|c| t.flags[t.index(k, a, c, p)]))
    };
    let lim = d.iter().map(|x| x.2.abs()).fold(0.0, f64::max).max(0.1) * 1.15;
    let mut s = svg(900, 260, |root| {
        let mut c = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .caption(
                "delay per antenna, ns (X blue, Y red; hollow = antenna pol flagged)",
                ("sans-serif", 16),
            )
            .build_cartesian_2d(0..n.max(1), -lim..lim)?;
        c.configure_mesh()
            .x_desc("antenna index")
            .y_desc("ns")
            .draw()?;
        for p in 0..2 {
            let col = if p == 0 { BLUE } else { RED };
            c.draw_series(d.iter().filter(|x| x.1 == p).map(|&(a, _, v)| {
                Circle::new(
                    (a, v),
                    3,
                    if flagged(a, p) {
                        col.stroke_width(1)
                    } else {
                        col.filled()
                    },
                )
            }))?;
        }
        Ok(())
    });
    let mut rows: Vec<&(usize, usize, f64)> = d.iter().filter(|x| x.2 != 0.0).collect();
    rows.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()));
    s += "<p>Largest delays: ";
    s += &rows
        .iter()
        .take(5)
        .map(|&&(a, p, v)| format!("{} {} {v:+.2} ns", t.antenna_names[a], ["X", "Y"][p]))
        .collect::<Vec<_>>()
        .join(", ");
    s + "</p>"
}

/// Writes `<night>/qa/report.{json,html}` (atomically).
pub fn write(night: &Path, truth: Option<&Path>) -> Result<Report, ReportError> {
    let (r, html) = build(night, truth)?;
    let dir = night.join("qa");
    std::fs::create_dir_all(&dir).map_err(|source| ReportError::Write {
        path: dir.clone(),
        source,
    })?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        crate::products::write_atomic(&path, bytes)
            .map_err(|source| ReportError::Write { path, source })
    };
    write(
        "report.json",
        serde_json::to_string_pretty(&r)
            .expect("serialises")
            .as_bytes(),
    )?;
    write("report.html", html.as_bytes())?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(nx: usize, ny: usize, data: Vec<f32>) -> Image {
        Image {
            path: PathBuf::new(),
            nx,
            ny,
            data,
            code: "SIN".into(),
            crval: [0.0, 0.0],
            crpix: [1.0, 1.0],
            cdelt: [-1e-3, 1e-3],
            beam: [0.0; 3],
            date_obs: String::new(),
        }
    }

    /// A one-pixel source off the sampling lattice shows in its block (sampling every k-th
    /// pixel would miss it), and a blank block stays blank.
    #[test]
    fn thumbnail_blocks_keep_point_sources() {
        let (nx, ny) = (300, 200);
        let mut d = vec![0.0f32; nx * ny];
        d[101 * nx + 37] = 1.0;
        d[0] = f32::NAN;
        let (w, h, cells) = block_maxima(&image(nx, ny, d), 128);
        // k = 3: 100 x 67 cells.
        assert_eq!((w, h), (100, 67));
        assert_eq!(cells[(101 / 3) * w + 37 / 3], 1.0);
        assert_eq!(cells.iter().filter(|&&c| c == 1.0).count(), 1);
        assert_eq!(cells[0], 0.0);
        let s = thumbnail(&image(nx, ny, vec![f32::NAN; nx * ny]));
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
    }

    /// Gains near 1 get an axis about them, not 0-2.5.
    #[test]
    fn axes_follow_the_data() {
        let v: Vec<f64> = (0..1000)
            .map(|i| 0.98 + 0.04 * (i as f64 / 999.0))
            .collect();
        let (lo, hi) = data_range(v, 0.01);
        assert!(
            lo > 0.97 && lo < 0.98 && hi > 1.02 && hi < 1.03,
            "{lo} {hi}"
        );
        let (lo, hi) = data_range(vec![1.0; 10], 0.01);
        assert!((hi - lo - 0.01).abs() < 1e-9, "{lo} {hi}");
    }
}
