//! `osbs-dispatcher --config PATH`: loads the configuration, starts tracing, runs the service
//! until SIGTERM/SIGINT.

use osbs_common::service::Binary;

const DISPATCHER: Binary = Binary {
    name: "osbs-dispatcher",
    about: "Turns dist-git pushes and build requests into build jobs.",
};

fn main() -> anyhow::Result<()> {
    Ok(osbs_common::service::main(
        DISPATCHER,
        osbs_dispatcher::run,
    )?)
}
