//! `bitcoin-gui`: the front end of the process-separated node. It spawns `bitcoin-node`
//! beside its own executable (or connects to a running one with `-ipcconnect`), then runs
//! one bitcoin-cli command or, on a terminal without a command, the interactive UI.

mod backend;
mod commands;
mod json;
mod mine;
mod options;
#[cfg(test)]
#[path = "../tests/util/testnode.rs"]
mod testnode;
mod ui;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::ErrorKind;

use crate::backend::{LinkOptions, Mode, NodeLink};
use crate::commands::{CliError, Command, Context};
use crate::options::Options;

fn main() -> ExitCode {
    let options = match Options::parse_from_core(std::env::args_os()) {
        Ok(o) => o,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "error: {} (see --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::FAILURE;
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), CliError> {
    options.validate().map_err(CliError::Other)?;
    if options.printtoconsole && !options.command.is_empty() {
        // A line that cannot be written is dropped: reporting it would `eprintln!` to the
        // same broken stderr, which panics the logging thread.
        tracing_subscriber::fmt()
            .log_internal_errors(false)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    // Arguments are checked before a node is started for them.
    let command = match options.command.split_first() {
        Some((name, args)) => Some(Command::parse(name, args)?),
        None if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() => None,
        None => {
            return Err(CliError::Other(anyhow::anyhow!(
                "no command given and not on a terminal (see --help)"
            )));
        }
    };
    let datadir = options.datadir().map_err(CliError::Other)?;
    let link = NodeLink::open(&LinkOptions {
        datadir: &datadir,
        ipcconnect: options.ipcconnect.as_deref(),
        transport: options.transport,
        printtoconsole: options.printtoconsole && command.is_some(),
    })
    .map_err(CliError::Other)?;
    let ctx = Context {
        init: link.init.clone(),
        rpcwallet: options.rpcwallet.clone(),
        spawned_node: matches!(link.mode, Mode::Spawned { .. }),
    };
    match command {
        Some(command) => {
            println!("{}", command.run(&ctx)?);
            Ok(())
        }
        None => ui::run(&link, ctx).map_err(CliError::Other),
    }
}
