//! `osbs-web --config PATH`: loads the configuration, starts tracing, serves the web view until
//! SIGTERM/SIGINT.

use osbs_common::service::Binary;

const WEB: Binary = Binary {
    name: "osbs-web",
    about: "A read-only web view of builds, queues and live logs.",
};

fn main() -> anyhow::Result<()> {
    Ok(osbs_common::service::main(WEB, |config, shutdown| {
        osbs_web::run(config, shutdown, None)
    })?)
}
