//! Integrations: what a route does with a request once every check has passed. HTTP_PROXY
//! forwarding lives in `upstream`; here are the parts that shape requests and answers:
//! [`mapping`] (parameter mapping), [`lambda`] (the API Gateway proxy event and its answer),
//! and [`mock`] (answers from the gateway).

pub(crate) mod lambda;
pub(crate) mod mapping;
mod mock;

use causeway_snapshot::Template;
use http::{HeaderMap, StatusCode};

use crate::upstream::HttpTarget;
use lambda::LiveLambda;
use mapping::LiveMapping;

/// A route's integration, pre-parsed.
pub(crate) enum LiveIntegration {
    HttpProxy(LiveHttpProxy),
    Mock(LiveMock),
    LambdaProxy(LiveLambda),
}

/// `HTTP_PROXY`, pre-parsed.
pub(crate) struct LiveHttpProxy {
    /// Where and how the request is sent.
    pub target: HttpTarget,
    /// Request and response parameter mapping.
    pub mapping: LiveMapping,
}

/// `MOCK`, pre-parsed.
pub(crate) struct LiveMock {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Template,
}
