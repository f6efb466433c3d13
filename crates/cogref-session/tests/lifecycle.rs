//! A session's life on Cognito's clock: its deadline (sign-in plus the refresh-token validity,
//! which rotation does not extend) and a client clock that is minutes off.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cogref_core::{CallConfig, EndpointConfig, Environment, RefreshInput};
use cogref_emulator::{Emulator, EmulatorConfig, Seed};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{BlockingTokenManager, MemoryStore, SessionEvent, TokenManager, TokenStore};
use common::*;

fn jwt(claims: &str) -> String {
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims)
    )
}

fn claim(token: &str, name: &str) -> i64 {
    let payload = token.split('.').nth(1).expect("a JWT");
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    json[name].as_i64().expect("a number")
}

#[test]
fn the_deadline_is_known_recorded_in_the_store_and_announced_once() {
    let clock = clock();
    // Signed in an hour before T0; every refresh carries the same auth_time.
    let access = |iat: u64| {
        jwt(&format!(
            r#"{{"iat":{iat},"exp":{},"auth_time":{}}}"#,
            iat + 3600,
            T0 - 3600
        ))
    };
    let answers: Vec<_> = (0..4)
        .map(|i| {
            ok(
                &access(T0 + i * 10 * 24 * 3600),
                3600,
                Some(&format!("r{}", i + 1)),
            )
        })
        .collect();
    let transport = Scripted::new(&clock, &answers);
    let told = Arc::new(Mutex::new(Vec::new()));
    let seen = told.clone();
    let store = MemoryStore::new();
    let manager =
        BlockingTokenManager::builder(client(transport, &clock), template("r0"), store.clone())
            .refresh_token_validity(Duration::from_secs(30 * 24 * 3600))
            .ending_soon_notice(Duration::from_secs(5 * 24 * 3600))
            .on_event(move |e| {
                if let SessionEvent::EndingSoon { deadline } = e {
                    seen.lock().expect("events").push(*deadline);
                }
            })
            .build()
            .expect("manager");
    assert_eq!(manager.deadline(), None, "unknown before the first token");
    manager.access_token().expect("first");
    let deadline = manager.deadline().expect("known from auth_time");
    let exact = UNIX_EPOCH + Duration::from_secs(T0 - 3600 + 30 * 24 * 3600);
    assert!(
        deadline <= exact && exact - Duration::from_secs(2) <= deadline,
        "{deadline:?}"
    );
    let stored = store.load().expect("ok").expect("saved").tokens;
    assert_eq!(
        stored.signed_in_at,
        Some(UNIX_EPOCH + Duration::from_secs(T0 - 3600))
    );
    // Twenty days later: not yet; thirty minus five: announced, once.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(10 * 24 * 3600));
        manager.refresh_now().expect("refresh");
        assert_eq!(
            manager.deadline(),
            Some(deadline),
            "rotation does not move it"
        );
    }
    assert_eq!(told.lock().expect("events").as_slice(), [deadline]);
}

#[test]
fn a_sign_in_time_stated_by_the_application_survives_a_restart() {
    let clock = clock();
    let signed_in = UNIX_EPOCH + Duration::from_secs(T0 - 86_400);
    let transport = Scripted::new(&clock, &[ok("opaque", 3600, Some("r1"))]);
    let store = MemoryStore::new();
    let manager =
        BlockingTokenManager::builder(client(transport, &clock), template("r0"), store.clone())
            .refresh_token_validity(Duration::from_secs(7 * 86_400))
            .signed_in_at(signed_in)
            .build()
            .expect("manager");
    manager.access_token().expect("token");
    let restarted = BlockingTokenManager::builder(
        client(Scripted::new(&clock, &[]), &clock),
        template("r0"),
        store,
    )
    .refresh_token_validity(Duration::from_secs(7 * 86_400))
    .build()
    .expect("manager");
    assert_eq!(
        restarted.deadline(),
        Some(signed_in + Duration::from_secs(7 * 86_400))
    );
}

/// The system's clocks, with the wall clock `offset_secs` off.
#[derive(Clone)]
struct OffClock {
    offset_secs: i64,
}

impl Environment for OffClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall_clock(&self) -> SystemTime {
        let off = Duration::from_secs(self.offset_secs.unsigned_abs());
        if self.offset_secs >= 0 {
            SystemTime::now() + off
        } else {
            SystemTime::now() - off
        }
    }
    fn random_seed(&self) -> u64 {
        cogref_core::driver::StdEnvironment::new(Instant::now, SystemTime::now).random_seed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_clock_ten_minutes_off_tokens_are_refreshed_on_time_and_never_served_past_exp()
 {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    for offset_secs in [-600i64, 600] {
        let seeded = emulator
            .seed(&Seed {
                username: format!("clock{offset_secs}"),
                access_token_validity_secs: 4,
                rotation_grace_secs: Some(0),
                ..Seed::default()
            })
            .expect("seed");
        let endpoint = EndpointConfig::new()
            .endpoint_url(emulator.endpoint_url())
            .resolve()
            .expect("endpoint");
        let transport =
            cogref_reqwest::ReqwestTransport::new(&Default::default()).expect("reqwest");
        let client = cogref_core::Client::new(
            transport,
            OffClock { offset_secs },
            endpoint,
            CallConfig::default(),
        );
        let template = RefreshInput::builder()
            .refresh_token(seeded.refresh_token.clone())
            .client_id("cogrefdemoclient")
            .build()
            .expect("valid");
        let manager = TokenManager::builder(client, template, MemoryStore::new())
            .build()
            .await
            .expect("manager");
        let granted_before = emulator.refreshes_granted();
        let started = Instant::now();
        let mut served = 0;
        while started.elapsed() < Duration::from_secs(6) {
            let token = manager.access_token().await.expect("a token");
            // Cognito's clock (the emulator's) says the token is still valid right now.
            let server_now = emulator
                .now()
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_secs_f64();
            let exp = claim(token.expose_secret(), "exp") as f64;
            assert!(
                server_now < exp,
                "offset {offset_secs}: served {server_now} >= exp {exp}"
            );
            served += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let skew = manager.clock_skew_secs().expect("known");
        assert!(
            (skew + offset_secs).abs() <= 2,
            "offset {offset_secs}: skew {skew}"
        );
        // 4 s tokens live 3 s locally, refreshed 1.5 s ahead: one refresh every 1.5 s or so,
        // not one per call and not none.
        let refreshes = emulator.refreshes_granted() - granted_before;
        assert!(
            (3..=6).contains(&refreshes),
            "offset {offset_secs}: {refreshes} refreshes for {served} calls"
        );
        assert_eq!(emulator.refusals("RefreshTokenReuseException"), 0);
    }
}
