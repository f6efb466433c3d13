//! `cogref refresh`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use cogref_core::secrecy::{ExposeSecret, SecretString};
use cogref_core::{CallConfig, EndpointConfig, RefreshInput, RetryConfig};
use cogref_session::{BlockingTokenManager, FileStore, SessionError, SessionEvent, TokenStore};

use crate::args::{Output, RefreshArgs};
use crate::exit::{Code, Failure};
use crate::print::{NewDevice, Tokens, render};
use crate::read;

/// Stdout could not take the output. When the output was the only copy of a rotated refresh
/// token or of a new device's key (no store keeps them), they die with this process: the
/// failure says so, and what it means for the session.
fn stdout_failed(e: &std::io::Error, tokens: &Tokens) -> Failure {
    const SIGN_IN: &str = "the session cannot continue: sign in again; give stdout room (or use \
                           --store FILE on a disk with space) before the next refresh";
    let (code, lost, hint) = match (&tokens.rotated_unstored, &tokens.new_device_unstored) {
        (Some(_), Some(_)) => (
            Code::SignInRequired,
            "; the refresh token was rotated and Cognito registered a new device, and neither \
             the new refresh token nor the device key is stored or printed: they are lost \
             (the old refresh token stops working)",
            Some(SIGN_IN),
        ),
        (Some(_), None) => (
            Code::SignInRequired,
            "; the refresh token was rotated and the new one is neither stored nor printed: it \
             is lost (the old one stops working)",
            Some(SIGN_IN),
        ),
        (None, Some(_)) => (
            Code::Failure,
            "; Cognito registered a new device and its key is neither stored nor printed: it \
             is lost",
            Some("sign in again to register a device whose key you can keep"),
        ),
        (None, None) => (Code::Failure, "", None),
    };
    Failure::new(code, format!("could not write stdout: {e}{lost}"), hint)
}

pub(crate) fn run(a: RefreshArgs) -> Result<(), Failure> {
    if a.refresh_token.is_some() {
        return Err(Failure::new(
            Code::InvalidInput,
            "refusing a refresh token given on the command line: every user of this machine can read it (ps, /proc, shell history)",
            Some("use --refresh-token-file FILE, or pipe the token on standard input"),
        ));
    }
    if a.device_key.is_some() {
        return Err(Failure::new(
            Code::InvalidInput,
            "refusing a device key given on the command line: it is a secret, and every user of this machine can read argv (ps, /proc, shell history)",
            Some(
                "use --device-key-file FILE or --device-key-env VAR (with --store, the store keeps it)",
            ),
        ));
    }
    let endpoint = endpoint(Target {
        region: a.region.as_deref(),
        fips: a.fips,
        dual_stack: a.dual_stack,
        endpoint_url: a.endpoint_url.as_deref(),
    })?
    .resolve()?;
    let config = CallConfig {
        retry: if a.rotation_safe {
            RetryConfig::rotation_safe()
        } else {
            RetryConfig::default()
        },
        ..CallConfig::default()
    };
    let client = cogref_blocking::client(endpoint, config);
    let (tokens, after_printing) = match &a.store {
        Some(path) => with_store(&a, client, path)?,
        None => (
            {
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
                    new_device_unstored: out.new_device.map(|d| NewDevice {
                        key: d.device_key,
                        group_key: d.device_group_key,
                    }),
                }
            },
            None,
        ),
    };
    // `--output token` has no room for a rotated refresh token or a new device's key that no
    // store keeps; printing the access token alone would lose them with this process.
    let must_keep = tokens.rotated_unstored.is_some() || tokens.new_device_unstored.is_some();
    let output = if a.output == Output::Token && must_keep {
        Output::Json
    } else {
        a.output
    };
    let text = render(&tokens, output)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| {
            // The store's failure, if any, said the output would hold the new refresh token:
            // it does not, so say it here (the output may hold part of it: a partial write).
            if let Some(not_saved) = &after_printing {
                eprintln!("cogref: {}", not_saved.message);
            }
            stdout_failed(&e, &tokens)
        })?;
    if output != a.output {
        let what = match (&tokens.rotated_unstored, &tokens.new_device_unstored) {
            (Some(_), Some(_)) => {
                "the refresh token was rotated and Cognito registered a new device"
            }
            (Some(_), None) => "the refresh token was rotated",
            _ => "Cognito registered a new device",
        };
        let failure = Failure::new(
            Code::Failure,
            format!(
                "{what}, and --output token has no room for the new {}: the whole JSON output \
                 was printed instead of the access token alone",
                if tokens.rotated_unstored.is_some() {
                    "refresh token (the old one stops working)"
                } else {
                    "device key"
                },
            ),
            Some(
                "keep refresh_token and new_device from the JSON printed; to get the bare \
                 access token whatever Cognito sends, use --store FILE, which keeps them",
            ),
        );
        if let Some(not_saved) = after_printing {
            eprintln!("cogref: {}", not_saved.message);
        }
        return Err(failure);
    }
    if let Some(failure) = after_printing {
        return Err(failure);
    }
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
    if tokens.new_device_unstored.is_some() {
        eprintln!(
            "cogref: Cognito registered a new device; its key is in the output: keep it and send \
             it with --device-key-file or --device-key-env from now on"
        );
    }
    Ok(())
}

/// Where a command sends its request, as given on the command line.
pub(crate) struct Target<'a> {
    pub(crate) region: Option<&'a str>,
    pub(crate) fips: bool,
    pub(crate) dual_stack: bool,
    pub(crate) endpoint_url: Option<&'a str>,
}

/// The endpoint: the environment's settings, then the command line's.
pub(crate) fn endpoint(t: Target<'_>) -> Result<EndpointConfig, Failure> {
    let mut config = EndpointConfig::from_env()?;
    if let Some(region) = t.region {
        config = config.region(region);
    }
    if t.fips {
        config = config.use_fips(true);
    }
    if t.dual_stack {
        config = config.use_dual_stack(true);
    }
    if let Some(url) = t.endpoint_url {
        config = config.endpoint_url(url);
    }
    Ok(config)
}

pub(crate) fn read_refresh_token(file: Option<&Path>) -> Result<SecretString, Failure> {
    let text = match file {
        Some(path) if path != Path::new("-") => {
            read::file(path, "the refresh token", Code::InvalidInput)?
        }
        _ => {
            if std::io::stdin().is_terminal() {
                eprintln!(
                    "cogref: reading the refresh token from standard input (end with Ctrl-D)…"
                );
            }
            read::stdin("the refresh token", Code::InvalidInput)?
        }
    };
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

/// The client secret from the environment variable or the file named, if either is.
pub(crate) fn client_secret(
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, Failure> {
    const WHAT: &str = "the client secret";
    if let Some(var) = env {
        return read::env(var, WHAT, Code::Configuration).map(|s| Some(s.into()));
    }
    if let Some(path) = file {
        return read::file(path, WHAT, Code::Configuration)
            .map(|s| Some(s.trim().to_owned().into()));
    }
    Ok(None)
}

fn device_key(a: &RefreshArgs) -> Result<Option<SecretString>, Failure> {
    const WHAT: &str = "the device key";
    if let Some(var) = &a.device_key_env {
        return read::env(var, WHAT, Code::InvalidInput).map(|s| Some(s.into()));
    }
    if let Some(path) = &a.device_key_file {
        return read::file(path, WHAT, Code::InvalidInput)
            .map(|s| Some(s.trim().to_owned().into()));
    }
    Ok(None)
}

fn input(a: &RefreshArgs, refresh_token: SecretString) -> Result<RefreshInput, Failure> {
    let mut builder = RefreshInput::builder()
        .refresh_token(refresh_token)
        .client_id(a.client_id.clone())
        .set_client_secret(client_secret(
            a.client_secret_env.as_deref(),
            a.client_secret_file.as_deref(),
        )?)
        .set_device_key(device_key(a)?);
    for (n, entry) in a.metadata.iter().enumerate() {
        // The entry itself is not repeated: it came from argv.
        let (k, v) = entry.split_once('=').ok_or_else(|| {
            Failure::new(
                Code::InvalidInput,
                format!("--metadata number {} is not KEY=VALUE", n + 1),
                None,
            )
        })?;
        builder = builder.client_metadata_entry(k, v);
    }
    Ok(builder.build()?)
}

/// Refreshes through the store. Besides the tokens, a failure to report once they are printed:
/// a rotated refresh token the store could not keep is printed rather than lost with this
/// process.
fn with_store(
    a: &RefreshArgs,
    client: cogref_blocking::Client,
    path: &Path,
) -> Result<(Tokens, Option<Failure>), Failure> {
    read::check_store(path)?;
    let store = FileStore::new(path);
    let stored = store
        .load()
        .map_err(|e| Failure::new(Code::Failure, e.to_string(), None))?;
    let start = match &stored {
        Some(stored) if !stored.tokens.is_signed_out() => stored.tokens.refresh_token.clone(),
        Some(_) => {
            eprintln!(
                "cogref: the store holds a signed-out session; starting a new one from the refresh token given"
            );
            read_refresh_token(a.refresh_token_file.as_deref())?
        }
        None => read_refresh_token(a.refresh_token_file.as_deref())?,
    };
    let before = start.expose_secret().to_owned();
    let template = input(a, start)?;
    // The key the refresh sends: the stored one, else the one given.
    let device_before = stored
        .as_ref()
        .filter(|s| !s.tokens.is_signed_out())
        .and_then(|s| s.tokens.device_key.as_ref())
        .or(template.device_key())
        .map(|k| k.expose_secret().to_owned());
    // The manager serves a still-valid token when a refresh fails; `refresh` must tell.
    let events: Arc<Mutex<Vec<SessionEvent>>> = Arc::default();
    let seen = events.clone();
    let mut builder = BlockingTokenManager::builder(client, template, store).on_event(move |e| {
        seen.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone())
    });
    if let Some(validity) = a.refresh_token_validity {
        builder = builder.refresh_token_validity(validity);
    }
    let manager = builder.build()?;
    let mut served_cached = false;
    let (access, not_saved) = match manager.refresh_now() {
        Ok(access) => (access, None),
        Err(SessionError::RotatedTokenNotSaved(e)) => {
            let failure = Failure::new(
                Code::Failure,
                format!(
                    "the refresh token was rotated but the new one could not be saved in the store ({e}); it is printed in the output instead"
                ),
                Some(
                    "keep the printed refresh token (the old one no longer works) and fix the store, then run with --refresh-token-file and a new --store",
                ),
            );
            let current = manager.session().tokens().access_token.clone();
            (
                current.unwrap_or_else(|| SecretString::from(String::new())),
                Some(failure),
            )
        }
        // refresh_now answers a failed refresh with its error even while the stored access
        // token is still valid: that token is printed only when asked for.
        Err(SessionError::Unavailable { error, .. })
            if manager
                .session()
                .tokens()
                .is_valid_at(std::time::SystemTime::now()) =>
        {
            stored_tokens_after_failure(&error, a.cached_on_failure)?;
            served_cached = true;
            let current = manager.session().tokens().access_token.clone();
            (
                current.unwrap_or_else(|| SecretString::from(String::new())),
                None,
            )
        }
        Err(e) => return Err(e.into()),
    };
    let events = std::mem::take(&mut *events.lock().unwrap_or_else(|p| p.into_inner()));
    let refreshed = events
        .iter()
        .any(|e| matches!(e, SessionEvent::Refreshed { .. } | SessionEvent::Adopted));
    if !refreshed && not_saved.is_none() && !served_cached {
        let failed = events.iter().rev().find_map(|e| match e {
            SessionEvent::RefreshFailed { error, .. } | SessionEvent::SignInRequired(error) => {
                Some(error.clone())
            }
            _ => None,
        });
        match failed {
            Some(error) => stored_tokens_after_failure(&error, a.cached_on_failure)?,
            None => {
                return Err(Failure::new(
                    Code::Failure,
                    "the refresh ended without new tokens and without an error",
                    None,
                ));
            }
        }
    }
    let session = manager.session();
    let tokens = session.tokens();
    let device_after = tokens.device_key.as_ref().map(|k| k.expose_secret());
    if refreshed && device_after.is_some() && device_after != device_before.as_deref() {
        eprintln!("cogref: Cognito registered a new device; its key is saved in the store");
    }
    let rotated = tokens.refresh_token.expose_secret() != before;
    Ok((
        Tokens {
            access,
            id: tokens.id_token.clone(),
            rotated,
            rotated_unstored: (rotated && not_saved.is_some())
                .then(|| tokens.refresh_token.clone()),
            token_type: "Bearer".into(),
            expires_in: tokens.lifetime.unwrap_or_default(),
            expires_at: tokens.expires_at,
            new_device_unstored: None,
        },
        not_saved,
    ))
}

/// A refresh failed while the stored access token is still valid: `refresh` means a refresh,
/// so that is an error (exit 4) unless `--cached-on-failure` asked for the stored tokens, in
/// which case stderr says why they are printed.
fn stored_tokens_after_failure(
    error: &cogref_core::CallError,
    cached_on_failure: bool,
) -> Result<(), Failure> {
    if cached_on_failure {
        eprintln!(
            "cogref: the refresh failed ({error}); printing the stored tokens, which are \
             still valid (--cached-on-failure)"
        );
        return Ok(());
    }
    let mut failure = Failure::from(error);
    failure.message = format!(
        "{}; nothing was refreshed (the stored access token is still valid: \
         --cached-on-failure prints it instead)",
        failure.message
    );
    Err(failure)
}
