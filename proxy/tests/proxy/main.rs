//! In-process proxy tests: real sockets on 127.0.0.1, real hyper clients, builder fixtures.

mod recorder;
mod support;

mod admin;
mod auth;
mod cache;
mod canary;
mod failures;
mod forwarding;
mod lambda;
mod mapping;
mod routing;
mod swap;
mod throttling;
mod validation;
