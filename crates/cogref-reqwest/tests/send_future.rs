//! What a send's future does before and when it is polled: reqwest is handed the request only
//! then, so a future dropped unpolled reaches no server, and a request reqwest cannot take is
//! a typed error of a request not sent.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use cogref_core::TransportErrorKind;
use cogref_reqwest::{AsyncTransport, Error, ReqwestTransport, SendOptions, Timeouts, http};

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

#[tokio::test]
async fn a_send_dropped_before_it_is_polled_reaches_no_server() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let uri = format!("http://{}/", listener.local_addr().expect("address"));
    let transport = ReqwestTransport::new(&Timeouts::default()).expect("transport");

    drop(transport.send(request(&uri), options(Duration::from_secs(5))));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(accepted(&listener), 0, "a dropped send connected");

    // The same send, polled: the server is reached (it never answers, so the attempt times out).
    let outcome = transport
        .send(request(&uri), options(Duration::from_millis(300)))
        .await;
    assert!(
        matches!(&outcome, Err(Error::Transport(t)) if t.kind() == TransportErrorKind::Timeout),
        "{outcome:?}"
    );
    assert_eq!(accepted(&listener), 1, "the polled send did not connect");
}

#[tokio::test]
async fn a_request_reqwest_cannot_take_is_an_error_of_a_request_not_sent() {
    let transport = ReqwestTransport::new(&Timeouts::default()).expect("transport");
    let outcome = transport
        .send(
            request("/no-scheme-nor-host"),
            options(Duration::from_secs(1)),
        )
        .await;
    let Err(Error::Transport(error)) = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(error.kind(), TransportErrorKind::Other);
    assert!(!error.request_may_have_been_sent(), "{error}");
    assert!(!format!("{error} {error:?}").contains("canary-token"));
}
