//! `timepost serve` as a process: a stop signal (SIGTERM as from systemd or
//! a container runtime, SIGINT from Ctrl-C) finishes the message in hand and
//! leaves the rest queued, within a bound; slow and idle clients are dropped
//! while health checks and webhooks keep being answered.
//!
//! Waits here are liveness bounds (fail rather than hang), never figures.

use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::serve_kit::{
    books, queued, read_answer, set_key, toggl_request, toggl_workdir, try_send, wait_queue_empty,
    Delivery, USERS,
};
use common::Server;

/// Generous bound for anything that should take a moment.
const LIVENESS: Duration = Duration::from_secs(60);

/// `n` distinct one-hour entries (no overtime: at most 8 a day, 5 days a
/// week per worker) as one saved Toggl replay file, enqueued without
/// processing (`ingest --no-process`), so the queue is full when the
/// server starts.
fn enqueue(dir: &std::path::Path, n: u64) {
    let mut events = Vec::new();
    for i in 0..n {
        let k = i / 4;
        let week = (k / 40) as i64;
        let day = ((k % 40) / 8) as i64;
        let slot = (k % 8) as i64;
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 15, 0, 0).unwrap()
            + chrono::Duration::days(week * 7 + day)
            + chrono::Duration::hours(slot);
        let d = Delivery {
            action: "created",
            id: 50_000 + i,
            user: USERS[(i % 4) as usize].0,
            project: 9001,
            start,
            minutes: 60,
            at: start + chrono::Duration::hours(2),
            event_id: 50_000 + i,
        };
        events.push(serde_json::from_slice::<serde_json::Value>(&d.body()).unwrap());
    }
    let f = dir.join("replay.json");
    std::fs::write(&f, serde_json::to_vec(&events).unwrap()).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args([
            "ingest",
            "--source",
            "toggl",
            f.to_str().unwrap(),
            "--no-process",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(queued(dir).0, n as i64);
}

/// Stop by `sig` right after start with the queue full: exit 0, most of
/// the queue still there, nothing left hidden.
fn stop_with_queue_full(sig: &str, n: u64) -> tempfile::TempDir {
    let d = toggl_workdir(|c| c);
    enqueue(d.path(), n);
    let srv = Server::start(d.path());
    srv.signal(sig);
    let (st, rest) = srv.wait_exit(LIVENESS);
    assert!(st.success(), "exit status {st:?}: {rest:?}");
    assert_eq!(st.code(), Some(0));
    assert!(
        rest.iter().any(|l| l.starts_with("timepost stopped")),
        "{rest:?}"
    );
    let (left, hidden) = queued(d.path());
    eprintln!("SIG{sig} with {n} queued: {left} left in the queue after the stop");
    assert!(
        left > 0,
        "the stop drained the whole queue ({n} messages) instead of finishing the message in hand"
    );
    // The unstarted rest of the batch was handed back, not left invisible
    // until its visibility timeout.
    assert_eq!(hidden, 0, "{hidden} of {left} queued messages left hidden");
    d
}

#[test]
fn sigterm_finishes_the_message_in_hand_and_a_restart_processes_the_rest() {
    let n = 2000;
    let d = stop_with_queue_full("TERM", n);
    let (left, _) = queued(d.path());
    let done_before = books(d.path()).status.len() as i64;
    assert!(
        done_before + left >= n as i64,
        "messages lost: {done_before} entries stored, {left} queued, {n} sent"
    );

    // A restart on the same store processes what was left.
    let srv = Server::start(d.path());
    wait_queue_empty(&srv.addr, Duration::from_secs(180));
    srv.signal("TERM");
    let (st, rest) = srv.wait_exit(LIVENESS);
    assert_eq!(st.code(), Some(0), "{rest:?}");
    let b = books(d.path());
    assert_eq!(b.status.len() as u64, n, "every entry stored");
    assert!(b.dead_letters.is_empty(), "{:?}", b.dead_letters);
    assert!(
        b.status.values().all(|s| s == "posted"),
        "{:?}",
        b.status
            .values()
            .filter(|s| *s != "posted")
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(b.records.len() as u64, n, "one record per entry");
}

#[test]
fn sigint_stops_the_same_way() {
    stop_with_queue_full("INT", 2000);
}

#[test]
fn a_stop_that_cannot_finish_exits_zero_after_the_grace_period() {
    // A client is still sending a body (its own timeout is far away), so
    // the graceful HTTP stop cannot finish: the grace period bounds it.
    let d = toggl_workdir(|c| {
        let c = set_key(&c, "server", "body_read_timeout_secs", "600");
        set_key(&c, "server", "shutdown_grace_secs", "2")
    });
    let srv = Server::start(d.path());
    let mut slow = TcpStream::connect(&srv.addr).unwrap();
    slow.write_all(
        b"POST /webhooks/toggl HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"event_id\":",
    )
    .unwrap();
    // The server is reading that body once it answers another request.
    assert_eq!(
        try_send(
            &srv.addr,
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            LIVENESS
        )
        .unwrap()
        .0,
        200
    );
    srv.signal("TERM");
    // 600 s of body timeout vs. a 2 s grace: exiting within the liveness
    // bound means the grace period ended it.
    let (st, rest) = srv.wait_exit(LIVENESS);
    assert_eq!(st.code(), Some(0), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("stopped") && l.contains("stays queued")),
        "{rest:?}"
    );
    drop(slow);
}

/// Open a connection and send `prefix` of a request, then hold it.
fn half_open(addr: &str, prefix: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    if !prefix.is_empty() {
        s.write_all(prefix).unwrap();
    }
    s
}

/// Has the server closed `s`? Waits up to `limit` for the end of the
/// stream (after any answer such as a 408) or a reset.
fn closed_by_server(s: &mut TcpStream, limit: Duration) -> Result<(), String> {
    s.set_read_timeout(Some(limit)).unwrap();
    match read_answer(s) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("still open: {e}")),
    }
}

#[test]
fn slow_and_idle_clients_are_dropped_while_webhooks_keep_flowing() {
    let max_connections = 100;
    let d = toggl_workdir(|c| {
        let c = set_key(
            &c,
            "server",
            "max_connections",
            &max_connections.to_string(),
        );
        let c = set_key(&c, "server", "header_read_timeout_secs", "2");
        let c = set_key(&c, "server", "body_read_timeout_secs", "2");
        set_key(&c, "server", "idle_timeout_secs", "2")
    });
    let srv = Server::start(d.path());

    // Three hundred half-open connections, three times the connection
    // limit: headers cut short, a body cut short, nothing sent at all.
    let mut slow = Vec::new();
    for i in 0..300 {
        let prefix: &[u8] = match i % 6 {
            0..=3 => b"POST /webhooks/toggl HTTP/1.1\r\nHost: t\r\nContent-Le",
            4 => b"POST /webhooks/toggl HTTP/1.1\r\nHost: t\r\nContent-Length: 500\r\n\r\n{\"a\":",
            _ => b"",
        };
        slow.push(half_open(&srv.addr, prefix));
    }
    // However many wait, the server holds no more than its limit (plus
    // its own files and the listener).
    #[cfg(target_os = "linux")]
    {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", srv.pid()))
            .unwrap()
            .count();
        assert!(
            fds <= max_connections + 40,
            "{fds} descriptors open with a limit of {max_connections} connections"
        );
    }

    // Health and a signed webhook are answered.
    let health = try_send(
        &srv.addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        LIVENESS,
    )
    .expect("healthz answered");
    assert_eq!(health.0, 200, "{health:?}");
    let d1 = Delivery {
        action: "created",
        id: 77,
        user: USERS[0].0,
        project: 9001,
        start: Utc.with_ymd_and_hms(2026, 3, 3, 17, 0, 0).unwrap(),
        minutes: 60,
        at: Utc.with_ymd_and_hms(2026, 3, 3, 18, 0, 5).unwrap(),
        event_id: 77,
    };
    let (st, body) =
        try_send(&srv.addr, &toggl_request(&d1.body()), LIVENESS).expect("webhook answered");
    assert_eq!(st, 202, "{body}");

    // Every slow connection is closed by the server.
    for (i, s) in slow.iter_mut().enumerate() {
        if let Err(e) = closed_by_server(s, LIVENESS) {
            panic!("slow connection {i} (kind {}): {e}", i % 6);
        }
    }

    // A kept-alive connection that goes quiet after its request is closed.
    let mut idle = TcpStream::connect(&srv.addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    closed_by_server(&mut idle, LIVENESS).expect("idle keep-alive connection closed");

    // And the server still answers, and processed the webhook.
    wait_queue_empty(&srv.addr, LIVENESS);
    assert_eq!(
        books(d.path())
            .status
            .get("toggl:555:77")
            .map(String::as_str),
        Some("posted")
    );
    srv.signal("TERM");
    let (st, rest) = srv.wait_exit(LIVENESS);
    assert_eq!(st.code(), Some(0), "{rest:?}");
}
