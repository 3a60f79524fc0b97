//! The `contimg` binary: one SPMD program for `mpirun`, `srun` or a plain single rank.

use clap::{Parser, Subcommand};
use contimg::comm::{Comm, SingleComm};
use contimg::config::Config;
use contimg::exit;
use contimg::Error;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "contimg", version, about = "DSA-110 continuum imaging pipeline (SPMD; run under mpirun/srun or alone)", after_help = contimg::exit::HELP)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Layered settings: files in order, then single options.
#[derive(clap::Args, Clone, Default)]
struct SettingsArgs {
    /// A YAML settings file; repeatable: a later file overrides the options it names.
    /// Relative paths inside a file are taken from that file's folder.
    #[arg(long = "config", value_name = "FILE")]
    configs: Vec<PathBuf>,
    /// One option, `key.path=value` (YAML value), after the files; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

impl SettingsArgs {
    fn load(&self) -> Result<Config, contimg::config::ConfigError> {
        Config::load_layered(&self.configs, &self.sets)
    }
}

/// The settings of a night and the directories that override them.
#[derive(clap::Args)]
struct NightArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// Overrides `input.dir`.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Overrides `output.dir`.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a synthetic night of DSA-110 UVH5 files (and truth.json / truth.h5).
    Simulate {
        /// Output directory for the night's files.
        #[arg(long)]
        out: PathBuf,
        /// Settings (their `simulate:` section and `station_table`).
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Print the complete effective settings as YAML (every option; the defaults where no
    /// file or --set gives one): `contimg config --config a.yaml --set imaging.npix=300`.
    Config {
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Process a night: discover, plan, convert, grid, reduce, image, write products.
    Run {
        #[command(flatten)]
        night: NightArgs,
    },
    /// Convert the night's groups to Measurement Sets (`<output>/ms/<group>.ms`), flagged
    /// when flagging is enabled, rephased to each group's centre. Needs `--features ms`.
    Convert {
        #[command(flatten)]
        night: NightArgs,
        /// Overrides `output.ms.spectral_windows`: merged | subbands.
        #[arg(long, value_parser = ["merged", "subbands"])]
        spectral_windows: Option<String>,
    },
    /// Summarise a night's output directory, or every night under an archive root; exit 0
    /// when all are complete, 3 otherwise (4: no nights). `--json` also writes the summary as JSON.
    Status {
        dir: PathBuf,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Forced photometry at catalogue positions in every tile of the nights (pbcor images,
    /// else restored), light curves and variability metrics (eta, V, m, Vs) with candidates:
    /// `<out>/lightcurves.csv`, `<out>/variability.csv`.
    Photometry {
        /// Night output directories (each with images/).
        nights: Vec<PathBuf>,
        /// Positions: a CSV of name,ra_deg,dec_deg ...
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// ... or a simulation's truth.json (its sources) ...
        #[arg(long)]
        truth: Option<PathBuf>,
        /// ... or the VLA calibrator list (e.g. configs/dsa110/vlacalibrators.txt).
        #[arg(long)]
        calibrators: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Candidate thresholds: eta, V, and |Vs| of the most modulated pair.
        #[arg(long, default_value_t = 5.0)]
        eta: f64,
        #[arg(long, default_value_t = 0.1)]
        v: f64,
        #[arg(long, default_value_t = 4.3)]
        vs: f64,
    },
    /// Mosaic a night's tiles (images/*.pbcor.fits with .pb and .residual) on one CAR grid,
    /// weighted by PB^2 / rms^2: `<out>/mosaic.fits`, `mosaic.weight.fits`, `mosaic.rms.fits`.
    Mosaic {
        /// The night's output directory.
        night: PathBuf,
        /// Where the mosaic goes (default: <night>/mosaic).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Tile pixels below this primary-beam level are left out.
        #[arg(long, default_value_t = 0.2)]
        pblimit: f64,
    },
    /// The night's QA report: `<night>/qa/report.json` and a self-contained `report.html`
    /// (gates, flagging, bandpasses, noise, thumbnails, source recovery, time per stage).
    /// Exits 5 when a gate fails (`--warn-only`: 0).
    Report {
        /// The night's output directory (with summary.json).
        night: PathBuf,
        /// A simulation's truth.json: thermal noise and source-recovery checks.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Exit 0 even when a gate fails (the failure is still printed); default: exit 5.
        #[arg(long)]
        warn_only: bool,
    },
    /// Print a UVH5 file's header summary (validates it).
    Inspect { file: PathBuf },
}

fn make_comm() -> Box<dyn Comm> {
    #[cfg(feature = "mpi")]
    {
        if let Some(c) = contimg::comm::MpiComm::init() {
            return Box::new(c);
        }
    }
    Box::new(SingleComm)
}

fn init_logging(rank: usize, size: usize) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    b.format(move |buf, rec| {
        let ts = buf.timestamp_seconds();
        writeln!(
            buf,
            "[{ts} {} rank {rank}/{size}] {}",
            rec.level(),
            rec.args()
        )
    });
    let _ = b.try_init();
}

/// Every rank loads the config; agreement on success keeps ranks in step.
fn load_on_all_ranks(
    comm: &dyn Comm,
    what: &str,
    settings: &SettingsArgs,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
) -> Option<Config> {
    let cfg = settings.load().map(|mut c| {
        // Relative to the working directory, recorded absolute (as --set paths).
        let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
        if let Some(i) = input {
            c.input.dir = abs(i);
        }
        if let Some(o) = output {
            c.output.dir = abs(o);
        }
        c
    });
    if !comm.all_ok(cfg.is_ok()) {
        if let Err(e) = &cfg {
            eprintln!("contimg {what}: error: {e}");
        } else {
            eprintln!("contimg {what}: another rank could not load the config");
        }
        return None;
    }
    cfg.ok()
}

/// Reports a panic with the rank and thread; a panic on the main thread ends the whole job
/// with `MPI_Abort` (a peer would otherwise wait in its next collective forever). Panics of
/// helper threads are their owners' to handle (the prefetch thread's makes its group fail);
/// those that reach the main thread through rayon are caught in `main`.
const EXIT_PANIC: i32 = exit::PANIC;

fn install_panic_hook(rank: usize, size: usize) {
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let bt = std::backtrace::Backtrace::capture();
        contimg::comm::say(&format!(
            "contimg: rank {rank}/{size}: internal error (panic) in thread '{name}': {info}"
        ));
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            contimg::comm::say(&format!("{bt}"));
        }
        if name == "main" {
            contimg::comm::say(&format!(
                "contimg: rank {rank}/{size}: ending the job (MPI_Abort, exit {EXIT_PANIC})"
            ));
            contimg::comm::abort(EXIT_PANIC);
        }
    }));
}

/// Test hook, for the tests that end or stop one rank on purpose: `CONTIMG_FAULT=panic@R`,
/// `stop@R` (SIGSTOP) or `kill@R` (SIGKILL) acts on rank R just before the night starts.
fn inject_fault(rank: usize) {
    let Ok(spec) = std::env::var("CONTIMG_FAULT") else {
        return;
    };
    let Some((what, r)) = spec.split_once('@') else {
        return;
    };
    if r.parse::<usize>().ok() != Some(rank) {
        return;
    }
    let signal = |sig: &str| {
        let _ = std::process::Command::new("kill")
            .args([sig, &std::process::id().to_string()])
            .status();
        std::thread::sleep(std::time::Duration::from_secs(3600));
    };
    match what {
        "panic" => panic!("CONTIMG_FAULT: panic injected on rank {rank}"),
        "stop" => signal("-STOP"),
        "kill" => signal("-KILL"),
        _ => {}
    }
}

fn main() -> ExitCode {
    match std::panic::catch_unwind(real_main) {
        Ok(code) => code,
        Err(_) => {
            eprintln!(
                "contimg: internal error (panic) reached main: ending the job (exit {EXIT_PANIC})"
            );
            contimg::comm::abort(EXIT_PANIC)
        }
    }
}

fn real_main() -> ExitCode {
    install_panic_hook(0, 1);
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Config { settings } => finish("config", config(&settings)),
        Cmd::Simulate { out, settings } => finish("simulate", simulate(&out, &settings)),
        Cmd::Status { dir, json } => finish("status", status(&dir, json.as_deref())),
        Cmd::Photometry {
            nights,
            catalog,
            truth,
            calibrators,
            out,
            eta,
            v,
            vs,
        } => {
            init_logging(0, 1);
            let th = contimg::photometry::Thresholds { eta, v, vs };
            let res = photometry_targets(catalog, truth, calibrators)
                .and_then(|t| photometry(&nights, &t, &out, th));
            finish("photometry", res)
        }
        Cmd::Mosaic {
            night,
            out,
            pblimit,
        } => finish("mosaic", mosaic(&night, out, pblimit)),
        Cmd::Report {
            night,
            truth,
            warn_only,
        } => finish("report", report(&night, truth.as_deref(), warn_only)),
        Cmd::Inspect { file } => finish("inspect", inspect(&file)),
        Cmd::Convert {
            night,
            spectral_windows,
        } => convert(night, spectral_windows),
        Cmd::Run { night } => run(night),
    }
}

/// A command's exit: its code, or its error (naming the file and the problem) printed.
fn finish(cmd: &str, res: Result<ExitCode, Error>) -> ExitCode {
    res.unwrap_or_else(|e| {
        eprintln!("contimg {cmd}: error: {e}");
        ExitCode::FAILURE
    })
}

/// A collective command's exit on one rank: its code, or its error printed with the rank.
fn finish_rank(cmd: &str, rank: usize, res: Result<ExitCode, Error>) -> ExitCode {
    res.unwrap_or_else(|e| {
        eprintln!("contimg {cmd}: error (rank {rank}): {e}");
        ExitCode::FAILURE
    })
}

fn config(settings: &SettingsArgs) -> Result<ExitCode, Error> {
    let cfg = settings.load()?;
    print!("{}", cfg.to_yaml());
    Ok(ExitCode::SUCCESS)
}

fn simulate(out: &std::path::Path, settings: &SettingsArgs) -> Result<ExitCode, Error> {
    init_logging(0, 1);
    let cfg = settings.load()?;
    let truth = contimg::simulate::run(&cfg, out)?;
    println!(
        "simulated {} groups, {} sources into {}",
        truth.groups.len(),
        truth.sources.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn status(dir: &std::path::Path, json: Option<&std::path::Path>) -> Result<ExitCode, Error> {
    let a = contimg::status::collect(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    print!("{}", contimg::status::render(&a));
    if let Some(j) = json {
        contimg::products::write_atomic(
            j,
            serde_json::to_string_pretty(&a)
                .expect("serialises")
                .as_bytes(),
        )
        .map_err(|source| Error::Io {
            path: j.into(),
            source,
        })?;
    }
    Ok(ExitCode::from(if a.nights.is_empty() {
        exit::NOTHING_IMAGED
    } else if a.complete == a.nights.len() {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}

/// The photometry's positions: from one of a catalogue, a simulation's truth or the VLA
/// calibrator list.
fn photometry_targets(
    catalog: Option<PathBuf>,
    truth: Option<PathBuf>,
    calibrators: Option<PathBuf>,
) -> Result<Vec<contimg::photometry::Target>, Error> {
    use contimg::photometry::Target;
    match (catalog, truth, calibrators) {
        (Some(c), None, None) => Ok(contimg::photometry::read_catalog(&c)?),
        (None, Some(t), None) => {
            let tr =
                contimg::simulate::Truth::load(t.parent().unwrap_or(std::path::Path::new(".")))?;
            Ok(tr
                .sources
                .iter()
                .enumerate()
                .map(|(k, s)| Target {
                    name: format!("truth_{k}"),
                    ra_deg: s.ra_deg,
                    dec_deg: s.dec_deg,
                })
                .collect())
        }
        (None, None, Some(c)) => Ok(contimg::calibrate::catalog::read_calibrators(&c)?
            .iter()
            .map(|k| Target {
                name: k.name.clone(),
                ra_deg: k.ra_rad.to_degrees(),
                dec_deg: k.dec_rad.to_degrees(),
            })
            .collect()),
        _ => Err(Error::Usage(
            "give one of --catalog, --truth or --calibrators",
        )),
    }
}

fn photometry(
    nights: &[PathBuf],
    targets: &[contimg::photometry::Target],
    out: &std::path::Path,
    th: contimg::photometry::Thresholds,
) -> Result<ExitCode, Error> {
    let ms = contimg::photometry::measure_nights(nights, targets)?;
    let vars =
        contimg::photometry::write_tables(out, &ms, targets, th).map_err(|source| Error::Io {
            path: out.into(),
            source,
        })?;
    let cands: Vec<&str> = vars
        .iter()
        .filter(|v| v.candidate)
        .map(|v| v.source.as_str())
        .collect();
    println!(
        "photometry: {} measurements of {} sources; {} candidates{}{}",
        ms.len(),
        vars.len(),
        cands.len(),
        if cands.is_empty() { "" } else { ": " },
        cands.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn mosaic(night: &std::path::Path, out: Option<PathBuf>, pblimit: f64) -> Result<ExitCode, Error> {
    init_logging(0, 1);
    let out = out.unwrap_or_else(|| night.join("mosaic"));
    let s = contimg::mosaic::build(night, &out, pblimit)?;
    println!(
        "mosaic: {} tiles -> {} x {} pixels in {}",
        s.tiles,
        s.nx,
        s.ny,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn report(
    night: &std::path::Path,
    truth: Option<&std::path::Path>,
    warn_only: bool,
) -> Result<ExitCode, Error> {
    init_logging(0, 1);
    let r = contimg::report::write(night, truth)?;
    let worst = r.gates.iter().map(|g| g.1.as_str()).fold("pass", |a, b| {
        if a == "fail" || b == "fail" {
            "fail"
        } else if a == "warn" || b == "warn" {
            "warn"
        } else {
            "pass"
        }
    });
    println!(
        "report: {} gates ({worst}) -> {}",
        r.gates.len(),
        night.join("qa/report.html").display()
    );
    if worst == "fail" {
        for g in r.gates.iter().filter(|g| g.1 == "fail") {
            eprintln!("contimg report: gate failed: {}", g.0);
        }
        if !warn_only {
            return Ok(ExitCode::from(exit::GATE_FAILED));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(file: &std::path::Path) -> Result<ExitCode, Error> {
    init_logging(0, 1);
    let h = contimg::uvh5::read_header(file)?;
    println!(
        "{}: {} antennas, {} baselines x {} times, {} channels {:.3}-{:.3} MHz, pols {:?}, pointing dec {:.4} deg, {} shapes",
        file.display(),
        h.nants_data,
        h.nbls,
        h.ntimes,
        h.nfreqs,
        h.freq_array.iter().copied().fold(f64::INFINITY, f64::min) / 1e6,
        h.freq_array.iter().copied().fold(0.0, f64::max) / 1e6,
        h.polarization_array,
        h.phase_center_dec.to_degrees(),
        if h.legacy_shapes { "legacy" } else { "pyuvdata-3" }
    );
    Ok(ExitCode::SUCCESS)
}

/// The communicator, logging, the panic hook and the settings of a collective command,
/// loaded on every rank (None: a rank could not load them; said on stderr).
fn start_collective(what: &str, night: NightArgs) -> Option<(Box<dyn Comm>, Config)> {
    let NightArgs {
        settings,
        input,
        output,
    } = night;
    let comm = make_comm();
    init_logging(comm.rank(), comm.size());
    install_panic_hook(comm.rank(), comm.size());
    let cfg = load_on_all_ranks(comm.as_ref(), what, &settings, input, output)?;
    comm.set_collective_timeout(std::time::Duration::from_secs_f64(
        cfg.mpi.collective_timeout_s,
    ));
    Some((comm, cfg))
}

fn convert(night: NightArgs, spectral_windows: Option<String>) -> ExitCode {
    let Some((comm, mut cfg)) = start_collective("convert", night) else {
        return ExitCode::FAILURE;
    };
    if let Some(s) = spectral_windows {
        cfg.output.ms.spectral_windows = if s == "subbands" {
            contimg::ms::SpwLayout::Subbands
        } else {
            contimg::ms::SpwLayout::Merged
        };
    }
    if !contimg::ms::AVAILABLE {
        if comm.is_root() {
            eprintln!("contimg convert: error: this binary was built without Measurement Set support (cargo build --release --features ms)");
        }
        return ExitCode::FAILURE;
    }
    let res = contimg::export::convert_night(&cfg, comm.as_ref()).map_err(Error::from);
    let res = res.map(|s| match s {
        Some(s) => {
            let ok = s.groups.iter().filter(|g| g.result.is_ok()).count();
            println!("convert: {ok} of {} groups written as Measurement Sets in {:.1} s; {} skipped, {} failed", s.groups.len(), s.wall_s, s.skipped.len(), s.groups.len() - ok);
            ExitCode::from(if ok == 0 {
                exit::NOTHING_IMAGED
            } else if s.complete() {
                exit::OK
            } else {
                exit::INCOMPLETE
            })
        }
        None => ExitCode::SUCCESS,
    });
    finish_rank("convert", comm.rank(), res)
}

fn run(night: NightArgs) -> ExitCode {
    let Some((comm, cfg)) = start_collective("run", night) else {
        return ExitCode::FAILURE;
    };
    let mem = cfg.check_memory(
        contimg::compute::local_size(),
        contimg::config::available_memory(),
    );
    if !comm.all_ok(mem.is_ok()) {
        if let Err(e) = mem {
            eprintln!("contimg run: error (rank {}): {e}", comm.rank());
        }
        return ExitCode::FAILURE;
    }
    inject_fault(comm.rank());
    let res = contimg::pipeline::run(&cfg, comm.as_ref()).map_err(Error::from);
    // Other ranks (None): mpirun/srun report rank 0's code.
    let res = res.map(|s| s.map_or(ExitCode::SUCCESS, |s| night_exit(&s)));
    finish_rank("run", comm.rank(), res)
}

/// The night's line on stdout and its exit code (rank 0).
fn night_exit(summary: &contimg::night::Summary) -> ExitCode {
    println!(
        "night: {} of {} planned groups imaged into {} images on {} ranks in {:.1} s; {} skipped, {} failed{}",
        summary.groups_ok,
        summary.groups_planned,
        summary.images.iter().filter(|i| i.error.is_none()).count(),
        summary.n_ranks,
        summary.wall_s,
        summary.groups_skipped.len(),
        summary.groups_failed.len(),
        match summary.outcome.as_str() {
            "complete" => "",
            "incomplete" => " (night incomplete: see summary.json)",
            _ => " (nothing imaged: see summary.json)",
        }
    );
    ExitCode::from(match summary.outcome.as_str() {
        "complete" => exit::OK,
        "incomplete" => exit::INCOMPLETE,
        _ => exit::NOTHING_IMAGED,
    })
}
