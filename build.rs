//! RocksDB is linked statically from Debian's `librocksdb.a` (see `.cargo/config.toml` and the
//! README's "RocksDB"): the archive names none of the libraries it needs, so they are named here.
fn main() {
    println!("cargo:rerun-if-env-changed=ROCKSDB_STATIC");
    if std::env::var_os("ROCKSDB_STATIC").is_some() {
        for lib in ["snappy", "z", "bz2", "lz4", "zstd"] {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }
}
