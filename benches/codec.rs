//! Encode and decode cost of a batch, against a plain memcpy of the same bytes (the floor).
//! `codec/{encode,decode,memcpy}/{type}/{rows}`, throughput in bytes of the encoded batch.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use std::hint::black_box;

fn batch(t: DataType, rows: usize, with_nulls: bool) -> RecordBatch {
    let schema = Schema::new(vec![Field::new("c", t)]);
    let rows: Vec<Vec<Value>> = (0..rows)
        .map(|i| {
            if with_nulls && i % 10 == 0 {
                return vec![Value::Null];
            }
            vec![match t {
                DataType::Int64 => Value::Int64(i as i64 * 7919),
                DataType::Float64 => Value::Float64(i as f64 * 0.5),
                DataType::Utf8 => Value::Utf8(format!("value-{:08}", i)),
                DataType::Binary => Value::Binary(vec![i as u8; 16]),
                DataType::Bool => Value::Bool(i % 3 == 0),
            }]
        })
        .collect();
    RecordBatch::from_rows(schema, &rows).unwrap()
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    for t in [DataType::Int64, DataType::Float64, DataType::Utf8] {
        for rows in [1024usize, 65536] {
            let b = batch(t, rows, true);
            let bytes = ipc::codec::encode(&b).unwrap();
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            let id = format!("{t}/{rows}");
            let mut out = Vec::with_capacity(bytes.len());
            g.bench_with_input(BenchmarkId::new("encode", &id), &b, |bench, b| {
                bench.iter(|| {
                    out.clear();
                    ipc::codec::encode_into(black_box(b), &mut out).unwrap();
                })
            });
            g.bench_with_input(BenchmarkId::new("decode", &id), &bytes, |bench, bytes| {
                bench.iter(|| ipc::codec::decode::<RecordBatch>(black_box(bytes)).unwrap())
            });
            let mut dst = vec![0u8; bytes.len()];
            g.bench_with_input(BenchmarkId::new("memcpy", &id), &bytes, |bench, bytes| {
                bench.iter(|| dst.copy_from_slice(black_box(bytes)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
