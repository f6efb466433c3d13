//! `cogref refresh`.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::secrecy::{ExposeSecret, SecretString};
use cogref_core::{CallConfig, EndpointConfig, RefreshInput, RetryConfig};
use cogref_session::{BlockingTokenManager, FileStore, TokenStore};
use serde_json::json;

use crate::args::{Output, RefreshArgs};
use crate::exit::{Code, Failure};

/// What a refresh produced, whichever way it ran.
struct Tokens {
    access: SecretString,
    id: Option<SecretString>,
    /// A rotated refresh token that is not kept in a store: the caller must keep it.
    rotated_unstored: Option<SecretString>,
    rotated: bool,
    token_type: String,
    expires_in: Duration,
    expires_at: Option<SystemTime>,
}

pub(crate) fn run(a: RefreshArgs) -> Result<(), Failure> {
    if a.refresh_token.is_some() {
        return Err(Failure::new(
            Code::InvalidInput,
            "refusing a refresh token given on the command line: every user of this machine can read it (ps, /proc, shell history)",
            Some("use --refresh-token-file FILE, or pipe the token on standard input"),
        ));
    }
    let endpoint = endpoint(&a)?.resolve()?;
    let config = CallConfig {
        retry: if a.rotation_safe {
            RetryConfig::rotation_safe()
        } else {
            RetryConfig::default()
        },
        ..CallConfig::default()
    };
    let client = cogref_blocking::client(endpoint, config);
    let tokens = match &a.store {
        Some(path) => with_store(&a, client, path)?,
        None => {
            let input = input(&a, read_refresh_token(a.refresh_token_file.as_deref())?)?;
            let out = client.refresh_blocking(&input)?;
            Tokens {
                access: out.access_token,
                id: out.id_token,
                rotated: out.refresh_token.is_some(),
                rotated_unstored: out.refresh_token,
                token_type: out.token_type.unwrap_or_else(|| "Bearer".into()),
                expires_in: out.expires_in,
                expires_at: Some(out.expires_at),
            }
        }
    };
    print(&tokens, a.output);
    if tokens.rotated {
        eprintln!(
            "cogref: the refresh token was rotated{}",
            if a.store.is_some() {
                "; the new one is saved in the store"
            } else {
                "; the new one is in the output: keep it, the old one stops working"
            }
        );
    }
    Ok(())
}

fn endpoint(a: &RefreshArgs) -> Result<EndpointConfig, Failure> {
    let mut config = EndpointConfig::from_env()?;
    if let Some(region) = &a.region {
        config = config.region(region.clone());
    }
    if a.fips {
        config = config.use_fips(true);
    }
    if a.dual_stack {
        config = config.use_dual_stack(true);
    }
    if let Some(url) = &a.endpoint_url {
        config = config.endpoint_url(url.clone());
    }
    Ok(config)
}

fn read_refresh_token(file: Option<&Path>) -> Result<SecretString, Failure> {
    let mut text = String::new();
    let read = match file {
        Some(path) if path != Path::new("-") => std::fs::File::open(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| {
                format!(
                    "could not read the refresh token from {}: {e}",
                    path.display()
                )
            }),
        _ => {
            if std::io::stdin().is_terminal() {
                eprintln!(
                    "cogref: reading the refresh token from standard input (end with Ctrl-D)…"
                );
            }
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("could not read the refresh token from standard input: {e}"))
        }
    };
    read.map_err(|m| Failure::new(Code::InvalidInput, m, None))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Failure::new(
            Code::InvalidInput,
            "no refresh token was given",
            Some("pipe it on standard input, or use --refresh-token-file FILE or --store FILE"),
        ));
    }
    Ok(SecretString::from(token.to_owned()))
}

fn client_secret(a: &RefreshArgs) -> Result<Option<SecretString>, Failure> {
    if let Some(var) = &a.client_secret_env {
        return std::env::var(var)
            .map(|s| Some(s.trim().to_owned().into()))
            .map_err(|_| {
                Failure::new(
                    Code::Configuration,
                    format!("environment variable {var} (the client secret) is not set"),
                    None,
                )
            });
    }
    if let Some(path) = &a.client_secret_file {
        return std::fs::read_to_string(path)
            .map(|s| Some(s.trim().to_owned().into()))
            .map_err(|e| {
                Failure::new(
                    Code::Configuration,
                    format!(
                        "could not read the client secret from {}: {e}",
                        path.display()
                    ),
                    None,
                )
            });
    }
    Ok(None)
}

fn input(a: &RefreshArgs, refresh_token: SecretString) -> Result<RefreshInput, Failure> {
    let mut builder = RefreshInput::builder()
        .refresh_token(refresh_token)
        .client_id(a.client_id.clone())
        .set_client_secret(client_secret(a)?)
        .set_device_key(a.device_key.clone().map(Into::into));
    for entry in &a.metadata {
        let (k, v) = entry.split_once('=').ok_or_else(|| {
            Failure::new(
                Code::InvalidInput,
                format!("--metadata {entry:?} is not KEY=VALUE"),
                None,
            )
        })?;
        builder = builder.client_metadata_entry(k, v);
    }
    Ok(builder.build()?)
}

fn with_store(
    a: &RefreshArgs,
    client: cogref_blocking::Client,
    path: &Path,
) -> Result<Tokens, Failure> {
    let store = FileStore::new(path);
    let stored = store
        .load()
        .map_err(|e| Failure::new(Code::Failure, e.to_string(), None))?;
    let start = match &stored {
        Some(stored) => stored.tokens.refresh_token.clone(),
        None => read_refresh_token(a.refresh_token_file.as_deref())?,
    };
    let before = start.expose_secret().to_owned();
    let manager = BlockingTokenManager::builder(client, input(a, start)?, store).build()?;
    let access = manager.refresh_now()?;
    let session = manager.session();
    let tokens = session.tokens();
    Ok(Tokens {
        access,
        id: tokens.id_token.clone(),
        rotated: tokens.refresh_token.expose_secret() != before,
        rotated_unstored: None,
        token_type: "Bearer".into(),
        expires_in: tokens.lifetime.unwrap_or_default(),
        expires_at: tokens.expires_at,
    })
}

fn unix(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

#[allow(
    clippy::print_stdout,
    reason = "tokens on stdout are this command's output"
)]
fn print(t: &Tokens, output: Output) {
    match output {
        Output::Token => println!("{}", t.access.expose_secret()),
        Output::Env => {
            println!("export COGNITO_ACCESS_TOKEN='{}'", t.access.expose_secret());
            if let Some(id) = &t.id {
                println!("export COGNITO_ID_TOKEN='{}'", id.expose_secret());
            }
            if let Some(rt) = &t.rotated_unstored {
                println!("export COGNITO_REFRESH_TOKEN='{}'", rt.expose_secret());
            }
            if let Some(at) = unix(t.expires_at) {
                println!("export COGNITO_EXPIRES_AT='{at}'");
            }
        }
        Output::Json => {
            let mut value = json!({
                "access_token": t.access.expose_secret(),
                "token_type": t.token_type,
                "expires_in": t.expires_in.as_secs(),
                "expires_at": unix(t.expires_at),
                "refresh_token_rotated": t.rotated,
            });
            if let Some(id) = &t.id {
                value["id_token"] = id.expose_secret().into();
            }
            if let Some(rt) = &t.rotated_unstored {
                value["refresh_token"] = rt.expose_secret().into();
            }
            println!("{value}");
        }
    }
}
