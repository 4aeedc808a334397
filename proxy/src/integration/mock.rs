//! MOCK: the gateway answers with the route's status, headers and body template.

use http::Response;

use super::LiveMock;
use crate::body::{ProxyBody, full};

impl LiveMock {
    /// The answer, with `{name}` in the body replaced by the route's path parameters.
    pub(crate) fn respond(&self, params: &[(String, String)]) -> Response<ProxyBody> {
        let body = self.body.render(|name| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        });
        let mut response = Response::new(full(body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}
