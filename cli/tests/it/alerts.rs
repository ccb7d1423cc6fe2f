//! `timepost alerts check` and `timepost export period` as a user runs them
//! on the sandbox: the conditions with their links, the state recorded once
//! by `--send`, and the period's CSVs; `export --all` still works beside
//! `export period`.

use std::path::Path;
use std::process::Command;

use crate::common::{workdir, SANDBOX};

fn timepost(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run timepost: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn loaded() -> tempfile::TempDir {
    let dir = workdir();
    let d = dir.path();
    for f in ["mappings.csv", "entries.csv"] {
        std::fs::copy(format!("{SANDBOX}/{f}"), d.join(f)).unwrap_or_else(|e| panic!("{e}"));
    }
    let (code, _, err) = timepost(d, &["mappings", "import", "mappings.csv", "--reason", "t"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = timepost(d, &["ingest", "--source", "csv", "entries.csv"]);
    assert_eq!(code, 0, "{err}");
    dir
}

#[test]
fn alerts_check_lists_the_conditions_and_send_records_them_once() {
    let dir = loaded();
    let d = dir.path();
    let (code, out, err) = timepost(d, &["alerts", "check", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let keys: Vec<&str> = v["conditions"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["key"].as_str()).collect())
        .unwrap_or_default();
    // The sandbox parks two messages and holds Internal R&D's time.
    assert!(keys.contains(&"dead_letters"), "{keys:?}");
    assert!(keys.contains(&"unmapped_work:p-rnd"), "{keys:?}");
    let (code, text, _) = timepost(d, &["alerts", "check"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("Internal R&D wait for a mapping")
            && text.contains("http://127.0.0.1:8787/console/mappings"),
        "{text}"
    );
    // Without a notifier the state is recorded and nothing is sent.
    let (code, out, err) = timepost(d, &["alerts", "check", "--send", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no notifier configured"), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(r["fired"].as_array().map(Vec::len), Some(keys.len()));
    assert_eq!(r["notices"], 0);
    let (_, out, _) = timepost(d, &["alerts", "check", "--send", "--json"]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(r["fired"].as_array().map(Vec::len), Some(0), "{r}");
}

#[test]
fn export_period_writes_the_finance_csvs_and_export_all_still_works() {
    let dir = loaded();
    let d = dir.path();
    let (code, out, err) = timepost(
        d,
        &[
            "export",
            "period",
            "--period",
            "2026-03-01..2026-03-31",
            "--out",
            "out",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("exported 2026-03-01..2026-03-31"), "{out}");
    let folder = d.join("out/2026-03-01_2026-03-31");
    let exceptions = std::fs::read_to_string(folder.join("exceptions.csv")).unwrap_or_default();
    assert!(exceptions.contains("\"UNMAPPED_PROJECT\""), "{exceptions}");
    let projects = std::fs::read_to_string(folder.join("hours_by_project.csv")).unwrap_or_default();
    assert!(projects.contains("\"Globex ERP rollout\","), "{projects}");
    assert!(folder.join("manifest.json").exists());
    let (code, _, err) = timepost(d, &["export", "period", "--period", "someday"]);
    assert_eq!(code, 2, "a bad period is bad input: {err}");
    let (code, _, err) = timepost(d, &["export", "--all", "bundle"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = timepost(d, &["export"]);
    assert_eq!(code, 2, "nothing named: bad usage");
}

/// Read one HTTP request from `listener` and answer 200; the body.
fn one_post(listener: &std::net::TcpListener) -> Option<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let (mut sock, _) = listener.accept().ok()?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    let mut r = BufReader::new(sock.try_clone().ok()?);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .ok()?;
    String::from_utf8(body).ok()
}

#[test]
fn serve_runs_the_alert_pass_and_the_export_on_their_schedules() {
    let dir = loaded();
    let d = dir.path();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let hook = format!(
        "http://{}/hook",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let cfg = std::fs::read_to_string(d.join("timepost.toml")).unwrap_or_default()
        + &format!(
            "\n[alerts]\nwebhook_url = \"{hook}\"\nevery_secs = 1\n\n[exports]\ndir = \"finance\"\nevery_secs = 1\n"
        );
    std::fs::write(d.join("timepost.toml"), cfg).unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Some(body) = one_post(&listener) {
            if tx.send(body).is_err() {
                return;
            }
        }
    });
    let srv = crate::common::Server::start(d);
    // The sandbox's three conditions arrive, one notice each, and the
    // export's notice.
    let mut texts = Vec::new();
    for _ in 0..4 {
        let body = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("no notice: {e} (got {texts:?})"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
        texts.push(v["text"].as_str().unwrap_or_default().to_string());
    }
    let count = |needle: &str| texts.iter().filter(|t| t.contains(needle)).count();
    assert_eq!(count("dead-letter queue"), 1, "{texts:?}");
    assert_eq!(count("wait for a mapping"), 2, "{texts:?}");
    assert_eq!(count("timepost export"), 1, "{texts:?}");
    // The export of last month, once it is written (bounded wait).
    let month = {
        use chrono::Datelike;
        let today = chrono::Utc::now().date_naive();
        let first = today.with_day(1).unwrap_or(today);
        let last = first - chrono::Duration::days(1);
        format!("{}_{last}", last.with_day(1).unwrap_or(last))
    };
    let manifest = d.join("finance").join(&month).join("manifest.json");
    for _ in 0..200 {
        if manifest.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(manifest.exists(), "{} missing", manifest.display());
    let (status, _) = srv.stop();
    assert!(status.success());
}
