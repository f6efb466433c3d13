//! `cogref-emulator`: runs the emulator in the foreground with a seeded pool, client and user.
//!
//! ```sh
//! cogref-emulator [PORT] [REFRESH_TOKEN_FILE]
//! ```
//!
//! Prints the endpoint and client id; writes the user's refresh token to REFRESH_TOKEN_FILE
//! (default `./emulator-refresh-token`, mode 0600) rather than to the terminal. `cogref
//! emulator` does the same with more options.

use std::process::ExitCode;

use cogref_emulator::{Emulator, EmulatorConfig, Seed, ShutdownSignals, Stopped};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next().map(|p| p.parse()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            eprintln!("usage: cogref-emulator [PORT] [REFRESH_TOKEN_FILE]");
            return ExitCode::from(2);
        }
    };
    let token_file = args
        .next()
        .unwrap_or_else(|| "emulator-refresh-token".into());
    // Before the endpoint is printed, so that a script's SIGINT is never lost.
    let signals = match ShutdownSignals::register() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cogref-emulator: could not install the signal handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = EmulatorConfig {
        bind: ([127, 0, 0, 1], port).into(),
        ..EmulatorConfig::default()
    };
    let emulator = match Emulator::start(config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cogref-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seed = Seed::default();
    let seeded = match emulator.seed(&seed) {
        Ok(s) => s,
        Err(r) => {
            eprintln!("cogref-emulator: seeding failed: {}", r.message);
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = seeded.write_refresh_token(std::path::Path::new(&token_file)) {
        eprintln!("cogref-emulator: could not write {token_file}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("endpoint:           {}", emulator.endpoint_url());
    eprintln!("user pool:          {}", seed.pool_id);
    eprintln!(
        "client id:          {} (rotation on, 10 s grace)",
        seed.client_id
    );
    eprintln!("refresh token file: {token_file}");
    eprintln!("press Ctrl-C to stop (twice to stop without waiting for open connections)");
    if emulator.run_until_signalled(signals).await == Stopped::Forced {
        eprintln!("cogref-emulator: second signal: stopped without waiting");
    }
    ExitCode::SUCCESS
}
