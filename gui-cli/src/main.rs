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

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use crate::backend::{LinkOptions, Mode, NodeLink};
use crate::commands::{CliError, Command, Context};
use crate::options::{CliExit, Options, one_line};

/// The exit status when the reader of stdout has gone (`EPIPE`, as in `... | head -1`):
/// 128 + SIGPIPE, what a shell reports for bitcoin-cli and the Unix tools, which SIGPIPE
/// kills. Rust ignores SIGPIPE, so we see the error instead, and exit with this status
/// without a word (the reader is gone; stderr would only add noise to the pipeline).
const BROKEN_PIPE_STATUS: u8 = 141;

fn main() -> ExitCode {
    let outcome = match Options::parse_core(std::env::args_os()) {
        Ok(options) => match run(&options) {
            Ok(printed) => printed.map_err(Failure::Output),
            Err(e) => Err(Failure::Cli(e)),
        },
        Err(CliExit::Info(text)) => print(&text).map_err(Failure::Output),
        Err(CliExit::Invalid(line)) => Err(Failure::Options(line)),
    };
    let line = match outcome {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            return ExitCode::from(BROKEN_PIPE_STATUS);
        }
        Err(Failure::Output(e)) => format!("error: cannot write the result: {e}"),
        Err(Failure::Options(line)) => format!("error: {line} (see --help)"),
        Err(Failure::Cli(e)) => e.to_string(),
    };
    // Nowhere is left to report a stderr that cannot be written to.
    let _ = writeln!(io::stderr().lock(), "{}", one_line(&line));
    ExitCode::FAILURE
}

/// Why `bitcoin-gui` fails.
enum Failure {
    /// The command line, in one line.
    Options(String),
    /// The command, or reaching the node.
    Cli(CliError),
    /// Writing the result to stdout.
    Output(io::Error),
}

/// Writes `text` to stdout, and flushes it.
fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Runs the command (or the UI); `Ok` holds the outcome of writing its result to stdout.
fn run(options: &Options) -> Result<io::Result<()>, CliError> {
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
    // `help` needs no node.
    if let Some(outcome) = command.as_ref().and_then(Command::run_without_node) {
        return Ok(print(&format!("{}\n", outcome?)));
    }
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
            // Written while the link is up, as before; it is closed (and a spawned node
            // reaped) when `link` drops, whether or not the write succeeded.
            Ok(print(&format!("{}\n", command.run(&ctx)?)))
        }
        None => ui::run(&link, ctx).map(Ok).map_err(CliError::Other),
    }
}
