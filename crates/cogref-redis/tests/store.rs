//! The store against a real Redis: versions and compare-and-set, the lease, sealing, errors.
//! (The fleet behaviour, with processes and the emulator, is in `fleet.rs`.)

mod common;

use std::time::{Duration, Instant, SystemTime};

use cogref_core::TokenSet;
use cogref_redis::{RedisStore, RedisStoreError, SealingKey};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{StoreError, TokenStore};
use common::*;

const CANARY_REFRESH: &str = "CANARYrefreshTOKEN0123456789abcdefCANARY";
const CANARY_ACCESS: &str = "CANARYaccessTOKEN0123456789abcdefCANARY";

fn set(refresh: &str) -> TokenSet {
    TokenSet::new(
        refresh.to_owned().into(),
        Some(CANARY_ACCESS.to_owned().into()),
        None,
        None,
        Some(SystemTime::now() + Duration::from_secs(3600)),
        Some(Duration::from_secs(3600)),
    )
}

fn store(url: &str, lineage: &str) -> RedisStore {
    RedisStore::builder(url, lineage).build().expect("store")
}

fn other(e: &StoreError) -> &RedisStoreError {
    match e {
        StoreError::Other(source) => source
            .downcast_ref::<RedisStoreError>()
            .expect("a Redis store error"),
        other => panic!("expected StoreError::Other, got {other:?}"),
    }
}

#[test]
fn an_absent_entry_loads_as_none_and_a_saved_set_loads_back_with_its_version() {
    let redis = redis();
    let store = store(&redis.url, &lineage("roundtrip"));
    assert!(store.load().expect("load").is_none());
    let v1 = store.save(&set(CANARY_REFRESH), None).expect("save");
    let loaded = store.load().expect("load").expect("stored");
    assert_eq!(loaded.version, v1);
    assert_eq!(loaded.tokens.refresh_token.expose_secret(), CANARY_REFRESH);
    assert!(loaded.tokens.expires_at.is_some());
    assert_eq!(loaded.tokens.lifetime, Some(Duration::from_secs(3600)));
    assert_eq!(
        loaded
            .tokens
            .access_token
            .as_ref()
            .map(|t| t.expose_secret()),
        Some(CANARY_ACCESS)
    );
    let v2 = store.save(&set("second"), Some(v1)).expect("save");
    assert_eq!(v2, v1 + 1);
}

#[test]
fn a_stale_writer_is_rejected_by_the_version_check_and_the_newer_set_stays() {
    let redis = redis();
    let name = lineage("stale");
    let (a, b) = (store(&redis.url, &name), store(&redis.url, &name));
    let v1 = a.save(&set("r1"), None).expect("first");
    // Both load v1; b saves first; a's save against v1 must fail and write nothing.
    assert_eq!(a.load().expect("a").expect("set").version, v1);
    let v2 = b.save(&set("r2-newer"), Some(v1)).expect("b wins");
    match a.save(&set("r2-older"), Some(v1)) {
        Err(StoreError::Conflict { expected, found }) => {
            assert_eq!((expected, found), (Some(v1), Some(v2)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Creating over an existing entry is a conflict too.
    assert!(matches!(
        a.save(&set("r-new"), None),
        Err(StoreError::Conflict {
            expected: None,
            found: Some(_)
        })
    ));
    let kept = b.load().expect("load").expect("set");
    assert_eq!(
        (kept.version, kept.tokens.refresh_token.expose_secret()),
        (v2, "r2-newer")
    );
}

#[test]
fn versions_do_not_repeat_after_the_entry_is_lost() {
    let redis = redis();
    let store = store(&redis.url, &lineage("lost"));
    let v1 = store.save(&set("a"), None).expect("first");
    store.clear().expect("cleared");
    let again = store.save(&set("b"), None).expect("created again");
    assert_ne!(
        v1, again,
        "a writer holding v1 must never match the new entry"
    );
}

#[test]
fn the_lease_is_exclusive_and_released_when_the_guard_drops() {
    let redis = redis();
    let name = lineage("lease");
    let (a, b) = (store(&redis.url, &name), store(&redis.url, &name));
    let guard = a.try_lock().expect("ok").expect("free");
    assert!(b.try_lock().expect("ok").is_none(), "held by a");
    drop(guard);
    assert!(b.try_lock().expect("ok").is_some(), "released");
}

#[test]
fn a_lease_runs_out_and_its_late_release_does_not_delete_the_next_holders() {
    let redis = redis();
    let name = lineage("expiry");
    let short = RedisStore::builder(&redis.url, &name)
        .lease_ttl(Duration::from_millis(150))
        .build()
        .expect("store");
    let b = store(&redis.url, &name);
    let stale_guard = short.try_lock().expect("ok").expect("free");
    assert!(b.try_lock().expect("ok").is_none());
    std::thread::sleep(Duration::from_millis(250));
    let b_guard = b.try_lock().expect("ok").expect("ran out");
    // The first holder wakes up and releases: compare-and-delete leaves b's lease alone.
    drop(stale_guard);
    assert!(short.try_lock().expect("ok").is_none(), "b still holds it");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(b.lease_key())
        .query(&mut raw(&redis.url))
        .expect("pttl");
    assert!(ttl > 0, "b's lease still has its expiry: {ttl}");
    drop(b_guard);
}

#[test]
fn a_waiter_is_woken_by_a_save_before_its_timeout() {
    let redis = redis();
    let name = lineage("wake");
    let (waiter, writer) = (store(&redis.url, &name), store(&redis.url, &name));
    let v1 = writer.save(&set("r1"), None).expect("first");
    let _lease = writer.try_lock().expect("ok").expect("free");
    let saver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        writer.save(&set("r2"), Some(v1)).expect("second");
    });
    let started = Instant::now();
    assert!(
        waiter
            .wait_for_change(Some(v1), Duration::from_secs(5))
            .expect("wait")
    );
    let waited = started.elapsed();
    saver.join().expect("saver");
    assert!(
        waited < Duration::from_secs(4),
        "woken by the announcement, not the timeout: {waited:?}"
    );
    // Nothing to wait for when the version already moved on.
    let started = Instant::now();
    assert!(
        waiter
            .wait_for_change(Some(v1), Duration::from_secs(5))
            .expect("wait")
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn a_sealed_entry_hides_the_tokens_and_opens_with_its_key() {
    let redis = redis();
    let name = lineage("sealed");
    let key = SealingKey::from_bytes([42; 32]);
    let store = RedisStore::builder(&redis.url, &name)
        .sealing_key(key.clone())
        .build()
        .expect("store");
    store.save(&set(CANARY_REFRESH), None).expect("save");
    let raw_value: Vec<u8> = redis::cmd("HGET")
        .arg(store.tokens_key())
        .arg("d")
        .query(&mut raw(&redis.url))
        .expect("raw");
    let text = String::from_utf8_lossy(&raw_value);
    assert!(!text.contains("CANARY"), "sealed value shows a token");
    assert!(
        !text.contains("refresh_token"),
        "sealed value shows the JSON"
    );
    let loaded = store.load().expect("load").expect("set");
    assert_eq!(loaded.tokens.refresh_token.expose_secret(), CANARY_REFRESH);
}

#[test]
fn a_sealed_entry_read_with_the_wrong_key_or_none_is_a_clear_error_not_garbage() {
    let redis = redis();
    let name = lineage("wrongkey");
    RedisStore::builder(&redis.url, &name)
        .sealing_key(SealingKey::from_bytes([1; 32]))
        .build()
        .expect("store")
        .save(&set(CANARY_REFRESH), None)
        .expect("save");
    let wrong = RedisStore::builder(&redis.url, &name)
        .sealing_key(SealingKey::from_bytes([2; 32]))
        .build()
        .expect("store");
    let e = wrong.load().expect_err("wrong key");
    assert!(
        matches!(other(&e), RedisStoreError::WrongKey { .. }),
        "{e:?}"
    );
    let shown = e.to_string();
    assert!(shown.contains("sealed with another key"), "{shown}");
    assert!(!shown.contains("CANARY") && !format!("{e:?}").contains("CANARY"));
    // Without a key: its own error.
    let e = store(&redis.url, &name).load().expect_err("no key");
    assert!(
        matches!(other(&e), RedisStoreError::SealedButNoKey { .. }),
        "{e}"
    );
}

#[test]
fn a_store_that_requires_sealing_refuses_a_plain_entry() {
    let redis = redis();
    let name = lineage("plain");
    store(&redis.url, &name)
        .save(&set("r"), None)
        .expect("plain save");
    let sealed = RedisStore::builder(&redis.url, &name)
        .sealing_key(SealingKey::from_bytes([1; 32]))
        .build()
        .expect("store");
    let e = sealed.load().expect_err("plain");
    assert!(
        matches!(other(&e), RedisStoreError::NotSealed { .. }),
        "{e}"
    );
}

#[test]
fn a_corrupt_entry_is_an_error_that_never_quotes_it() {
    let redis = redis();
    let name = lineage("corrupt");
    let store = store(&redis.url, &name);
    let mut c = raw(&redis.url);
    for (v, d) in [
        ("1", format!("{{\"x\":\"{CANARY_REFRESH}")),
        ("not-a-number", "{}".to_owned()),
        (
            "1",
            format!(
                "{{\"format\":\"cogref-tokens\",\"version\":1,\"refresh_token\":7,\"y\":\"{CANARY_REFRESH}\"}}"
            ),
        ),
    ] {
        redis::cmd("HSET")
            .arg(store.tokens_key())
            .arg("v")
            .arg(v)
            .arg("d")
            .arg(&d)
            .query::<i64>(&mut c)
            .expect("write");
        let e = store.load().expect_err("corrupt");
        let shown = format!("{e} {e:?}");
        assert!(shown.contains(store.tokens_key()), "{shown}");
        assert!(!shown.contains("CANARY"), "{shown}");
    }
    redis::cmd("HSET")
        .arg(store.tokens_key())
        .arg("v")
        .arg("1")
        .arg("d")
        .arg(r#"{"format":"cogref-tokens","version":99}"#)
        .query::<i64>(&mut c)
        .expect("write");
    assert!(matches!(
        store.load(),
        Err(StoreError::UnsupportedVersion { found: 99, .. })
    ));
}

#[test]
fn an_unreachable_server_is_a_clear_error_naming_the_address_but_never_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let store = RedisStore::builder(
        format!("redis://user:CANARYpassword@127.0.0.1:{port}/"),
        "unreachable",
    )
    .connect_timeout(Duration::from_millis(300))
    .build()
    .expect("store");
    let e = store.load().expect_err("nothing listens");
    let shown = format!("{e} {e:?} {store:?}");
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    assert!(!shown.contains("CANARYpassword"), "{shown}");
    assert!(store.try_lock().is_err());
}

#[test]
fn bad_names_and_urls_are_refused_when_built() {
    for lineage in ["", "has space", "brace{", "}", "tab\t"] {
        assert!(matches!(
            RedisStore::builder("redis://127.0.0.1/", lineage).build(),
            Err(RedisStoreError::InvalidConfig(_))
        ));
    }
    let e = RedisStore::builder("http://user:CANARYpassword@127.0.0.1/", "x")
        .build()
        .expect_err("not redis");
    assert!(!format!("{e} {e:?}").contains("CANARYpassword"), "{e:?}");
}

#[test]
fn the_store_survives_a_server_restart_by_reconnecting() {
    let mut server = RedisServer::start();
    let store = store(&server.url(), &lineage("restart"));
    store.save(&set("r1"), None).expect("save");
    server.restart();
    // The pooled connection is dead and the data gone: the next call reconnects and sees that.
    assert!(store.load().expect("reconnected").is_none());
    store.save(&set("r2"), None).expect("created again");
}

#[test]
fn auth_comes_from_the_url_and_a_wrong_password_is_a_clear_error_without_it() {
    let server = RedisServer::start_with(&["--requirepass", "CANARYpassword1"]);
    let name = lineage("auth");
    let url = |password: &str| format!("redis://:{password}@127.0.0.1:{}/", server.port);
    let good = RedisStore::builder(url("CANARYpassword1"), &name)
        .build()
        .expect("store");
    let v1 = good.save(&set("r1"), None).expect("authenticated save");
    assert_eq!(good.load().expect("load").expect("set").version, v1);

    for bad in [
        url("CANARYwrongpassword"),
        format!("redis://127.0.0.1:{}/", server.port),
    ] {
        let store = RedisStore::builder(bad, &name).build().expect("store");
        let e = store.load().expect_err("refused");
        let shown = format!("{e} {e:?}");
        assert!(
            matches!(other(&e), RedisStoreError::Redis { .. }),
            "{shown}"
        );
        assert!(!shown.contains("CANARY"), "{shown}");
        // "Password authentication failed" / "NOAUTH: Authentication required", from the server.
        assert!(e.to_string().to_lowercase().contains("auth"), "{e}");
    }
}

// Integrity against whoever can write to Redis without the sealing key: every move they have.

fn sealed_store(url: &str, lineage: &str) -> RedisStore {
    RedisStore::builder(url, lineage)
        .sealing_key(SealingKey::from_bytes([42; 32]))
        .build()
        .expect("store")
}

/// The raw `{v, d}` of an entry.
fn raw_entry(url: &str, key: &str) -> (String, Vec<u8>) {
    redis::cmd("HMGET")
        .arg(key)
        .arg("v")
        .arg("d")
        .query(&mut raw(url))
        .expect("raw entry")
}

/// Writes `{v, d}` as an attacker would.
fn write_entry(url: &str, key: &str, v: &str, d: &[u8]) {
    redis::cmd("HSET")
        .arg(key)
        .arg("v")
        .arg(v)
        .arg("d")
        .arg(d)
        .query::<i64>(&mut raw(url))
        .expect("write");
}

/// The error of a load that must be refused: never a token in it, always the key.
fn refused(store: &RedisStore, what: &str) -> StoreError {
    match store.load() {
        Ok(loaded) => panic!(
            "{what}: loaded {:?}",
            loaded.map(|l| (l.version, l.tokens.refresh_token.expose_secret().to_owned()))
        ),
        Err(e) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("CANARY"), "{what}: {shown}");
            assert!(shown.contains(store.tokens_key()), "{what}: {shown}");
            e
        }
    }
}

#[test]
fn a_sealed_entry_written_back_from_an_older_version_is_refused_as_a_rollback() {
    let redis = redis();
    let store = sealed_store(&redis.url, &lineage("rollback"));
    let key = store.tokens_key().to_owned();
    let v1 = store.save(&set("CANARY-old-r1"), None).expect("v1");
    let (old_v, old_d) = raw_entry(&redis.url, &key);
    let v2 = store.save(&set(CANARY_REFRESH), Some(v1)).expect("v2");
    assert_eq!(store.load().expect("load").expect("set").version, v2);
    // The whole old entry, written back: authentic, but older than what this store has seen.
    write_entry(&redis.url, &key, &old_v, &old_d);
    let e = refused(&store, "old {v, d}");
    match other(&e) {
        RedisStoreError::RolledBack { found, seen, .. } => {
            assert_eq!((*found, *seen), (v1, v2));
        }
        e => panic!("expected RolledBack, got {e:?}"),
    }
    assert!(e.to_string().contains("older"), "{e}");
}

#[test]
fn an_older_sealed_value_under_the_current_or_a_higher_version_is_refused() {
    let redis = redis();
    let store = sealed_store(&redis.url, &lineage("oldvalue"));
    let key = store.tokens_key().to_owned();
    let v1 = store.save(&set("CANARY-old-r1"), None).expect("v1");
    let (_, old_d) = raw_entry(&redis.url, &key);
    let v2 = store.save(&set(CANARY_REFRESH), Some(v1)).expect("v2");
    for v in [v2, v2 + 1, v2 + 1000] {
        write_entry(&redis.url, &key, &v.to_string(), &old_d);
        let e = refused(&store, &format!("old d under v {v}"));
        assert!(
            matches!(other(&e), RedisStoreError::WrongKey { .. }),
            "{e:?}"
        );
        // A store that never saw anything is not fooled either.
        refused(&sealed_store(&redis.url, &lineage_of(&key)), "fresh store");
    }
}

/// The lineage name in a tokens key `cogref:{lineage}:tokens`.
fn lineage_of(key: &str) -> String {
    key.split(['{', '}']).nth(1).expect("hash tag").to_owned()
}

#[test]
fn a_sealed_value_from_another_lineage_is_refused() {
    let redis = redis();
    let a = sealed_store(&redis.url, &lineage("lineage-a"));
    let b = sealed_store(&redis.url, &lineage("lineage-b"));
    a.save(&set(CANARY_REFRESH), None).expect("a");
    b.save(&set("CANARY-b"), None).expect("b");
    let (v, d) = raw_entry(&redis.url, a.tokens_key());
    write_entry(&redis.url, b.tokens_key(), &v, &d);
    let e = refused(&b, "a's entry in b");
    assert!(
        matches!(other(&e), RedisStoreError::WrongKey { .. }),
        "{e:?}"
    );
    // Under another prefix, the same lineage name is another lineage too.
    let prefixed = RedisStore::builder(&redis.url, lineage_of(a.tokens_key()))
        .key_prefix("elsewhere")
        .sealing_key(SealingKey::from_bytes([42; 32]))
        .build()
        .expect("store");
    write_entry(&redis.url, prefixed.tokens_key(), &v, &d);
    refused(&prefixed, "a's entry under another prefix");
}

#[test]
fn a_sealed_value_with_a_flipped_bit_or_an_altered_version_is_refused() {
    let redis = redis();
    let store = sealed_store(&redis.url, &lineage("tamper"));
    let key = store.tokens_key().to_owned();
    let v1 = store.save(&set(CANARY_REFRESH), None).expect("v1");
    let (v, d) = raw_entry(&redis.url, &key);
    for position in [
        0,
        15,
        16,
        20,
        39,
        40,
        d.len() / 2,
        d.len() - 17,
        d.len() - 1,
    ] {
        for bit in [0x01, 0x80] {
            let mut flipped = d.clone();
            flipped[position] ^= bit;
            write_entry(&redis.url, &key, &v, &flipped);
            refused(&store, &format!("bit {bit:#x} of byte {position}"));
        }
    }
    for (version, what) in [
        (format!("0{v}"), "a leading zero"),
        (format!("+{v}"), "a plus sign"),
        (format!("{v} "), "a trailing space"),
        ((v1 + 1).to_string(), "the next version"),
        ((v1 - 1).to_string(), "the previous version"),
    ] {
        write_entry(&redis.url, &key, &version, &d);
        refused(&store, what);
    }
    for cut in [0, 16, 40, d.len() - 1] {
        write_entry(&redis.url, &key, &v, &d[..cut]);
        refused(&store, &format!("cut at {cut}"));
    }
    // Put back untouched, it loads.
    write_entry(&redis.url, &key, &v, &d);
    assert_eq!(store.load().expect("load").expect("set").version, v1);
}

#[test]
fn a_plain_entry_written_back_from_an_older_version_is_refused_as_a_rollback_too() {
    // Without a key, anyone who can write to Redis can write anything; what this catches is an
    // older entry coming back (a restored snapshot), which must not be taken for the newest.
    let redis = redis();
    let store = store(&redis.url, &lineage("plain-rollback"));
    let key = store.tokens_key().to_owned();
    let v1 = store.save(&set("CANARY-old"), None).expect("v1");
    let (old_v, old_d) = raw_entry(&redis.url, &key);
    store.save(&set(CANARY_REFRESH), Some(v1)).expect("v2");
    write_entry(&redis.url, &key, &old_v, &old_d);
    let e = refused(&store, "old plain entry");
    assert!(
        matches!(other(&e), RedisStoreError::RolledBack { .. }),
        "{e:?}"
    );
}

#[test]
fn a_store_never_creates_an_entry_below_a_version_it_has_seen() {
    let redis = redis();
    let store = store(&redis.url, &lineage("floor"));
    let key = store.tokens_key().to_owned();
    // A version far above the server clock in microseconds.
    let high: u64 = 1 << 60;
    let plain = cogref_session::format::encode(&set("r"));
    write_entry(&redis.url, &key, &high.to_string(), plain.expose_secret());
    assert_eq!(store.load().expect("load").expect("set").version, high);
    store.clear().expect("cleared");
    let created = store.save(&set("r2"), None).expect("created");
    assert!(created > high, "{created} <= {high}");
    assert_eq!(store.load().expect("load").expect("set").version, created);
}

#[test]
fn a_version_at_its_largest_value_is_corrupt_on_save_and_nothing_is_written() {
    let redis = redis();
    let store = store(&redis.url, &lineage("maxversion"));
    let key = store.tokens_key().to_owned();
    let plain = cogref_session::format::encode(&set(CANARY_REFRESH));
    write_entry(
        &redis.url,
        &key,
        &u64::MAX.to_string(),
        plain.expose_secret(),
    );
    let loaded = store.load().expect("load").expect("set");
    assert_eq!(loaded.version, u64::MAX);
    let e = store
        .save(&set("CANARY-next"), Some(u64::MAX))
        .expect_err("no version after u64::MAX");
    assert!(
        matches!(other(&e), RedisStoreError::Corrupt { .. }),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains("CANARY"));
    let (v, d) = raw_entry(&redis.url, &key);
    assert_eq!(v, u64::MAX.to_string());
    assert_eq!(d, plain.expose_secret());
}

#[test]
fn a_value_larger_than_any_token_set_is_refused_without_being_fetched() {
    let redis = redis();
    let store = store(&redis.url, &lineage("huge"));
    let key = store.tokens_key().to_owned();
    let mut bytes = cogref_session::format::encode(&set(CANARY_REFRESH))
        .expose_secret()
        .to_vec();
    bytes.resize(bytes.len() + (2 << 20), b' ');
    write_entry(&redis.url, &key, "1", &bytes);
    let e = refused(&store, "2 MiB value");
    assert!(e.to_string().contains("larger than"), "{e}");
}

/// An entry sealed by cogref 0.1 (key `[42; 32]`, lineage `legacy-fixture`, version not bound),
/// whose refresh token is `CANARYlegacySealedREFRESHtoken0123456789`.
const LEGACY_SEALED: &str = "636f677265662d7365616c65643a313a7a72c38227ebdf1ee0c6b3e22d7fc433047dfa6a1d5bb8b434e815dd92348b0e740c6107d70e0b544239310fa104aebdbc73ec82bbd4ce14c42e4075455828f28f0e5d170b1d885424a399853320d60440cbd4ab360fdf0f4ce9ce311268f6d44e72f2da9737cc436fc74c5d55557b850c67379ae22db62e0541d6fafe7c9b3211a2ec27a1255cdaf8";

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn an_entry_sealed_before_versions_were_bound_still_loads_until_a_bound_one_was_seen() {
    // A fixed lineage name (the fixture is bound to it): a server of the test's own.
    let server = RedisServer::start();
    let url = server.url();
    let store = sealed_store(&url, "legacy-fixture");
    let key = store.tokens_key().to_owned();
    let legacy = unhex(LEGACY_SEALED);
    write_entry(&url, &key, "1700000000000000", &legacy);
    let loaded = store
        .load()
        .expect("an upgrade keeps the session")
        .expect("set");
    assert_eq!(
        loaded.tokens.refresh_token.expose_secret(),
        "CANARYlegacySealedREFRESHtoken0123456789"
    );
    // The next save seals with the version bound.
    let v = store
        .save(&set(CANARY_REFRESH), Some(loaded.version))
        .expect("save");
    let (_, d) = raw_entry(&url, &key);
    assert!(d.starts_with(b"cogref-sealed:2:"), "re-sealed bound");
    // From then on, the old kind is a downgrade: refused, even under a newer version.
    write_entry(&url, &key, &(v + 1).to_string(), &legacy);
    let e = refused(&store, "legacy after a bound entry");
    assert!(
        matches!(other(&e), RedisStoreError::RolledBack { .. }),
        "{e:?}"
    );
}

#[test]
fn a_lease_or_timeout_that_cannot_work_is_refused_when_built() {
    let builder = || RedisStore::builder("redis://127.0.0.1/", "x");
    for (what, result) in [
        ("lease 0", builder().lease_ttl(Duration::ZERO).build()),
        (
            "lease under 1 ms",
            builder().lease_ttl(Duration::from_micros(999)).build(),
        ),
        ("lease of ages", builder().lease_ttl(Duration::MAX).build()),
        (
            "lease over a day",
            builder()
                .lease_ttl(Duration::from_secs(86_400) + Duration::from_millis(1))
                .build(),
        ),
        (
            "connect timeout 0",
            builder().connect_timeout(Duration::ZERO).build(),
        ),
        ("io timeout 0", builder().io_timeout(Duration::ZERO).build()),
    ] {
        assert!(
            matches!(result, Err(RedisStoreError::InvalidConfig(_))),
            "{what}: {result:?}"
        );
    }
    assert!(
        builder()
            .lease_ttl(Duration::from_secs(86_400))
            .build()
            .is_ok()
    );
}
