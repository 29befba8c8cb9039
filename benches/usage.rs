//! Recording a client's use on the /token hot path: one authentication and one token with two
//! scopes, for a client already seen since the last flush (no allocation), one thread and
//! two threads on different clients. Target: about 1% of minting one ES256 token or less (no
//! database write, no allocation, one short lock per call).
//!
//! Run: `cargo bench --bench usage`

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera::domain::usage::UsageRecorder;
use time::OffsetDateTime;

fn record(c: &mut Criterion) {
    let recorder = Arc::new(UsageRecorder::default());
    let at = OffsetDateTime::UNIX_EPOCH;
    recorder.used("billing", at);
    recorder.issued("billing", "read write", at);
    c.bench_function("usage/one_token", |b| {
        b.iter(|| {
            recorder.used(std::hint::black_box("billing"), at);
            recorder.issued(std::hint::black_box("billing"), "read write", at);
        })
    });
    // A second thread recording for other clients meanwhile: the shards keep them apart.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (recorder, stop) = (Arc::clone(&recorder), Arc::clone(&stop));
        std::thread::spawn(move || {
            let ids: Vec<String> = (0..64).map(|i| format!("client-{i}")).collect();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for id in &ids {
                    recorder.used(id, at);
                    recorder.issued(id, "read write", at);
                }
            }
        })
    };
    c.bench_function("usage/one_token_contended", |b| {
        b.iter(|| {
            recorder.used(std::hint::black_box("billing"), at);
            recorder.issued(std::hint::black_box("billing"), "read write", at);
        })
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    other.join().unwrap();
}

criterion_group!(benches, record);
criterion_main!(benches);
