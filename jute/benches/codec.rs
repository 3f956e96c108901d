//! Encode and decode throughput of typical client messages (bodies without the frame prefix or
//! the request/reply header):
//!
//! * `get_data_request`: a GetDataRequest for a 25-byte path with a watch;
//! * `get_data_response`: a GetDataResponse with 100 bytes of data and a Stat;
//! * `create_request`: a CreateRequest for a 25-byte path with 100 bytes of data and the
//!   OPEN_ACL_UNSAFE ACL (world:anyone, all permissions);
//! * `get_children2_response`: a GetChildren2Response with 1,000 children named like
//!   `child-0000000123` (sequential nodes) and a Stat.
//!
//! Encoding writes into a reused buffer (as a connection's write buffer is reused); decoding
//! builds owned values from a byte slice. Run with
//! `cargo bench -p jute --bench codec [-- --warm-up-time 1 --measurement-time 3]`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use jute::data::{Acl, Id, Stat};
use jute::proto::{CreateRequest, GetChildren2Response, GetDataRequest, GetDataResponse};
use jute::{perms, Decode, Encode};
use std::fmt::Debug;
use std::hint::black_box;

const PATH: &str = "/app/config/service-00042";

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0002,
        mzxid: 0x1_0000_0007,
        ctime: 1_795_672_832_639,
        mtime: 1_795_672_838_887,
        version: 3,
        cversion: 1000,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 100,
        num_children: 1000,
        pzxid: 0x1_0000_03f0,
    }
}

fn data() -> Vec<u8> {
    (0..100u8).map(|i| b'a' + i % 26).collect()
}

/// One benchmark group per message: `encode` and `decode`, with the encoded size as throughput.
fn bench_message<T>(c: &mut Criterion, name: &str, value: &T)
where
    T: Encode + Decode + PartialEq + Debug,
{
    let bytes = value.to_bytes();
    assert_eq!(&T::from_bytes(&bytes).expect("decodes"), value);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut buf = Vec::with_capacity(bytes.len());
    group.bench_with_input(BenchmarkId::new("encode", bytes.len()), value, |b, v| {
        b.iter(|| {
            buf.clear();
            black_box(v).encode(&mut buf);
            black_box(buf.len())
        })
    });
    group.bench_with_input(
        BenchmarkId::new("decode", bytes.len()),
        &bytes,
        |b, bytes| b.iter(|| T::from_bytes(black_box(bytes)).expect("decodes")),
    );
    group.finish();
}

fn codec(c: &mut Criterion) {
    bench_message(
        c,
        "get_data_request",
        &GetDataRequest {
            path: PATH.to_string(),
            watch: true,
        },
    );
    bench_message(
        c,
        "get_data_response",
        &GetDataResponse {
            data: Some(data()),
            stat: stat(),
        },
    );
    bench_message(
        c,
        "create_request",
        &CreateRequest {
            path: PATH.to_string(),
            data: Some(data()),
            acl: Some(vec![Acl {
                perms: perms::ALL,
                id: Id {
                    scheme: "world".to_string(),
                    id: "anyone".to_string(),
                },
            }]),
            flags: 0,
        },
    );
    bench_message(
        c,
        "get_children2_response",
        &GetChildren2Response {
            children: Some((0..1000).map(|i| format!("child-{i:010}")).collect()),
            stat: stat(),
        },
    );
}

criterion_group!(benches, codec);
criterion_main!(benches);
