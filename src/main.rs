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
        if let Some(i) = input {
            c.input.dir = i;
        }
        if let Some(o) = output {
            c.output.dir = o;
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
        eprintln!("contimg: rank {rank}/{size}: internal error (panic) in thread '{name}': {info}");
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("{bt}");
        }
        if name == "main" {
            eprintln!("contimg: rank {rank}/{size}: ending the job (MPI_Abort, exit {EXIT_PANIC})");
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
        Cmd::Config { settings } => match settings.load() {
            Ok(cfg) => {
                print!("{}", cfg.to_yaml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("contimg config: error: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Simulate { out, settings } => {
            init_logging(0, 1);
            let res = settings
                .load()
                .map_err(Error::from)
                .and_then(|cfg| Ok(contimg::simulate::run(&cfg, &out)?));
            match res {
                Ok(truth) => {
                    println!(
                        "simulated {} groups, {} sources into {}",
                        truth.groups.len(),
                        truth.sources.len(),
                        out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("contimg simulate: error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Status { dir, json } => match contimg::status::collect(&dir) {
            Ok(a) => {
                print!("{}", contimg::status::render(&a));
                if let Some(j) = json {
                    if let Err(e) = contimg::products::write_atomic(
                        &j,
                        serde_json::to_string_pretty(&a)
                            .expect("serialises")
                            .as_bytes(),
                    ) {
                        eprintln!("contimg status: error: {}: {e}", j.display());
                        return ExitCode::FAILURE;
                    }
                }
                ExitCode::from(if a.nights.is_empty() {
                    exit::NOTHING_IMAGED
                } else if a.complete == a.nights.len() {
                    exit::OK
                } else {
                    exit::INCOMPLETE
                })
            }
            Err(e) => {
                eprintln!("contimg status: error: {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
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
            let targets = match (catalog, truth, calibrators) {
                (Some(c), None, None) => {
                    contimg::photometry::read_catalog(&c).map_err(|e| e.to_string())
                }
                (None, Some(t), None) => {
                    contimg::simulate::Truth::load(t.parent().unwrap_or(std::path::Path::new(".")))
                        .map(|tr| {
                            tr.sources
                                .iter()
                                .enumerate()
                                .map(|(k, s)| contimg::photometry::Target {
                                    name: format!("truth_{k}"),
                                    ra_deg: s.ra_deg,
                                    dec_deg: s.dec_deg,
                                })
                                .collect()
                        })
                }
                (None, None, Some(c)) => contimg::calibrate::catalog::read_calibrators(&c)
                    .map(|cs| {
                        cs.iter()
                            .map(|k| contimg::photometry::Target {
                                name: k.name.clone(),
                                ra_deg: k.ra_rad.to_degrees(),
                                dec_deg: k.dec_rad.to_degrees(),
                            })
                            .collect()
                    })
                    .map_err(|e| e.to_string()),
                _ => Err("give one of --catalog, --truth or --calibrators".to_string()),
            };
            let res = targets.and_then(|t| {
                let ms =
                    contimg::photometry::measure_nights(&nights, &t).map_err(|e| e.to_string())?;
                let th = contimg::photometry::Thresholds { eta, v, vs };
                let vars = contimg::photometry::write_tables(&out, &ms, &t, th)
                    .map_err(|e| format!("{}: {e}", out.display()))?;
                Ok((ms.len(), vars))
            });
            match res {
                Ok((n, vars)) => {
                    let cands: Vec<&str> = vars
                        .iter()
                        .filter(|v| v.candidate)
                        .map(|v| v.source.as_str())
                        .collect();
                    println!(
                        "photometry: {n} measurements of {} sources; {} candidates{}{}",
                        vars.len(),
                        cands.len(),
                        if cands.is_empty() { "" } else { ": " },
                        cands.join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("contimg photometry: error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Mosaic {
            night,
            out,
            pblimit,
        } => {
            init_logging(0, 1);
            let out = out.unwrap_or_else(|| night.join("mosaic"));
            match contimg::mosaic::build(&night, &out, pblimit) {
                Ok(s) => {
                    println!(
                        "mosaic: {} tiles -> {} x {} pixels in {}",
                        s.tiles,
                        s.nx,
                        s.ny,
                        out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("contimg mosaic: error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Report {
            night,
            truth,
            warn_only,
        } => {
            init_logging(0, 1);
            match contimg::report::write(&night, truth.as_deref()) {
                Ok(r) => {
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
                            return ExitCode::from(exit::GATE_FAILED);
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("contimg report: error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Inspect { file } => {
            init_logging(0, 1);
            match contimg::uvh5::read_header(&file) {
                Ok(h) => {
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
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("contimg inspect: error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Convert {
            night:
                NightArgs {
                    settings,
                    input,
                    output,
                },
            spectral_windows,
        } => {
            let comm = make_comm();
            init_logging(comm.rank(), comm.size());
            install_panic_hook(comm.rank(), comm.size());
            let Some(mut cfg) =
                load_on_all_ranks(comm.as_ref(), "convert", &settings, input, output)
            else {
                return ExitCode::FAILURE;
            };
            comm.set_collective_timeout(std::time::Duration::from_secs_f64(
                cfg.mpi.collective_timeout_s,
            ));
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
            match contimg::export::convert_night(&cfg, comm.as_ref()) {
                Ok(Some(s)) => {
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
                Ok(None) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("contimg convert: error (rank {}): {e}", comm.rank());
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run {
            night:
                NightArgs {
                    settings,
                    input,
                    output,
                },
        } => {
            let comm = make_comm();
            init_logging(comm.rank(), comm.size());
            install_panic_hook(comm.rank(), comm.size());
            let Some(cfg) = load_on_all_ranks(comm.as_ref(), "run", &settings, input, output)
            else {
                return ExitCode::FAILURE;
            };
            comm.set_collective_timeout(std::time::Duration::from_secs_f64(
                cfg.mpi.collective_timeout_s,
            ));
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
            match contimg::pipeline::run(&cfg, comm.as_ref()) {
                Ok(Some(summary)) => {
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
                // Other ranks: mpirun/srun report rank 0's code.
                Ok(None) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("contimg run: error (rank {}): {e}", comm.rank());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
