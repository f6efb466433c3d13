//! `cogref demo`: the whole story against an in-process emulator, through the public API.

use std::time::Duration;

use cogref_core::secrecy::{ExposeSecret, SecretString};
use cogref_core::{CallConfig, EndpointConfig, RefreshInput, RetryConfig};
use cogref_emulator::{Emulator, EmulatorConfig, Seed};
use cogref_session::{BlockingTokenManager, MemoryStore, SessionEvent};

use crate::emulator::runtime;
use crate::exit::{Code, Failure};
use crate::time::{span_of, utc_of};

fn step(n: u32, text: &str) {
    eprintln!("\n[{n}] {text}");
}

fn short(token: &SecretString) -> String {
    format!("{} characters", token.expose_secret().len())
}

/// A session event in words (its `Debug` form is for programmers).
fn describe(event: &SessionEvent) -> String {
    match event {
        SessionEvent::Refreshed {
            expires_at,
            rotated,
        } => format!(
            "refreshed{}{}",
            expires_at.map_or_else(String::new, |t| format!(", valid until {}", utc_of(t))),
            if *rotated {
                "; the refresh token was rotated"
            } else {
                ""
            }
        ),
        SessionEvent::Adopted => "adopted tokens another process had just refreshed".into(),
        SessionEvent::SignInRequired(e) => format!("the user must sign in again: {e}"),
        SessionEvent::RefreshFailed { error, retry_at } => format!(
            "a refresh failed ({error}){}",
            retry_at.map_or_else(String::new, |t| format!("; next try at {}", utc_of(t)))
        ),
        SessionEvent::StoreFailed(e) => format!("saving the tokens failed: {e}"),
        _ => "another session event".into(),
    }
}

pub(crate) fn run() -> Result<(), Failure> {
    let runtime = runtime()?;
    let seed = Seed {
        rotation_grace_secs: Some(5),
        ..Seed::default()
    };
    let (emulator, seeded) = runtime.block_on(async {
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .map_err(|e| Failure::new(Code::Failure, e.to_string(), None))?;
        let seeded = emulator
            .seed(&seed)
            .map_err(|r| Failure::new(Code::Failure, r.to_string(), None))?;
        Ok::<_, Failure>((emulator, seeded))
    })?;
    step(
        1,
        &format!(
            "emulator at {} with pool {}, client {} (rotation on, 5 s grace), user {}",
            emulator.endpoint_url(),
            seed.pool_id,
            seed.client_id,
            seed.username
        ),
    );

    let endpoint = EndpointConfig::new()
        .endpoint_url(emulator.endpoint_url())
        .resolve()?;
    let client = cogref_blocking::client(
        endpoint.clone(),
        CallConfig {
            retry: RetryConfig::rotation_safe(),
            ..CallConfig::default()
        },
    );
    let first = RefreshInput::builder()
        .refresh_token(seeded.refresh_token.clone())
        .client_id(seed.client_id.clone())
        .build()?;

    step(2, "refresh with the refresh token from sign-in");
    let out = client.refresh_blocking(&first)?;
    let rotated = out
        .refresh_token
        .clone()
        .ok_or_else(|| Failure::new(Code::Failure, "expected a rotated refresh token", None))?;
    eprintln!(
        "    access token: {}, valid {}; rotation returned a new refresh token ({})",
        short(&out.access_token),
        span_of(out.expires_in),
        short(&rotated)
    );

    step(3, "refresh with the rotated token");
    let second = first.with_refresh_token(rotated)?;
    let out = client.refresh_blocking(&second)?;
    eprintln!(
        "    ok: new access token ({}), request id {}",
        short(&out.access_token),
        out.request_id.as_deref().unwrap_or("(none)")
    );

    step(
        4,
        "the first token again, inside the 5 s grace period (a client-side retry)",
    );
    client.refresh_blocking(&first)?;
    eprintln!("    ok: the grace period lets a retry with the rotated-out token through");

    step(
        5,
        "the first token again, after the grace period (clock moved 6 s)",
    );
    emulator.advance_clock(Duration::from_secs(6));
    match client.refresh_blocking(&first) {
        Err(e) if e.requires_sign_in() => eprintln!("    refused as it must be: {e}"),
        Err(e) => return Err(e.into()),
        Ok(_) => {
            return Err(Failure::new(
                Code::Failure,
                "a reused refresh token was accepted",
                None,
            ));
        }
    }

    step(6, "a token manager: one refresh, then cached tokens");
    let template = RefreshInput::builder()
        .refresh_token(
            runtime
                .block_on(async { emulator.mint_refresh_token(&seed.client_id, &seed.username) })
                .map_err(|r| Failure::new(Code::Failure, r.to_string(), None))?,
        )
        .client_id(seed.client_id.clone())
        .build()?;
    let manager = BlockingTokenManager::builder(
        cogref_blocking::client(endpoint, CallConfig::default()),
        template,
        MemoryStore::new(),
    )
    .on_event(|e| eprintln!("    event: {}", describe(e)))
    .build()?;
    let before = emulator.requests_served();
    for _ in 0..3 {
        manager.access_token()?;
    }
    eprintln!(
        "    3 access_token() calls made {} request(s)",
        emulator.requests_served() - before
    );

    runtime.block_on(emulator.shutdown());
    eprintln!("\ndone: refresh, rotation, grace period, reuse detection and caching all behaved");
    Ok(())
}
