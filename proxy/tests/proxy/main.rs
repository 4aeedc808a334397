//! In-process proxy tests: real sockets on 127.0.0.1, real hyper clients, builder fixtures.

mod support;

mod admin;
mod auth;
mod canary;
mod failures;
mod forwarding;
mod quotas;
mod routing;
mod swap;
mod throttling;
