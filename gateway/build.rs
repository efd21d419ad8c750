//! Compiles the v2 gRPC proto with protox (pure Rust: no `protoc` needed on the machine); the 2021 one is
//! compiled by `hil`, which drives the onboard speed controllers with it.

fn main() {
    let protos = ["proto/twin_v2.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let descriptors = protox::compile(protos, ["proto"]).expect("the protos compile");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)
        .expect("generate gRPC code");
}
