//! Integrations: what a route does with a request once every check has passed. HTTP_PROXY
//! forwarding lives in `upstream`; here are the parts that shape requests and answers:
//! [`mapping`] (parameter mapping), [`lambda`] (the API Gateway proxy event and its answer, and
//! the non-proxy invocation of a mapped payload),
//! [`mock`] (answers from the gateway), and [`templates`] (REST API non-proxy mapping templates
//! and integration responses).

pub(crate) mod lambda;
pub(crate) mod mapping;
mod mock;
pub(crate) mod templates;

use causeway_snapshot::Template;
use http::{HeaderMap, StatusCode};

use crate::upstream::HttpTarget;
use lambda::{LiveLambda, LiveLambdaMapped};
use mapping::LiveMapping;
use templates::LiveTemplates;

/// A route's integration, pre-parsed.
pub(crate) enum LiveIntegration {
    HttpProxy(LiveHttpProxy),
    Mock(LiveMock),
    LambdaProxy(LiveLambda),
    Lambda(LiveLambdaMapped),
}

/// `HTTP_PROXY`, pre-parsed.
pub(crate) struct LiveHttpProxy {
    /// Where and how the request is sent.
    pub target: HttpTarget,
    /// Request and response parameter mapping.
    pub mapping: LiveMapping,
    /// `HTTP` (non-proxy): request templates and integration responses.
    pub templates: Option<LiveTemplates>,
}

/// `MOCK`, pre-parsed.
pub(crate) struct LiveMock {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Template,
    /// Request templates and integration responses; when set, they make the answer.
    pub templates: Option<LiveTemplates>,
}
