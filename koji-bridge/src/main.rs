//! `osbs-koji-bridge --config PATH`: imports finished builds into Koji (see the library)
//! until SIGTERM/SIGINT.

use osbs_common::service::Binary;

const BRIDGE: Binary = Binary {
    name: "osbs-koji-bridge",
    about: "Imports finished OSBS builds into Koji as a content generator.",
};

fn main() -> anyhow::Result<()> {
    Ok(osbs_common::service::main(BRIDGE, osbs_koji_bridge::run)?)
}
