//! Transports chosen at run time.
//!
//! [`AsyncTransport`] uses async functions in a trait (`impl Future` returns): fast, but not
//! object-safe, so a `Client<T, E>` fixes its transport at compile time. An application that
//! picks reqwest, isahc or ureq from its configuration at start-up needs one client type for
//! all of them: [`DynAsyncTransport`] is the same trait with boxed futures
//! ([`async_trait`](https://docs.rs/async-trait)), so `Box<dyn DynAsyncTransport>` and
//! `Arc<dyn DynAsyncTransport>` are transports too, `spawn` included (the session managers run
//! their refreshes through it). Every [`AsyncTransport`] is a [`DynAsyncTransport`] (a blanket
//! implementation), and [`Client::into_dyn`] turns any client into a [`DynClient`]. The cost is
//! one allocation and one indirect call per `send` and per `sleep`; the latency bench
//! (`cargo bench -p cogref-contract --bench latency`) measures it beside the static client.
//!
//! [`BlockingTransport`] is object-safe already: `Box<dyn BlockingTransport>` and
//! `Arc<dyn BlockingTransport>` are blocking transports, and [`Client::into_dyn_blocking`] turns
//! a blocking client into a [`DynBlockingClient`].
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use cogref_core::driver::{transport_fn, DynClient, HttpRequest, HttpResponse, StdEnvironment};
//! use cogref_core::{CallConfig, Client, EndpointConfig, Error, SendOptions};
//!
//! fn client<T: cogref_core::AsyncTransport + 'static>(transport: T) -> DynClient<StdEnvironment> {
//!     let endpoint = EndpointConfig::new().region("eu-west-1").resolve().expect("endpoint");
//!     let env = StdEnvironment::new(Instant::now, SystemTime::now);
//!     Client::new(transport, env, endpoint, CallConfig::default()).into_dyn()
//! }
//! let offline = |_: HttpRequest, _: SendOptions| async {
//!     Err::<HttpResponse, Error>(
//!         cogref_core::TransportError::new(cogref_core::TransportErrorKind::Connect, "offline").into(),
//!     )
//! };
//! // Two transports of different types, one client type: chosen from the configuration in
//! // an application (`cogref_reqwest::client(..)?.into_dyn()`, `cogref_isahc::…`).
//! let clients: Vec<DynClient<StdEnvironment>> = vec![
//!     client(transport_fn(offline, |_: Duration| async {})),
//!     client(transport_fn(offline, |_: Duration| std::future::ready(()))),
//! ];
//! assert_eq!(clients.len(), 2);
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::call::SendOptions;
use crate::call::driver::{
    AsyncTransport, BlockingTransport, Client, DetachedTask, Environment, HttpRequest, HttpResponse,
};
use crate::error::Error;

/// An object-safe [`AsyncTransport`]: the same duties, with boxed futures. Implement
/// [`AsyncTransport`] and get this for free, or implement it directly with
/// `#[async_trait::async_trait]`.
#[async_trait::async_trait]
pub trait DynAsyncTransport: Send + Sync {
    /// See [`AsyncTransport::send`].
    async fn send(&self, request: HttpRequest, options: SendOptions)
    -> Result<HttpResponse, Error>;

    /// See [`AsyncTransport::sleep`].
    async fn sleep(&self, duration: Duration);

    /// See [`AsyncTransport::spawn`].
    fn spawn(&self, task: DetachedTask);
}

#[async_trait::async_trait]
impl<T: AsyncTransport> DynAsyncTransport for T {
    async fn send(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> Result<HttpResponse, Error> {
        AsyncTransport::send(self, request, options).await
    }

    async fn sleep(&self, duration: Duration) {
        AsyncTransport::sleep(self, duration).await;
    }

    fn spawn(&self, task: DetachedTask) {
        AsyncTransport::spawn(self, task);
    }
}

impl<'a> AsyncTransport for Box<dyn DynAsyncTransport + 'a> {
    fn send(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> impl Future<Output = Result<HttpResponse, Error>> + Send {
        DynAsyncTransport::send(&**self, request, options)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        DynAsyncTransport::sleep(&**self, duration)
    }

    fn spawn(&self, task: DetachedTask) {
        DynAsyncTransport::spawn(&**self, task);
    }
}

impl<'a> AsyncTransport for Arc<dyn DynAsyncTransport + 'a> {
    fn send(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> impl Future<Output = Result<HttpResponse, Error>> + Send {
        DynAsyncTransport::send(&**self, request, options)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        DynAsyncTransport::sleep(&**self, duration)
    }

    fn spawn(&self, task: DetachedTask) {
        DynAsyncTransport::spawn(&**self, task);
    }
}

impl<'a> BlockingTransport for Box<dyn BlockingTransport + 'a> {
    fn send(&self, request: HttpRequest, options: SendOptions) -> Result<HttpResponse, Error> {
        (**self).send(request, options)
    }

    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration);
    }
}

impl<'a> BlockingTransport for Arc<dyn BlockingTransport + 'a> {
    fn send(&self, request: HttpRequest, options: SendOptions) -> Result<HttpResponse, Error> {
        (**self).send(request, options)
    }

    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration);
    }
}

/// A client whose async transport was chosen at run time.
pub type DynClient<E> = Client<Arc<dyn DynAsyncTransport>, E>;

/// A client whose blocking transport was chosen at run time.
pub type DynBlockingClient<E> = Client<Arc<dyn BlockingTransport>, E>;

impl<T: AsyncTransport + 'static, E: Environment> Client<T, E> {
    /// This client over its transport as an `Arc<dyn DynAsyncTransport>`: one type whatever the
    /// transport. The endpoint, configuration and retry quota are kept (clones made before
    /// share the quota).
    pub fn into_dyn(self) -> DynClient<E> {
        self.map_transport(|t| Arc::new(t) as Arc<dyn DynAsyncTransport>)
    }
}

impl<T: BlockingTransport + 'static, E: Environment> Client<T, E> {
    /// This client over its transport as an `Arc<dyn BlockingTransport>`; see
    /// [`Client::into_dyn`].
    pub fn into_dyn_blocking(self) -> DynBlockingClient<E> {
        self.map_transport(|t| Arc::new(t) as Arc<dyn BlockingTransport>)
    }
}
