//! `cogref emulator`: the local Cognito in the foreground.

use cogref_emulator::{Emulator, EmulatorConfig, Seed};

/// `cogref emulator --help`'s closing text: an example, and every admin route with its body.
pub(crate) fn after_help() -> String {
    let routes: String = cogref_emulator::ADMIN_ROUTES
        .lines()
        .filter(|l| !l.starts_with("```"))
        .map(|l| format!("{}\n", l.trim_start_matches("## ")))
        .collect();
    format!(
        "Example:
  cogref emulator --port 9229 --token-file rt.txt
  cogref refresh --endpoint-url http://127.0.0.1:9229 --client-id cogrefdemoclient < rt.txt

The emulator also serves the standard user-pool operations (CreateUserPool, \
CreateUserPoolClient, AdminCreateUser, InitiateAuth, RespondToAuthChallenge, RevokeToken, \
GlobalSignOut, GetUser, ...) for the AWS CLI, the SDKs and Amplify (userPoolEndpoint), \
POST /oauth2/token, and /{{userPoolId}}/.well-known/{{jwks.json,openid-configuration}}.

{routes}"
    )
}

use crate::args::EmulatorArgs;
use crate::exit::{Code, Failure};

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::new(
                Code::Failure,
                format!("could not start a runtime: {e}"),
                None,
            )
        })
}

#[allow(
    clippy::print_stdout,
    reason = "the endpoint and client id are this command's output"
)]
pub(crate) fn run(a: EmulatorArgs) -> Result<(), Failure> {
    let runtime = runtime()?;
    runtime.block_on(async {
        // Before anything a script waits for is printed: a SIGINT that arrives once the
        // endpoint is out must stop the emulator (background jobs of a script start with
        // SIGINT ignored until a handler is installed).
        let stop = cogref_emulator::shutdown_signal().map_err(|e| {
            Failure::new(
                Code::Failure,
                format!("could not install the signal handler: {e}"),
                None,
            )
        })?;
        eprintln!("cogref: starting the emulator (Ctrl-C stops it)");
        let config = EmulatorConfig {
            bind: ([127, 0, 0, 1], a.port).into(),
            ..EmulatorConfig::default()
        };
        let emulator = Emulator::start(config).await.map_err(|e| {
            Failure::new(
                Code::Configuration,
                e.to_string(),
                Some("pick another --port, or 0 for any free one"),
            )
        })?;
        let seed = Seed {
            rotation_grace_secs: (!a.no_rotation).then_some(a.grace),
            ..Seed::default()
        };
        let seeded = emulator
            .seed(&seed)
            .map_err(|r| Failure::new(Code::Failure, r.to_string(), None))?;
        seeded.write_refresh_token(&a.token_file).map_err(|e| {
            Failure::new(
                Code::Failure,
                format!("could not write {}: {e}", a.token_file.display()),
                None,
            )
        })?;
        println!("AWS_ENDPOINT_URL={}", emulator.endpoint_url());
        println!("COGNITO_CLIENT_ID={}", seed.client_id);
        println!("REFRESH_TOKEN_FILE={}", a.token_file.display());
        eprintln!(
            "cogref: emulator for pool {} listening at {} ({}); Ctrl-C stops it",
            seed.pool_id,
            emulator.endpoint_url(),
            match seed.rotation_grace_secs {
                Some(g) => format!("rotation on, {g} s grace period"),
                None => "rotation off".into(),
            }
        );
        eprintln!(
            "cogref: try  cogref refresh --endpoint-url {} --client-id {} --refresh-token-file {}",
            emulator.endpoint_url(),
            seed.client_id,
            a.token_file.display()
        );
        stop.await;
        emulator.shutdown().await;
        Ok(())
    })
}
