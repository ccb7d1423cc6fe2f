//! The Archives page and `/api/archives` on a real `timepost serve`: the
//! roles that see it, a snapshot `timepost archive run` wrote listed with
//! its counts and hashes, the audited Verify action, downloads whose
//! SHA-256 is the manifest's, a tampered file named by Verify, and strange
//! periods, revisions and file names answered without a panic.

use crate::common;

use common::console_kit::*;
use common::Server;
use std::io::{Read, Write};

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn sha(b: &[u8]) -> String {
    timepost::archive::format::sha256_hex(b)
}

/// GET as `role`: the status and the raw bytes of the body.
fn get_bytes(srv: &Server, role: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(&srv.addr).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: {}\r\n\r\n",
        bearer(role)
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, buf[end + 4..].to_vec())
}

#[test]
fn archives_listed_verified_downloaded_and_tampering_named() {
    let d = prepare(&[], &[], "project,9001,C-ACME,\nemployee,101,E-100,\n");
    let srv = Server::start(d.path());

    // Nothing archived yet; only those who read the books see the page.
    let (st, page) = get(&srv, "auditor", "/console/archives");
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("No snapshot yet"), "{page}");
    assert!(page.contains("href=\"/console/archives\""), "nav: {page}");
    assert_eq!(
        get_json(&srv, "finance", "/api/archives"),
        serde_json::json!([])
    );
    for role in ["viewer", "manager"] {
        let (st, body) = get(&srv, role, "/console/archives");
        assert_eq!(st, 403, "{body}");
        assert_eq!(get(&srv, role, "/api/archives").0, 403);
        assert_eq!(get(&srv, role, "/console/archives.csv").0, 403);
        assert_eq!(
            get(&srv, role, "/console/archives/2026-03/1/manifest.json").0,
            403
        );
        let (st, _) = post_form(&srv, &bearer(role), "/console/archives/verify", &[]);
        assert_eq!(st, 403);
        let (_, p) = get(&srv, role, "/console");
        assert!(!p.contains("href=\"/console/archives\""), "{p}");
    }

    // One posted entry in March, archived by the CLI.
    let key = Toggl::new(71).send(&srv);
    wait_status(&srv, &key, "posted");
    let out = cli(d.path(), &["archive", "run"]);
    assert!(out.contains("2026-03: revision 1 written"), "{out}");

    let list = get_json(&srv, "auditor", "/api/archives");
    let row = &list[0];
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(row["period"], "2026-03");
    assert_eq!(row["revision"], 1);
    assert_eq!(row["counts"]["entries"], 1);
    assert_eq!(row["storage_class"], serde_json::Value::Null);
    assert_eq!(row["temperature"], "hot");
    assert_eq!(row["last_verify"], serde_json::Value::Null);
    let manifest_sha = row["manifest_sha256"].as_str().unwrap().to_string();
    assert_eq!(manifest_sha.len(), 64);
    let entries_csv_sha = row["files"]["entries.csv"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();

    let (_, page) = get(&srv, "auditor", "/console/archives");
    assert!(
        page.contains("data-period=\"2026-03\" data-revision=\"1\""),
        "{page}"
    );
    assert!(page.contains("not verified yet"), "{page}");
    assert!(page.contains(&manifest_sha), "{page}");
    assert!(page.contains("local directory"), "{page}");
    assert!(
        page.contains("href=\"/console/archives/2026-03/1/entries.csv\""),
        "{page}"
    );
    assert!(
        page.contains("action=\"/console/archives/verify\""),
        "{page}"
    );

    // Downloads are the stored bytes: the manifest's hashes hold.
    let (st, manifest) = get_bytes(&srv, "auditor", "/console/archives/2026-03/1/manifest.json");
    assert_eq!(st, 200);
    assert_eq!(sha(&manifest), manifest_sha);
    let (st, csv) = get_bytes(&srv, "finance", "/console/archives/2026-03/1/entries.csv");
    assert_eq!(st, 200);
    assert_eq!(sha(&csv), entries_csv_sha);
    assert!(String::from_utf8_lossy(&csv).contains(&key));
    let (st, gz) = get_bytes(
        &srv,
        "admin",
        "/console/archives/2026-03/1/entries.jsonl.gz",
    );
    assert_eq!(st, 200);
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip");
    let (st, list_csv) = get(&srv, "auditor", "/console/archives.csv");
    assert_eq!(st, 200);
    assert_eq!(list_csv.lines().count(), 2, "{list_csv}");
    assert!(list_csv.contains(&manifest_sha), "{list_csv}");

    // Verify from the page, as the auditor: recorded, shown.
    let (st, body) = post_form(
        &srv,
        &bearer("auditor"),
        "/console/archives/verify",
        &[("period", "2026-03")],
    );
    assert_eq!(st, 303, "{body}");
    let (_, page) = get(&srv, "auditor", "/console/archives");
    assert!(page.contains("by auditor-user"), "{page}");
    assert!(!page.contains("not verified yet"), "{page}");
    let rec = audit(&srv, "archive.verified");
    assert_eq!(rec.len(), 1, "{rec:?}");
    assert_eq!(rec[0]["who"], "auditor-user");
    assert!(
        rec[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("period 2026-03 revision 1: ok"),
        "{rec:?}"
    );
    assert_eq!(
        get_json(&srv, "auditor", "/api/archives")[0]["last_verify"]["ok"],
        true
    );

    // Strange input: 400 naming the field, or 404; never a panic.
    for (path, want) in [
        ("/console/archives/2026-13/1/entries.csv", 400),
        ("/console/archives/march/1/entries.csv", 400),
        ("/console/archives/2026-W99/1/entries.csv", 400),
        ("/console/archives/99999999999-01/1/entries.csv", 400),
        ("/console/archives/2026-03/x/entries.csv", 400),
        ("/console/archives/2026-03/-1/entries.csv", 400),
        ("/console/archives/2026-03/99999999999/entries.csv", 400),
        ("/console/archives/2026-03/2/entries.csv", 404),
        ("/console/archives/2026-04/1/entries.csv", 404),
        ("/console/archives/2026-03/1/nope.csv", 404),
        (
            "/console/archives/2026-03/1/..%2F..%2F..%2Ftimepost.toml",
            404,
        ),
        ("/console/archives/2026-03/1/%00", 404),
    ] {
        let (st, body) = get(&srv, "auditor", path);
        assert_eq!(st, want, "{path}: {body}");
    }
    for period in ["garbage", "2026-00", "2026-W00", "-1-01", "2026-03-01"] {
        let (st, body) = post_form(
            &srv,
            &bearer("auditor"),
            "/console/archives/verify",
            &[("period", period)],
        );
        assert_eq!(st, 400, "{period}: {body}");
        assert!(body.contains("period"), "{body}");
        let (st, b) = post_json(
            &srv,
            &bearer("auditor"),
            "/api/archives/verify",
            &serde_json::json!({ "period": period }),
        );
        assert_eq!(st, 400, "{period}: {b}");
        assert_eq!(b["field"], "period");
    }
    let (st, _) = post_form(
        &srv,
        &bearer("auditor"),
        "/console/archives/verify",
        &[("period", "2027-01")],
    );
    assert_eq!(st, 404);
    let (st, b) = post_json(
        &srv,
        &bearer("auditor"),
        "/api/archives/verify",
        &serde_json::json!({ "period": 7 }),
    );
    assert_eq!(st, 400, "{b}");

    // One flipped byte: Verify names the file, the page says FAILED.
    let f = d
        .path()
        .join(".timepost/archive/snapshots/2026-03/rev-1/journal.jsonl.gz");
    let mut perms = std::fs::metadata(&f).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&f, perms).unwrap();
    let mut b = std::fs::read(&f).unwrap();
    b[10] ^= 0x80;
    std::fs::write(&f, b).unwrap();
    let (st, v) = post_json(
        &srv,
        &bearer("finance"),
        "/api/archives/verify",
        &serde_json::json!({}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ok"], false);
    assert_eq!(
        v["problems"][0]["key"],
        "snapshots/2026-03/rev-1/journal.jsonl.gz"
    );
    let (st, body) = post_form(&srv, &bearer("admin"), "/console/archives/verify", &[]);
    assert_eq!(st, 303, "{body}");
    let (_, page) = get(&srv, "auditor", "/console/archives");
    assert!(page.contains("FAILED"), "{page}");
    assert!(
        page.contains("journal.jsonl.gz: differs from its manifest hash"),
        "{page}"
    );
    assert_eq!(audit(&srv, "archive.verified").len(), 3);
}
