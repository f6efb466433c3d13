//! Refreshes once with cogref-reqwest and reports the outcome, never a token.
//!
//! ```sh
//! export AWS_REGION=eu-west-1                 # or AWS_ENDPOINT_URL=http://127.0.0.1:PORT
//! export COGNITO_CLIENT_ID=1example23456789   # and COGNITO_CLIENT_SECRET for a confidential client
//! cargo run -p cogref-reqwest --example refresh-reqwest < refresh-token.txt
//! ```

use std::io::Read;
use std::process::ExitCode;

use cogref_reqwest::{CallConfig, EndpointConfig, RefreshInput};

#[tokio::main]
async fn main() -> ExitCode {
    let mut token = String::new();
    if std::io::stdin().read_to_string(&mut token).is_err() {
        eprintln!("could not read the refresh token from standard input");
        return ExitCode::from(2);
    }
    let input = RefreshInput::builder()
        .refresh_token(token.trim().to_owned())
        .client_id(std::env::var("COGNITO_CLIENT_ID").unwrap_or_default())
        .set_client_secret(std::env::var("COGNITO_CLIENT_SECRET").ok().map(Into::into))
        .build();
    let endpoint = EndpointConfig::from_env().and_then(|c| c.resolve());
    let (input, endpoint) = match (input, endpoint) {
        (Ok(i), Ok(e)) => (i, e),
        (Err(e), _) => {
            eprintln!("{e} (set COGNITO_CLIENT_ID, pipe the refresh token on stdin)");
            return ExitCode::from(2);
        }
        (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("refreshing at {endpoint}");
    let client =
        match cogref_reqwest::client(endpoint, CallConfig::default()).map_err(|e| e.to_string()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("could not build the HTTP client: {e}");
                return ExitCode::FAILURE;
            }
        };
    match client.refresh(&input).await {
        Ok(tokens) => {
            eprintln!(
                "ok: access token valid for {:?}; id token: {}; rotated refresh token: {}; request id {:?}",
                tokens.expires_in,
                tokens.id_token.is_some(),
                tokens.refresh_token.is_some(),
                tokens.request_id
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.requires_sign_in() => {
            eprintln!("sign-in required: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("failed: {e}");
            ExitCode::from(if e.is_retryable() { 4 } else { 1 })
        }
    }
}
