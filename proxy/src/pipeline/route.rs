//! Steps 6 and 7: which deployment of the stage serves the request, and which of its routes.

use std::sync::Arc;

use causeway_snapshot::Sticky;
use http::Request;
use http::header::{self, HeaderMap};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use super::{Exchange, Flow, respond};
use crate::error::RequestError;
use crate::tables::{LiveDeployment, LiveRoute, LiveStage};

/// Step 6. Chooses the canary deployment for `percent` of requests (by a hash of the sticky
/// header or cookie when set and present, else at random), or the main deployment.
pub(super) fn choose_deployment<'s>(
    stage: &'s LiveStage,
    headers: &HeaderMap,
    ex: &mut Exchange,
) -> &'s LiveDeployment {
    let chosen = match &stage.canary {
        None => &stage.main,
        Some(canary) => {
            let sticky_value = match &canary.sticky {
                Some(Sticky::Header(name)) => headers.get(name.as_str()).map(|v| v.as_bytes()),
                Some(Sticky::Cookie(name)) => cookie(headers, name),
                None => None,
            };
            let roll = match sticky_value {
                Some(value) => hash_percent(value),
                None => rand::random::<f64>() * 100.0,
            };
            if roll < canary.percent {
                ex.ctx.canary = true;
                &canary.deployment
            } else {
                &stage.main
            }
        }
    };
    ex.ctx.deployment_id = Some(chosen.id.clone());
    ex.ctx.stage_variables = Arc::clone(&chosen.variables);
    chosen
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v.as_bytes())
        })
}

/// A stable number in `[0, 100)` for a sticky value (the same on every replica).
fn hash_percent(value: &[u8]) -> f64 {
    let digest = Sha256::digest(value);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 10_000) as f64 / 100.0
}

/// Step 7. Matches the route in the deployment's table for the request method; an unknown
/// route is the Api's MISSING_AUTHENTICATION_TOKEN answer, never a backend call.
pub(super) fn match_route<'d>(
    stage: &LiveStage,
    deployment: &'d LiveDeployment,
    request: &Request<Incoming>,
    ex: &mut Exchange,
) -> Flow<&'d LiveRoute> {
    match deployment
        .routes
        .lookup(request.method().as_str(), &ex.ctx.stage_path)
    {
        Some(hit) => {
            ex.ctx.route_key = Some(hit.value.key.clone());
            ex.ctx.params = hit.params;
            ex.route_metrics = Some(Arc::clone(&hit.value.metrics));
            Flow::Continue(hit.value)
        }
        None => {
            let error = RequestError::NoRoute {
                method: request.method().to_string(),
                path: ex.ctx.stage_path.clone(),
            };
            Flow::Respond(respond::fail(Some(&stage.api), error, ex))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_values_always_land_in_the_same_bucket() {
        assert_eq!(hash_percent(b"user-1"), hash_percent(b"user-1"));
        assert!((0.0..100.0).contains(&hash_percent(b"user-2")));
    }
}
