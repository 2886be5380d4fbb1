//! Entry points of the per-core runtime for `serve` and `load`.

use std::process::ExitCode;

use crate::args::{LoadArgs, ServeArgs};

/// Runs `wirespeed serve`.
pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "serve {}: the per-core runtime is not built yet",
        args.mode.name()
    )
}

/// Runs `wirespeed load`.
pub fn load(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "load {}: the per-core runtime is not built yet",
        args.mode.name()
    )
}
