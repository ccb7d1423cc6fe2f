//! Load generator for the webhook route of a running `timepost serve`:
//! sends signed Toggl deliveries from `--concurrency` connections and
//! prints requests per second and latency percentiles. Bounded in count;
//! loopback only. See `scripts/load-webhooks.sh`.
//!
//! Usage: webhook-load --addr 127.0.0.1:8787 --secret S [--requests 20000] [--concurrency 32]

use std::time::{Duration, Instant};

use timepost::sources::signature::sign_toggl;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn body(i: u64) -> Vec<u8> {
    let at = "2026-03-03T18:00:05Z";
    serde_json::to_vec(&serde_json::json!({
        "event_id": i, "created_at": at, "creator_id": 7, "subscription_id": 42, "timestamp": at,
        "metadata": {"action": "created", "model": "time_entry", "event_user_id": "101", "workspace_id": "555",
                     "time_entry_id": i.to_string(), "path": "/time_entries", "request_type": "POST"},
        "payload": {"id": i, "workspace_id": 555, "user_id": 101 + i % 2000, "project_id": 9001, "task_id": null,
                    "billable": false, "start": "2026-03-03T17:00:00Z", "stop": "2026-03-03T18:00:00Z",
                    "duration": 3600, "description": "load", "tags": [], "tag_ids": [], "at": at,
                    "server_deleted_at": null, "duronly": false}
    }))
    .expect("json")
}

#[tokio::main]
async fn main() {
    let addr = arg("--addr", "127.0.0.1:8787");
    let secret = arg("--secret", "load-secret");
    let total: u64 = arg("--requests", "20000").parse().expect("--requests");
    let conc: u64 = arg("--concurrency", "32").parse().expect("--concurrency");
    let url = format!("http://{addr}/webhooks/toggl");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conc as usize)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    // Pre-build the signed bodies so the generator measures the server.
    let bodies: Vec<(Vec<u8>, String)> = (0..total)
        .map(|i| {
            let b = body(1_000_000 + i);
            let s = sign_toggl(&b, secret.as_bytes());
            (b, s)
        })
        .collect();
    let bodies = std::sync::Arc::new(bodies);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, url, bodies, next) =
            (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= bodies.len() as u64 {
                    return (lat, errors);
                }
                let (b, sig) = &bodies[i as usize];
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("X-Webhook-Signature-256", sig)
                    .body(b.clone())
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().as_u16() == 202 => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("task");
        lat.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "webhook load: {} requests, {} connections, {} errors",
        total, conc, errors
    );
    println!(
        "  throughput: {:.0} req/s over {:.2} s",
        lat.len() as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency: p50 {:.2} ms · p90 {:.2} ms · p99 {:.2} ms · max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.90).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
