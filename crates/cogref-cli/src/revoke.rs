//! `cogref revoke`: RevokeToken, for a token given on standard input or in a file, or for the
//! session of a token store (signed out through the session manager: the store keeps a
//! tombstone that every program sharing it sees).

use std::path::Path;

use cogref_core::{CallConfig, RefreshInput, RevokeInput};
use cogref_session::{BlockingTokenManager, FileStore, SessionError, TokenStore};

use crate::args::RevokeArgs;
use crate::exit::{Code, Failure};
use crate::read;
use crate::refresh::{Target, client_secret, endpoint, read_refresh_token};

pub(crate) fn run(a: RevokeArgs) -> Result<(), Failure> {
    if a.refresh_token.is_some() {
        return Err(Failure::new(
            Code::InvalidInput,
            "refusing a refresh token given on the command line: every user of this machine can read it (ps, /proc, shell history)",
            Some(
                "use --refresh-token-file FILE or --store FILE, or pipe the token on standard input",
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
    // Revoking twice is harmless: the default retries, even after a lost answer.
    let client = cogref_blocking::client(endpoint, CallConfig::default());
    let secret = client_secret(
        a.client_secret_env.as_deref(),
        a.client_secret_file.as_deref(),
    )?;
    match &a.store {
        Some(path) => sign_out(&a, client, secret, path),
        None => {
            let input = RevokeInput::builder()
                .token(read_refresh_token(a.refresh_token_file.as_deref())?)
                .client_id(a.client_id.clone())
                .set_client_secret(secret)
                .build()?;
            client.revoke_blocking(&input).map_err(|e| {
                let mut failure = Failure::from(&e);
                if failure.code == Code::Retryable {
                    failure.message.push_str("; the refresh token may still work: try again (revoking twice is harmless)");
                }
                failure
            })?;
            eprintln!("cogref: the refresh token was revoked");
            Ok(())
        }
    }
}

/// Signs out the session of the store at `path`.
fn sign_out(
    a: &RevokeArgs,
    client: cogref_blocking::Client,
    secret: Option<cogref_core::secrecy::SecretString>,
    path: &Path,
) -> Result<(), Failure> {
    read::check_store(path)?;
    let store = FileStore::new(path);
    let stored = store
        .load()
        .map_err(|e| Failure::new(Code::Failure, e.to_string(), None))?;
    let Some(stored) = stored else {
        return Err(Failure::new(
            Code::InvalidInput,
            format!(
                "the store {} holds no session: nothing to revoke",
                read::shown_path(path)
            ),
            Some("give the refresh token on standard input or with --refresh-token-file instead"),
        ));
    };
    if stored.tokens.is_signed_out() {
        eprintln!("cogref: the store's session was already signed out; nothing to do");
        return Ok(());
    }
    let template = RefreshInput::builder()
        .refresh_token(stored.tokens.refresh_token.clone())
        .client_id(a.client_id.clone())
        .set_client_secret(secret)
        .build()?;
    let manager = BlockingTokenManager::builder(client, template, store).build()?;
    match manager.sign_out() {
        Ok(()) => {
            eprintln!(
                "cogref: signed out: the refresh token was revoked and the store keeps no token"
            );
            Ok(())
        }
        Err(SessionError::SignOutFailed(error)) => {
            let mut failure = Failure::from(&*error);
            failure.message = SessionError::SignOutFailed(error).to_string();
            Err(failure)
        }
        Err(e @ SessionError::SignOutNotStored(_)) => {
            Err(Failure::new(Code::Failure, e.to_string(), None))
        }
        Err(e) => Err(e.into()),
    }
}
