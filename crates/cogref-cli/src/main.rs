//! `cogref`: refresh Amazon Cognito user-pool tokens from a shell, inspect tokens, and run a
//! local emulator. Data goes to stdout, progress and errors to stderr; exit codes tell the
//! outcomes apart (see [`exit`]).

#![forbid(unsafe_code)]

mod args;
mod demo;
mod emulator;
mod exit;
mod inspect;
mod print;
mod read;
mod refresh;
mod revoke;
mod time;
mod usage;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::exit::Code;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            // Help and version text hold nothing the user typed.
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                let (message, hint) = usage::describe(&e);
                eprintln!("cogref: {message}");
                eprintln!("  → {hint}");
                return ExitCode::from(Code::InvalidInput as u8);
            }
        },
    };
    let outcome = match cli.command {
        args::Command::Refresh(a) => refresh::run(*a),
        args::Command::Revoke(a) => revoke::run(*a),
        args::Command::Inspect(a) => inspect::run(a),
        args::Command::Emulator(a) => emulator::run(a),
        args::Command::Demo => demo::run(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("cogref: {}", failure.message);
            if let Some(hint) = failure.hint {
                eprintln!("  → {hint}");
            }
            ExitCode::from(failure.code as u8)
        }
    }
}
