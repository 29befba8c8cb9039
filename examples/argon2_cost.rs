//! The cost of one argon2id verification with Tessera's parameters, for reading beside
//! `scripts/browser_flow_timing.sh` (the sign-in step's share). A measurement, not a test:
//! `cargo run --release --example argon2_cost [rounds]`.

use std::time::Instant;

use tessera::crypto::secrets::{hash_password, verify_password};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let phc = hash_password("dana long password");
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            assert!(verify_password(&phc, "dana long password"));
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "argon2id verify, {rounds} rounds: median {:.1} ms, p90 {:.1} ms",
        times[rounds / 2],
        times[(rounds * 9 / 10).saturating_sub(1)]
    );
}
