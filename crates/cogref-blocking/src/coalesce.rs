//! One write for a request's head and body.
//!
//! ureq transmits a request's head, then its body, as two writes: two TCP segments (two TLS
//! records over TLS), and a server that reads the head before the body has landed wakes up
//! twice for one request (hyper writes both with one `writev`). On loopback that second
//! wake-up cost cogref-blocking a third of its call in some runs and nothing in others, as the
//! server's thread happened to wake before or after the body arrived.
//!
//! [`Coalescing`] holds one transmission back and writes it with the next one, or before the
//! transport waits for input, whichever comes first: a request with a body leaves in one
//! write, a request without one when its answer is awaited, and nothing stays held while an
//! answer is awaited.

use cogref_core::secrecy::zeroize::{Zeroize, Zeroizing};
use ureq::unversioned::transport::{Buffers, NextTimeout, Transport};

/// A transport that writes a held transmission together with the next one (see the module
/// docs). The bytes it holds may be a body, which holds the refresh token: its `Debug` shows
/// their length only, and they are zeroed once written or when it is dropped.
pub(crate) struct Coalescing {
    inner: Box<dyn Transport>,
    /// Bytes ureq transmitted that are not written yet (empty when `reason` is `None`).
    held: Vec<u8>,
    /// The timeout reason of the held transmission (ureq's `SendRequest` for a head): a write
    /// that times out when the held bytes go reads as the sending it is.
    reason: Option<ureq::Timeout>,
}

/// The most a connection keeps allocated for held bytes between requests: a request's head,
/// or a head and a refresh request's body, is a few KiB.
const KEPT_CAPACITY: usize = 16 * 1024;

impl Drop for Coalescing {
    fn drop(&mut self) {
        // Bytes held when ureq gave the connection up between two transmissions (an error,
        // a spent budget) were never written: zeroed all the same.
        self.held.zeroize();
    }
}

impl std::fmt::Debug for Coalescing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the inner transport: ureq's transports show their buffers, the request's bytes.
        f.debug_struct("Coalescing")
            .field("held_bytes", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Coalescing {
    /// `inner`, whose writes this holds back by one.
    pub(crate) fn new(inner: Box<dyn Transport>) -> Self {
        Self {
            inner,
            held: Vec::new(),
            reason: None,
        }
    }

    /// Writes the held bytes, if any, within `timeout` (under the held transmission's reason).
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let Some(reason) = self.reason.take() else {
            return Ok(());
        };
        let held = std::mem::take(&mut self.held);
        let written = self.write(&held, NextTimeout { reason, ..timeout });
        self.held = held;
        self.release();
        written
    }

    /// Zeroes and empties the held bytes. Their allocation is kept for the connection's next
    /// request, unless a long body grew it (an idle connection keeps it while it is pooled).
    fn release(&mut self) {
        self.held.zeroize();
        if self.held.capacity() > KEPT_CAPACITY {
            self.held = Vec::new();
        }
    }

    /// Writes `bytes` through the inner transport's output buffer, a buffer at a time.
    fn write(&mut self, bytes: &[u8], timeout: NextTimeout) -> Result<(), ureq::Error> {
        let capacity = self.inner.buffers().output().len().max(1);
        for chunk in bytes.chunks(capacity) {
            self.inner.buffers().output()[..chunk.len()].copy_from_slice(chunk);
            self.inner.transmit_output(chunk.len(), timeout)?;
        }
        Ok(())
    }
}

impl Transport for Coalescing {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.reason.is_none() {
            let output = &self.inner.buffers().output()[..amount];
            self.held.extend_from_slice(output);
            self.reason = Some(timeout.reason);
            return Ok(());
        }
        let held = self.held.len();
        let output = self.inner.buffers().output();
        if held + amount <= output.len() {
            // The held bytes in front of these, in the buffer: one write for both.
            output.copy_within(..amount, held);
            output[..held].copy_from_slice(&self.held);
            self.release();
            self.reason = None;
            return self.inner.transmit_output(held + amount, timeout);
        }
        // Too long for one buffer (a body of ureq's buffer size or more): in order, apart.
        let current = Zeroizing::new(output[..amount].to_vec());
        self.flush(timeout)?;
        self.write(&current, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// The recording transport the test modules drive `Coalescing` over.
#[cfg(test)]
mod fixture {
    use super::*;
    use std::sync::{Arc, Mutex};
    use ureq::unversioned::transport::LazyBuffers;
    use ureq::unversioned::transport::time::Duration;

    /// What the inner transport was asked to do, in order.
    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Op {
        Write(Vec<u8>),
        Await,
    }

    /// Records writes and waits; fails the `fail_at`th write (0-based) with a timeout of the
    /// reason it was given, and every one after it.
    #[derive(Debug)]
    struct Inner {
        buffers: LazyBuffers,
        ops: Arc<Mutex<Vec<Op>>>,
        writes: usize,
        fail_at: usize,
        reasons: Arc<Mutex<Vec<ureq::Timeout>>>,
    }

    impl Transport for Inner {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }

        fn transmit_output(&mut self, amount: usize, t: NextTimeout) -> Result<(), ureq::Error> {
            self.reasons.lock().expect("reasons").push(t.reason);
            let n = self.writes;
            self.writes += 1;
            if n >= self.fail_at {
                return Err(ureq::Error::Timeout(t.reason));
            }
            let bytes = self.buffers.output()[..amount].to_vec();
            self.ops.lock().expect("ops").push(Op::Write(bytes));
            Ok(())
        }

        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            self.ops.lock().expect("ops").push(Op::Await);
            Ok(false)
        }

        fn is_open(&mut self) -> bool {
            true
        }
    }

    pub(super) struct Fixture {
        pub(super) t: Coalescing,
        ops: Arc<Mutex<Vec<Op>>>,
        pub(super) reasons: Arc<Mutex<Vec<ureq::Timeout>>>,
        pub(super) output: usize,
    }

    pub(super) fn fixture(output: usize, fail_at: usize) -> Fixture {
        let ops = Arc::default();
        let reasons = Arc::default();
        let inner = Inner {
            buffers: LazyBuffers::new(64, output),
            ops: Arc::clone(&ops),
            writes: 0,
            fail_at,
            reasons: Arc::clone(&reasons),
        };
        Fixture {
            t: Coalescing::new(Box::new(inner)),
            ops,
            reasons,
            output,
        }
    }

    pub(super) fn timeout(reason: ureq::Timeout) -> NextTimeout {
        NextTimeout {
            after: Duration::Exact(std::time::Duration::from_secs(1)),
            reason,
            per_read: None,
            per_write: None,
        }
    }

    impl Fixture {
        /// As ureq does: the bytes at the start of the output buffer, then `transmit_output`.
        pub(super) fn transmit(
            &mut self,
            bytes: &[u8],
            reason: ureq::Timeout,
        ) -> Result<(), ureq::Error> {
            self.t.buffers().output()[..bytes.len()].copy_from_slice(bytes);
            self.t.transmit_output(bytes.len(), timeout(reason))
        }

        pub(super) fn ops(&self) -> Vec<Op> {
            self.ops.lock().expect("ops").clone()
        }

        /// Every byte written so far, in order.
        pub(super) fn written(&self) -> Vec<u8> {
            self.ops()
                .into_iter()
                .filter_map(|op| match op {
                    Op::Write(b) => Some(b),
                    Op::Await => None,
                })
                .flatten()
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{Op, fixture, timeout};
    use super::*;

    #[test]
    fn a_head_and_its_body_leave_in_one_write_before_the_answer_is_awaited() {
        let mut f = fixture(1024, usize::MAX);
        for _ in 0..2 {
            let before = f.ops().len();
            f.transmit(b"POST / HTTP/1.1\r\n\r\n", ureq::Timeout::SendRequest)
                .expect("head");
            assert_eq!(f.ops().len(), before, "the head is held");
            f.transmit(b"{\"body\":1}", ureq::Timeout::SendBody)
                .expect("body");
            f.t.await_input(timeout(ureq::Timeout::RecvResponse))
                .expect("await");
        }
        let one = Op::Write(b"POST / HTTP/1.1\r\n\r\n{\"body\":1}".to_vec());
        assert_eq!(f.ops(), [one.clone(), Op::Await, one, Op::Await]);
    }

    #[test]
    fn a_request_without_a_body_is_written_before_its_answer_is_awaited() {
        for maybe in [false, true] {
            let mut f = fixture(1024, usize::MAX);
            f.transmit(b"GET / HTTP/1.1\r\n\r\n", ureq::Timeout::SendRequest)
                .expect("head");
            assert!(f.ops().is_empty(), "held until the answer is awaited");
            let wait = timeout(ureq::Timeout::RecvResponse);
            if maybe {
                f.t.maybe_await_input(wait).expect("await");
            } else {
                f.t.await_input(wait).expect("await");
            }
            assert_eq!(
                f.ops(),
                [Op::Write(b"GET / HTTP/1.1\r\n\r\n".to_vec()), Op::Await]
            );
        }
    }

    #[test]
    fn a_body_longer_than_the_buffer_is_written_whole_and_in_order() {
        let body: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        let mut f = fixture(16, usize::MAX);
        f.transmit(b"HEAD-12345", ureq::Timeout::SendRequest)
            .expect("head");
        for chunk in body.chunks(16) {
            f.transmit(chunk, ureq::Timeout::SendBody).expect("body");
        }
        f.t.await_input(timeout(ureq::Timeout::RecvResponse))
            .expect("await");
        let ops = f.ops();
        assert_eq!(ops.last(), Some(&Op::Await));
        assert_eq!(f.written(), [b"HEAD-12345".as_slice(), &body].concat());
        assert!(
            ops.iter()
                .all(|op| !matches!(op, Op::Write(w) if w.len() > 16)),
            "{ops:?}"
        );
    }

    #[test]
    fn debug_shows_the_held_bytes_length_only() {
        let mut f = fixture(1024, usize::MAX);
        f.transmit(
            b"{\"RefreshToken\":\"canary-refresh-token-0123456789\"}",
            ureq::Timeout::SendBody,
        )
        .expect("held");
        let debug = format!("{:?}", f.t);
        assert!(!debug.contains("canary"), "{debug}");
        assert!(debug.contains("held_bytes: 50"), "{debug}");
        f.t.await_input(timeout(ureq::Timeout::RecvResponse))
            .expect("await");
        assert!(f.t.held.is_empty());
    }

    #[test]
    fn a_connection_keeps_a_few_kib_for_held_bytes_not_a_long_bodys_worth() {
        let mut f = fixture(64 * 1024, usize::MAX);
        f.transmit(&[b'h'; 300], ureq::Timeout::SendRequest)
            .expect("held");
        f.t.await_input(timeout(ureq::Timeout::RecvResponse))
            .expect("await");
        assert!(f.t.held.capacity() >= 300, "kept for the next request");
        f.transmit(&[b'h'; KEPT_CAPACITY + 1], ureq::Timeout::SendRequest)
            .expect("held");
        f.t.await_input(timeout(ureq::Timeout::RecvResponse))
            .expect("await");
        assert_eq!(f.t.held.capacity(), 0, "a long body's allocation is freed");
        // Also when the long bytes leave in one write with the next transmission.
        f.transmit(&[b'h'; KEPT_CAPACITY + 1], ureq::Timeout::SendBody)
            .expect("held");
        f.transmit(b"tail", ureq::Timeout::SendBody)
            .expect("combined");
        assert_eq!(f.t.held.capacity(), 0, "freed after the combined write");
    }

    #[test]
    fn a_held_head_that_cannot_be_written_fails_as_the_sending_it_is() {
        let mut f = fixture(1024, 0);
        f.transmit(b"GET / HTTP/1.1\r\n\r\n", ureq::Timeout::SendRequest)
            .expect("held");
        let err =
            f.t.await_input(timeout(ureq::Timeout::RecvResponse))
                .expect_err("the write fails");
        assert!(
            matches!(err, ureq::Error::Timeout(ureq::Timeout::SendRequest)),
            "{err:?}"
        );
        assert!(f.ops().is_empty(), "nothing awaited after a failed write");
    }
}

/// Review 29: the held transmission under every sequence of transmissions and waits ureq
/// could make, at every output buffer size, with writes that fail.
#[cfg(test)]
mod every_sequence_of_writes {
    use super::fixture::{Op, fixture, timeout};
    use super::*;

    /// A small deterministic generator (no dependency).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) as usize) % n.max(1)
        }
    }

    /// Promises 1, 2 and 6: under random sequences of transmissions (0 bytes to a full output
    /// buffer, output buffers of 1 to 70 bytes) and waits of both kinds, the bytes written are
    /// the bytes transmitted, in order, no write is longer than the output buffer, and at
    /// every wait everything transmitted before it has been written (nothing held).
    #[test]
    fn p1_p2_p6_random_transmissions_are_written_whole_in_order_and_nothing_held_at_a_wait() {
        let mut rng = Lcg(29);
        for round in 0..3_000 {
            let output = 1 + rng.below(70);
            let mut f = fixture(output, usize::MAX);
            let mut sent = Vec::new();
            let mut next = 0u8;
            for _ in 0..rng.below(12) {
                match rng.below(4) {
                    0 => {
                        let before = f.ops().len();
                        if rng.below(2) == 0 {
                            f.t.await_input(timeout(ureq::Timeout::RecvResponse))
                        } else {
                            f.t.maybe_await_input(timeout(ureq::Timeout::RecvResponse))
                        }
                        .expect("await");
                        let ops = f.ops();
                        assert_eq!(ops.last(), Some(&Op::Await), "round {round}");
                        assert!(
                            ops[before..ops.len() - 1]
                                .iter()
                                .all(|op| matches!(op, Op::Write(_)))
                        );
                        assert_eq!(f.written(), sent, "round {round}: held at a wait");
                        assert_eq!(f.t.held.len(), 0);
                    }
                    _ => {
                        let len = rng.below(output + 1);
                        let bytes: Vec<u8> = (0..len)
                            .map(|_| {
                                next = next.wrapping_add(1);
                                next
                            })
                            .collect();
                        sent.extend_from_slice(&bytes);
                        f.transmit(&bytes, ureq::Timeout::SendBody)
                            .expect("transmit");
                    }
                }
            }
            f.t.await_input(timeout(ureq::Timeout::RecvResponse))
                .expect("await");
            assert_eq!(f.written(), sent, "round {round} (output {output})");
            for op in f.ops() {
                if let Op::Write(b) = op {
                    assert!(b.len() <= f.output, "a write of {} > {output}", b.len());
                }
            }
        }
    }

    /// Promise 6: zero-length transmissions anywhere, with the smallest output buffers
    /// (ureq's `LazyBuffers` refuses one of 0 bytes).
    #[test]
    fn p6_zero_length_transmissions_and_a_one_byte_output_buffer_do_not_panic() {
        for output in [1usize, 8] {
            let mut f = fixture(output, usize::MAX);
            for _ in 0..3 {
                f.transmit(b"", ureq::Timeout::SendRequest).expect("empty");
                f.transmit(b"", ureq::Timeout::SendBody).expect("empty");
                f.transmit(b"", ureq::Timeout::SendBody).expect("empty");
                f.t.maybe_await_input(timeout(ureq::Timeout::RecvResponse))
                    .expect("await");
            }
            assert!(f.written().is_empty());
        }
    }

    /// A head and a body that together fill the output buffer exactly leave in one write; one
    /// byte more, in two writes, in order.
    #[test]
    fn p1_the_boundary_of_the_output_buffer_is_exact() {
        let mut f = fixture(32, usize::MAX);
        f.transmit(&[b'h'; 10], ureq::Timeout::SendRequest)
            .expect("head");
        f.transmit(&[b'b'; 22], ureq::Timeout::SendBody)
            .expect("body");
        assert_eq!(f.ops().len(), 1, "one write: {:?}", f.ops());
        f.t.await_input(timeout(ureq::Timeout::RecvResponse))
            .expect("await");
        let mut f = fixture(32, usize::MAX);
        f.transmit(&[b'h'; 10], ureq::Timeout::SendRequest)
            .expect("head");
        f.transmit(&[b'b'; 23], ureq::Timeout::SendBody)
            .expect("body");
        assert_eq!(
            f.ops(),
            [Op::Write(vec![b'h'; 10]), Op::Write(vec![b'b'; 23])]
        );
    }

    /// Promise 3: a write that fails loses nothing silently and repeats nothing: the held
    /// bytes are dropped with the failure (the connection is dead), and the next wait writes
    /// nothing stale; the failure carries the reason of the transmission that failed.
    #[test]
    fn p3_a_failed_write_leaves_nothing_held_and_writes_nothing_twice() {
        // The combined write fails.
        let mut f = fixture(64, 0);
        f.transmit(b"HEAD", ureq::Timeout::SendRequest)
            .expect("held");
        let e = f
            .transmit(b"BODY", ureq::Timeout::SendBody)
            .expect_err("fails");
        assert!(matches!(e, ureq::Error::Timeout(_)), "{e:?}");
        assert!(f.t.held.is_empty() && f.t.reason.is_none());
        // The held head's write fails in the too-long path: the current is not written.
        let mut f = fixture(8, 0);
        f.transmit(b"HEAD", ureq::Timeout::SendRequest)
            .expect("held");
        let e = f
            .transmit(b"BODYBODY", ureq::Timeout::SendBody)
            .expect_err("fails");
        assert!(
            matches!(e, ureq::Error::Timeout(ureq::Timeout::SendRequest)),
            "the head's reason: {e:?}"
        );
        assert!(f.t.held.is_empty() && f.t.reason.is_none());
        assert!(f.written().is_empty());
        // The second write of the too-long path fails: the head went, the body did not.
        let mut f = fixture(8, 1);
        f.transmit(b"HEAD", ureq::Timeout::SendRequest)
            .expect("held");
        let e = f
            .transmit(b"BODYBODY", ureq::Timeout::SendBody)
            .expect_err("fails");
        assert!(
            matches!(e, ureq::Error::Timeout(ureq::Timeout::SendBody)),
            "{e:?}"
        );
        assert_eq!(f.written(), b"HEAD");
        let reasons = f.reasons.lock().expect("reasons").clone();
        assert_eq!(
            reasons,
            [ureq::Timeout::SendRequest, ureq::Timeout::SendBody],
            "each write under its own transmission's reason"
        );
    }

    /// Promise 4: neither `Coalescing`'s `Debug` nor the held buffer shows the body once it is
    /// written, whichever path wrote it.
    #[test]
    fn p4_the_held_body_is_not_shown_and_is_emptied_on_every_path() {
        let token = b"{\"RefreshToken\":\"review29-canary-0123456789abcdef\"}";
        for output in [token.len(), token.len() + 4, 4 * token.len()] {
            let mut f = fixture(output, usize::MAX);
            // Held as the head (first transmission), then flushed by a wait.
            f.transmit(token, ureq::Timeout::SendBody).expect("held");
            let shown = format!("{:?}", f.t);
            assert!(!shown.contains("canary"), "{shown}");
            f.t.await_input(timeout(ureq::Timeout::RecvResponse))
                .expect("await");
            assert!(f.t.held.is_empty());
            // Combined, or written apart.
            f.transmit(b"HEAD", ureq::Timeout::SendRequest)
                .expect("held");
            f.transmit(token, ureq::Timeout::SendBody).expect("body");
            let shown = format!("{:?}", f.t);
            assert!(!shown.contains("canary"), "{shown}");
            assert!(!f.t.held.contains(&b'c') || f.t.held.len() <= 4);
            f.t.await_input(timeout(ureq::Timeout::RecvResponse))
                .expect("await");
            assert!(f.t.held.is_empty());
            assert!(f.written().windows(token.len()).any(|w| w == token));
        }
    }
}
