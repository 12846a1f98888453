//! `osbs-worker --config PATH`: loads the configuration, starts tracing, runs the worker
//! until SIGTERM/SIGINT (then drains).

use osbs_common::service::Binary;

const WORKER: Binary = Binary {
    name: "osbs-worker",
    about: "The OSBS build worker: consumes osbs.jobs, builds, squashes, inspects and pushes images.",
};

fn main() -> anyhow::Result<()> {
    Ok(osbs_common::service::main(WORKER, osbs_worker::run)?)
}
