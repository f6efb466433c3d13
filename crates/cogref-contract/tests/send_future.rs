//! What a transport's send future does before and when it is polled. The transports prepare
//! the request when `send` is called (so that the future does not hold it), but nothing may
//! reach a server until the future is polled, on whatever executor polls it; and a request the
//! HTTP library cannot take is a typed error of a request not sent.

use std::future::Future;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use cogref_core::{AsyncTransport, Error, SendOptions, Timeouts, TransportErrorKind};

fn request(uri: &str) -> http::Request<Vec<u8>> {
    let mut request =
        http::Request::new(b"{\"RefreshToken\":\"canary-token-0123456789\"}".to_vec());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri.parse().expect("uri");
    request
}

/// A send's future, boxed so that one function can take each transport's.
type SendFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<http::Response<Vec<u8>>, Error>> + 'a>>;

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

/// A send made and dropped unpolled reaches no loopback server; the same send polled by
/// `block_on` reaches it (it never answers, so the attempt times out).
fn only_a_polled_send_reaches_the_server<T, B>(transport: &T, block_on: B)
where
    T: AsyncTransport,
    B: Fn(SendFuture<'_>) -> Result<http::Response<Vec<u8>>, Error>,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let uri = format!("http://{}/", listener.local_addr().expect("address"));

    drop(transport.send(request(&uri), options(Duration::from_secs(5))));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(accepted(&listener), 0, "a dropped send connected");

    let send = transport.send(request(&uri), options(Duration::from_millis(300)));
    let outcome = block_on(Box::pin(send));
    assert!(
        matches!(&outcome, Err(Error::Transport(t)) if t.kind() == TransportErrorKind::Timeout),
        "{outcome:?}"
    );
    assert_eq!(accepted(&listener), 1, "the polled send did not connect");
}

#[test]
fn reqwest_a_send_reaches_the_server_only_once_polled_on_the_runtime_that_awaits_it() {
    // Made outside any runtime; awaited on one.
    let transport = cogref_reqwest::ReqwestTransport::new(&Timeouts::default()).expect("transport");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    only_a_polled_send_reaches_the_server(&transport, |send| runtime.block_on(send));
}

#[test]
fn isahc_a_send_reaches_the_server_only_once_polled_by_any_executor() {
    let transport = cogref_isahc::IsahcTransport::new(&Timeouts::default()).expect("transport");
    only_a_polled_send_reaches_the_server(&transport, |send| futures_lite::future::block_on(send));
}

#[tokio::test]
async fn reqwest_a_request_it_cannot_take_is_an_error_of_a_request_not_sent() {
    let transport = cogref_reqwest::ReqwestTransport::new(&Timeouts::default()).expect("transport");
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
