//! Body types: one boxed body for every response, and a wrapper that observes the end of a
//! response body (bytes sent, completion) so that metrics and the access log are written when
//! the exchange is really over, also for streamed bodies.

mod idle;

pub use idle::BodyIdleTimeout;
pub(crate) use idle::{IdleTimeoutBody, caused_by};

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// Errors inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the proxy sends, and of every upstream request.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Called once with the number of body bytes sent and whether the body ended normally.
pub(crate) type OnDone = Box<dyn FnOnce(u64, bool) + Send>;

/// A body that reports, once, how it ended (end of stream, error, or dropped early).
pub(crate) struct ObservedBody {
    inner: ProxyBody,
    bytes: u64,
    on_done: Option<OnDone>,
}

impl ObservedBody {
    pub fn new(inner: ProxyBody, on_done: OnDone) -> Self {
        Self {
            inner,
            bytes: 0,
            on_done: Some(on_done),
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(done) = self.on_done.take() {
            done(self.bytes, complete);
        }
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Ready(None) => self.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
