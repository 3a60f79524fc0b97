//! Plots a scaling sweep written by benches/scaling.sh: groups per hour and parallel
//! efficiency against the number of ranks, strong and weak scaling, as one SVG.
//!
//!   cargo run --release --example scaling_plot -- results.csv scaling.svg
//!
//! CSV columns: mode,ranks,threads,groups,wall_s,groups_per_hour,efficiency

use plotters::prelude::*;

struct Row {
    mode: String,
    ranks: f64,
    gph: f64,
    eff: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (csv, svg) = match args.as_slice() {
        [_, c, s] => (c, s),
        _ => return Err("usage: scaling_plot RESULTS.csv OUT.svg".into()),
    };
    let text = std::fs::read_to_string(csv).map_err(|e| format!("{csv}: {e}"))?;
    let mut rows = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            return Err(format!("{csv}:{}: expected 7 columns, found {}", i + 1, f.len()).into());
        }
        let num = |k: usize| {
            f[k].trim()
                .parse::<f64>()
                .map_err(|e| format!("{csv}:{}: column {}: {e}", i + 1, k + 1))
        };
        rows.push(Row {
            mode: f[0].trim().to_string(),
            ranks: num(1)?,
            gph: num(5)?,
            eff: num(6)?,
        });
    }
    if rows.is_empty() {
        return Err(format!("{csv}: no results").into());
    }
    let max_r = rows.iter().map(|r| r.ranks).fold(1.0, f64::max);
    let max_g = rows.iter().map(|r| r.gph).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::new(svg, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let modes = ["strong", "weak"];
    let colours = [BLUE, RED];
    let mut a = ChartBuilder::on(&left)
        .caption("Throughput", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.5..max_r + 0.5, 0.0..max_g.max(1e-9))?;
    a.configure_mesh()
        .x_desc("MPI ranks")
        .y_desc("groups per hour")
        .draw()?;
    let mut b = ChartBuilder::on(&right)
        .caption("Parallel efficiency", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.5..max_r + 0.5, 0.0..1.2)?;
    b.configure_mesh()
        .x_desc("MPI ranks")
        .y_desc("efficiency")
        .draw()?;
    for (mode, colour) in modes.iter().zip(colours) {
        let pts: Vec<&Row> = rows.iter().filter(|r| r.mode == *mode).collect();
        if pts.is_empty() {
            continue;
        }
        a.draw_series(LineSeries::new(
            pts.iter().map(|r| (r.ranks, r.gph)),
            colour.stroke_width(2),
        ))?
        .label(*mode)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
        a.draw_series(
            pts.iter()
                .map(|r| Circle::new((r.ranks, r.gph), 4, colour.filled())),
        )?;
        b.draw_series(LineSeries::new(
            pts.iter().map(|r| (r.ranks, r.eff)),
            colour.stroke_width(2),
        ))?
        .label(*mode)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
        b.draw_series(
            pts.iter()
                .map(|r| Circle::new((r.ranks, r.eff), 4, colour.filled())),
        )?;
    }
    a.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    b.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    println!("wrote {svg}");
    Ok(())
}
