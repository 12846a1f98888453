//! One adapter per external system: the Docker Engine, HTTP (lookaside, yum repos, registry
//! API), dist-git, the Koji hub, and the worker's own Redis keys.

pub mod docker;
pub mod git;
pub mod http;
pub mod koji;
pub mod redis;
