//! `wirespeed`: the command-line tool. `docs/cli.md` is its reference.

use std::process::ExitCode;

use wirespeed_bench::cli::{self, Invocation};
use wirespeed_bench::{merge, run};

fn main() -> ExitCode {
    // Usage errors exit with status 2, --help and --version with 0.
    let invocation = cli::parse().unwrap_or_else(|e| e.exit());
    let result = match invocation {
        Invocation::Serve(args) => run::serve(&args),
        Invocation::Load(args) => run::load(&args),
        Invocation::Merge(args) => merge::run(&args, &mut std::io::stdout().lock())
            .map(|_| ExitCode::SUCCESS)
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
