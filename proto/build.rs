//! Compiles `osbs/v1/osbs.proto` with protox, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "osbs/v1/osbs.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
