//! Generates the Rust records from `zookeeper.jute`.
//!
//! A build script rather than a proc macro: the IDL is a data file, not Rust syntax, the output
//! is plain Rust that can be read in `target/` (`records.rs`), and the parser (`src/idl.rs`) is
//! shared with the library, where it is unit-tested like any other module.

#[path = "src/codegen.rs"]
mod codegen;
#[path = "src/idl.rs"]
#[allow(dead_code)]
mod idl;

fn main() {
    let idl_path = "zookeeper.jute";
    println!("cargo:rerun-if-changed={idl_path}");
    println!("cargo:rerun-if-changed=src/idl.rs");
    println!("cargo:rerun-if-changed=src/codegen.rs");
    let text = std::fs::read_to_string(idl_path).expect("read zookeeper.jute");
    let modules = match idl::parse(&text) {
        Ok(modules) => modules,
        Err(e) => panic!("{idl_path}: {e}"),
    };
    let code = codegen::generate(&modules).unwrap_or_else(|e| panic!("{idl_path}: {e}"));
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("records.rs");
    std::fs::write(out, code).expect("write records.rs");
}
