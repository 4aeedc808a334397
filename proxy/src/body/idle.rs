//! Request-body guards of the pipeline (the limits hyper enforces itself are set in `server`):
//! the body idle timeout (408) and the request byte counter. The body size limit is
//! `http_body_util::Limited` around the same body, so a streamed body is cut off after at most
//! the limit plus one read buffer. (Named apart from `limits`, which is throttling.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use prometheus_client::metrics::counter::Counter;

use crate::body::BoxError;

/// The client paused longer than the body idle timeout between two pieces of its body.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body bytes for {0:?}")]
pub struct BodyIdleTimeout(pub Duration);

/// A request body that fails with [`BodyIdleTimeout`] when no frame arrives for `idle`.
/// The timer is only armed once the inner body is pending, so fast bodies never allocate it.
/// It also counts the bytes it passes on (`causeway_proxy_request_bytes`).
pub(crate) struct IdleTimeoutBody<B> {
    inner: B,
    idle: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
    received: Option<Counter>,
}

impl<B> IdleTimeoutBody<B> {
    pub fn new(inner: B, idle: Duration, received: Option<Counter>) -> Self {
        Self {
            inner,
            idle,
            sleep: None,
            armed: false,
            received,
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                if let (Some(counter), Some(Ok(f))) = (&this.received, &frame)
                    && let Some(data) = f.data_ref()
                {
                    counter.inc_by(data.len() as u64);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.idle;
                let sleep = match &mut this.sleep {
                    Some(sleep) => {
                        if !this.armed {
                            sleep.as_mut().reset(deadline);
                        }
                        sleep
                    }
                    None => this
                        .sleep
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                this.armed = true;
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdleTimeout(this.idle))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error` or one of its sources is of type `E`.
pub(crate) fn caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<E>() {
            return true;
        }
        current = e.source();
    }
    false
}
