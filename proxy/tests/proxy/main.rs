//! In-process proxy tests: real sockets on 127.0.0.1, real hyper clients, builder fixtures.

mod support;

mod admin;
mod auth;
mod backends;
mod blast_radius;
mod cache;
mod canary;
mod connections;
mod failures;
mod forwarding;
mod gateway;
mod hygiene;
mod impersonation;
mod lambda;
mod layers;
mod limits;
mod mapping;
mod mtls;
mod observability;
mod quotas;
mod routing;
mod swap;
mod templates;
mod throttling;
mod tls;
mod tracing_otlp;
mod upstream_paths;
mod upstream_pool;
mod validation;
mod websocket;
