//! Encode and decode cost of one column, against a plain memcpy of the same bytes (the floor):
//! `codec/{encode,decode,memcpy}/{type}/{nulls}/{rows}` for int64, float64, utf8 of 8 and 64 bytes,
//! binary of 16 bytes, decimal(18, 2), timestamp and list<int64> of 4 items, without nulls and with 10%
//! nulls, at 1, 64, 1024 and 65 536 rows. Throughput is
//! in rows and in bytes of the encoded column, so criterion reports both rows/s and MB/s.
//!
//! The Arrow boundary, per type at 1024 and 65 536 rows: `arrow/{from_arrow,to_arrow}/...` (an Arrow
//! batch into udfpool's columns, one copy; and back, moving the buffers), `arrow/request/...` (an Arrow
//! batch to the bytes of a PROCESS-mode request: `from_arrow` then encode) and `arrow/response/...`
//! (response bytes to an Arrow batch: decode then `to_arrow`), each against `arrow/memcpy/...` of the
//! encoded bytes.
//!
//! The copy every one of them is made of: `copy/{memcpy,ipc_copy}/{aligned,aliased,misaligned}/{bytes}`
//! at 4 KiB, 64 KiB and 512 KiB, the two buffers' distance a multiple of 4096 plus 0, 4 or 2052 bytes —
//! why `ipc::copy` exists (see its module docs).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use std::hint::black_box;
use std::time::Duration;

/// The columns measured: a name for the bench id and the type ([`value`] gives row `i`'s value).
fn kinds() -> Vec<(&'static str, DataType)> {
    vec![
        ("int64", DataType::Int64),
        ("float64", DataType::Float64),
        ("utf8_8", DataType::Utf8),
        ("utf8_64", DataType::Utf8),
        ("binary_16", DataType::Binary),
        ("decimal_18_2", DataType::Decimal { precision: 18, scale: 2 }),
        ("timestamp", DataType::Timestamp),
        ("list_int64_4", DataType::List(Box::new(DataType::Int64))),
    ]
}

fn value(kind: &str, i: usize) -> Value {
    match kind {
        "int64" => Value::Int64(i as i64 * 7919),
        "float64" => Value::Float64(i as f64 * 0.5),
        "utf8_8" => Value::Utf8(format!("v{:07}", i % 10_000_000)),
        "utf8_64" => Value::Utf8(format!("{:064}", i)),
        "decimal_18_2" => Value::Decimal(i as i128 * 12_345),
        "timestamp" => Value::Timestamp(1_700_000_000_000_000 + i as i64 * 1_000),
        "list_int64_4" => Value::List((0..4).map(|j| Value::Int64(i as i64 + j)).collect()),
        _ => Value::Binary(vec![i as u8; 16]),
    }
}

fn batch(kind: &str, t: DataType, rows: usize, with_nulls: bool) -> RecordBatch {
    let schema = Schema::new(vec![Field::new("c", t)]);
    let rows: Vec<Vec<Value>> =
        (0..rows).map(|i| if with_nulls && i % 10 == 0 { vec![Value::Null] } else { vec![value(kind, i)] }).collect();
    RecordBatch::from_rows(schema, &rows).unwrap()
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for (kind, t) in kinds() {
        for nulls in [false, true] {
            for rows in [1usize, 64, 1024, 65536] {
                let b = batch(kind, t.clone(), rows, nulls);
                let column = b.column(0);
                let bytes = ipc::codec::encode(column).unwrap();
                g.throughput(Throughput::ElementsAndBytes { elements: rows as u64, bytes: bytes.len() as u64 });
                let id = format!("{kind}/{}/{rows}", if nulls { "nulls10" } else { "nonull" });
                let mut out = Vec::with_capacity(bytes.len());
                g.bench_with_input(BenchmarkId::new("encode", &id), column, |bench, col| {
                    bench.iter(|| {
                        out.clear();
                        ipc::codec::encode_into(black_box(col), &mut out).unwrap();
                    })
                });
                g.bench_with_input(BenchmarkId::new("decode", &id), &bytes, |bench, bytes| {
                    bench.iter(|| ipc::codec::decode::<ipc::batch::Column>(black_box(bytes)).unwrap())
                });
                let mut dst = vec![0u8; bytes.len()];
                g.bench_with_input(BenchmarkId::new("memcpy", &id), &bytes, |bench, bytes| {
                    bench.iter(|| dst.copy_from_slice(black_box(bytes)))
                });
            }
        }
    }
    g.finish();
}

fn arrow(c: &mut Criterion) {
    let mut g = c.benchmark_group("arrow");
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for (kind, t) in kinds() {
        for nulls in [false, true] {
            for rows in [1024usize, 65536] {
                let b = batch(kind, t.clone(), rows, nulls);
                let arrow = ipc::arrow::to_arrow(b.clone()).unwrap();
                let bytes = ipc::codec::encode(&b).unwrap();
                g.throughput(Throughput::ElementsAndBytes { elements: rows as u64, bytes: bytes.len() as u64 });
                let id = format!("{kind}/{}/{rows}", if nulls { "nulls10" } else { "nonull" });
                g.bench_with_input(BenchmarkId::new("from_arrow", &id), &arrow, |bench, a| {
                    bench.iter(|| ipc::arrow::from_arrow(black_box(a)).unwrap())
                });
                g.bench_with_input(BenchmarkId::new("to_arrow", &id), &b, |bench, b| {
                    bench.iter_batched(
                        || b.clone(),
                        |b| ipc::arrow::to_arrow(black_box(b)).unwrap(),
                        criterion::BatchSize::LargeInput,
                    )
                });
                let mut out = Vec::with_capacity(bytes.len());
                g.bench_with_input(BenchmarkId::new("request", &id), &arrow, |bench, a| {
                    bench.iter(|| {
                        out.clear();
                        let b = ipc::arrow::from_arrow(black_box(a)).unwrap();
                        ipc::codec::encode_into(&b, &mut out).unwrap();
                    })
                });
                g.bench_with_input(BenchmarkId::new("response", &id), &bytes, |bench, bytes| {
                    bench.iter(|| {
                        ipc::arrow::to_arrow(ipc::codec::decode::<RecordBatch>(black_box(bytes)).unwrap()).unwrap()
                    })
                });
                let mut dst = vec![0u8; bytes.len()];
                g.bench_with_input(BenchmarkId::new("memcpy", &id), &bytes, |bench, bytes| {
                    bench.iter(|| dst.copy_from_slice(black_box(bytes)))
                });
            }
        }
    }
    g.finish();
}

fn copy(c: &mut Criterion) {
    let mut g = c.benchmark_group("copy");
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    for size in [4usize << 10, 64 << 10, 512 << 10] {
        // One buffer holds both ends, so that their distance is chosen: a multiple of 4096 plus 0
        // (aligned), plus 4 (misaligned, and 4 KiB-aliased: what a column behind a message's 12-byte
        // prefix in a page-aligned ring meets), or plus 2052 (misaligned, not aliased).
        let span = size.next_multiple_of(4096) + 4096;
        let mut buf: Vec<u8> = (0..2 * span).map(|i| i as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        for (name, distance) in [("aligned", span), ("aliased", span + 4), ("misaligned", span + 2052)] {
            let (src, rest) = buf.split_at_mut(distance);
            let (src, dst) = (&src[..size], &mut rest[..size]);
            g.bench_function(BenchmarkId::new(format!("memcpy/{name}"), size), |b| {
                b.iter(|| dst.copy_from_slice(black_box(&*src)))
            });
            g.bench_function(BenchmarkId::new(format!("ipc_copy/{name}"), size), |b| {
                b.iter(|| ipc::copy::copy(dst, black_box(&*src)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, codec, arrow, copy);
criterion_main!(benches);
