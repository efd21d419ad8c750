//! Compiles the 2021 gRPC proto with protox (pure Rust: no `protoc` needed on the machine).

fn main() {
    let proto = "proto/plarail2021.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"]).expect("the proto compiles");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)
        .expect("generate gRPC code");
}
