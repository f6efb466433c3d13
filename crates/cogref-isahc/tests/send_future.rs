//! What a send's future does before and when it is polled: isahc is handed the request when
//! `send` is called (quietly), but nothing reaches a server until the future is polled, on
//! whatever executor polls it.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use cogref_core::{AsyncTransport, Error, SendOptions, Timeouts, TransportErrorKind, http};
use cogref_isahc::IsahcTransport;

fn request(uri: &str) -> http::Request<Vec<u8>> {
    let mut request =
        http::Request::new(b"{\"RefreshToken\":\"canary-token-0123456789\"}".to_vec());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri.parse().expect("uri");
    request
}

fn options(timeout: Duration) -> SendOptions {
    SendOptions::new(timeout, Duration::from_secs(1), 1 << 20)
}

/// Connections the listener has accepted so far.
fn accepted(listener: &TcpListener) -> usize {
    let mut count = 0;
    loop {
        match listener.accept() {
            Ok(_) => count += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return count,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn a_send_made_outside_any_runtime_reaches_the_server_only_once_polled() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let uri = format!("http://{}/", listener.local_addr().expect("address"));
    let transport = IsahcTransport::new(&Timeouts::default()).expect("transport");

    drop(transport.send(request(&uri), options(Duration::from_secs(5))));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(accepted(&listener), 0, "a dropped send connected");

    // The same send, polled by a plain executor: the server is reached (it never answers, so
    // the attempt times out).
    let send = transport.send(request(&uri), options(Duration::from_millis(300)));
    let outcome = futures_lite::future::block_on(send);
    assert!(
        matches!(&outcome, Err(Error::Transport(t)) if t.kind() == TransportErrorKind::Timeout),
        "{outcome:?}"
    );
    assert_eq!(accepted(&listener), 1, "the polled send did not connect");
}
