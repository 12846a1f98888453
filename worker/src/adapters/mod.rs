//! One adapter per external system: the Docker Engine, HTTP (lookaside, yum repos, registry
//! API), dist-git, the Koji hub, the worker's own Redis keys, and the build context written
//! from the checkout.

pub mod context;
pub mod docker;
pub mod git;
pub mod http;
pub mod koji;
pub mod redis;
