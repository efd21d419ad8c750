//! Compiles the protos with protox (pure Rust: no `protoc` needed on the machine): the twin's v2 gRPC service,
//! and the 2023 state manager's messages (prost, with the protobuf JSON mapping by pbjson for Connect's JSON).
//! The 2021 proto is compiled by `hil`, which drives the onboard speed controllers with it.

use protox::prost::Message;

fn main() {
    let protos = ["proto/twin_v2.proto", "proto/state_v1.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let descriptors = protox::compile(protos, ["proto"]).expect("the protos compile");
    let encoded = descriptors.encode_to_vec();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)
        .expect("generate gRPC code");
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)
        .expect("the descriptors read back")
        .build(&[".state.v1"])
        .expect("generate the JSON mapping");
}
