//! `cogref emulator`: the local Cognito in the foreground.

use cogref_emulator::{Emulator, EmulatorConfig, Seed, ShutdownSignals, Stopped};

use crate::print::shell_quote;

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

Standard output is three lines for a POSIX shell's eval, which export AWS_ENDPOINT_URL,
COGNITO_CLIENT_ID and REFRESH_TOKEN_FILE (the first line is always AWS_ENDPOINT_URL=<url>).
SIGINT or SIGTERM stops it within {deadline} s (requests in flight may finish); a second one
stops it at once.

The emulator also serves the standard user-pool operations (CreateUserPool, \
CreateUserPoolClient, AdminCreateUser, InitiateAuth, RespondToAuthChallenge, RevokeToken, \
GlobalSignOut, GetUser, ...) for the AWS CLI, the SDKs and Amplify (userPoolEndpoint), \
POST /oauth2/token, and /{{userPoolId}}/.well-known/{{jwks.json,openid-configuration}}.

{routes}",
        deadline = cogref_emulator::SHUTDOWN_DEADLINE.as_secs()
    )
}

/// What `cogref emulator` prints for `eval`: three lines that set and export the endpoint,
/// the client id and the token file's path. The first is `AWS_ENDPOINT_URL=<url>` as it
/// always was, which scripts read the endpoint from (a loopback URL needs no quoting; one that
/// did would be quoted); every other value is single-quoted, whatever its characters.
fn eval_lines(endpoint: &str, client_id: &str, token_file: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || ":/.-_".contains(c);
    let endpoint = if endpoint.chars().all(plain) {
        endpoint.to_owned()
    } else {
        shell_quote(endpoint)
    };
    format!(
        "AWS_ENDPOINT_URL={endpoint}\nexport AWS_ENDPOINT_URL\nexport COGNITO_CLIENT_ID={} REFRESH_TOKEN_FILE={}\n",
        shell_quote(client_id),
        shell_quote(token_file)
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
        let signals = ShutdownSignals::register().map_err(|e| {
            Failure::new(
                Code::Failure,
                format!("could not install the signal handler: {e}"),
                None,
            )
        })?;
        eprintln!("cogref: starting the emulator (Ctrl-C stops it)");
        // Printed for a shell to eval: a path that is not UTF-8 could not be printed as it is.
        let token_file = a.token_file.to_str().ok_or_else(|| {
            Failure::new(
                Code::Configuration,
                "the --token-file path is not UTF-8, so it cannot be printed for a shell",
                Some("pick a path made of UTF-8 characters"),
            )
        })?;
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
        print!(
            "{}",
            eval_lines(&emulator.endpoint_url(), &seed.client_id, token_file)
        );
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
        if emulator.run_until_signalled(signals).await == Stopped::Forced {
            eprintln!("cogref: second signal: stopped without waiting for open connections");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::eval_lines;

    #[test]
    fn the_endpoint_line_stays_bare_and_every_other_value_is_quoted() {
        let out = eval_lines("http://127.0.0.1:9229", "democlient", "my rt;$(x)'");
        assert_eq!(
            out,
            "AWS_ENDPOINT_URL=http://127.0.0.1:9229\nexport AWS_ENDPOINT_URL\n\
             export COGNITO_CLIENT_ID='democlient' REFRESH_TOKEN_FILE='my rt;$(x)'\\'''\n"
        );
        assert!(
            eval_lines("http://x/$(y)", "c", "f").starts_with("AWS_ENDPOINT_URL='http://x/$(y)'\n")
        );
    }
}
