//! The `krust` binary: parses the command line and hands each subcommand to its library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "krust", version, about = "Kubernetes in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a benchmark and print one `bench=NAME key=value ...` line per configuration.
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Durable writes/s and latency from concurrent writers, SQLite against etcd.
    Storage {
        /// Backends to measure, in order (sqlite, etcd, memory).
        #[arg(long, value_delimiter = ',', default_value = "sqlite,etcd")]
        backends: Vec<String>,
        /// Concurrent writer counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
        writers: Vec<usize>,
        /// Size of each written value.
        #[arg(long, default_value_t = 1024)]
        value_bytes: usize,
        /// Seconds to measure each configuration.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Directory for the databases (SQLite files and etcd's data).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("krust: {}", format!("{error:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Bench {
            bench:
                Bench::Storage {
                    backends,
                    writers,
                    value_bytes,
                    seconds,
                    dir,
                },
        } => {
            anyhow::ensure!(seconds > 0.0, "--seconds must be positive");
            let bench = bench::storage::StorageBench {
                backends,
                writers,
                value_bytes,
                duration: Duration::from_secs_f64(seconds),
                dir: dir.unwrap_or_else(std::env::temp_dir),
            };
            runtime.block_on(bench::storage::run(&bench, &mut std::io::stdout()))?;
            Ok(())
        }
    }
}
