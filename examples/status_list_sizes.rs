//! Token Status List sizes and build times (docs/benchmarks.md, next to the draft's Appendix B):
//! for 1 M and 10 M entries at 0.1 % and 1 % revoked (uniformly random indices, a fixed seed),
//! the time to compute the bits from the builder's inputs (`list_bits`, as the builder does) and
//! to encode them (zlib level 9, base64url), and the size of the compressed list and of `lst`.
//!
//! ```sh
//! cargo run --release --example status_list_sizes
//! ```

use std::time::Instant;

use rand::{Rng, SeedableRng};
use tessera::domain::status_bits::StatusBits;
use tessera::domain::status_lists::list_bits;
use tessera::store::status_lists::{StatusInputs, StatusListInfo};

fn main() {
    println!("| entries | revoked | build (bits) | encode | compressed | `lst` (base64url) |");
    println!("|---|---|---|---|---|---|");
    for size in [1_000_000i64, 10_000_000] {
        for rate in [0.001f64, 0.01] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(14);
            let revoked = (size as f64 * rate) as usize;
            let inputs = StatusInputs {
                marks: (0..revoked).map(|_| rng.random_range(0..size)).collect(),
                ..StatusInputs::default()
            };
            let list = StatusListInfo {
                list_id: 1,
                kid: "k".into(),
                size,
                built_version: 0,
                built_at: None,
                key_state: Some("active".into()),
                key_ended_at: None,
            };
            let runs = 5;
            let (mut build, mut encode) = (f64::MAX, f64::MAX);
            let mut lst = String::new();
            for _ in 0..runs {
                let started = Instant::now();
                let bits = list_bits(&list, &inputs);
                build = build.min(started.elapsed().as_secs_f64());
                let started = Instant::now();
                lst = bits.encode();
                encode = encode.min(started.elapsed().as_secs_f64());
            }
            let decoded = StatusBits::decode(&lst, size as usize / 8 + 1).expect("decodes");
            assert!(decoded.count() as usize <= revoked);
            let compressed = lst.len() * 3 / 4;
            println!(
                "| {} M | {} % | {:.2} ms | {:.1} ms | {} | {} |",
                size / 1_000_000,
                rate * 100.0,
                build * 1e3,
                encode * 1e3,
                human(compressed),
                human(lst.len()),
            );
        }
    }
}

fn human(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}
