//! `timepost sync --dry-run` and `timepost rollback` as a user runs them:
//! output, exit codes, and that a dry run changes nothing.

use std::path::Path;
use std::process::Command;

fn timepost(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args(["--config", "timepost.toml"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run timepost: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn qbo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sandbox");
    let cfg = std::fs::read_to_string(root.join("timepost.toml")).unwrap_or_default();
    let cfg = cfg.replace("kind = \"sandbox\"", "kind = \"qbo\"")
        + "\n[ledger.qbo]\nrealm_id = \"9130\"\napi_base = \"http://127.0.0.1:9\"\nenvironment = \"sandbox\"\npayroll = true\n";
    std::fs::write(dir.path().join("timepost.toml"), cfg).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(root.join("mappings.csv"), dir.path().join("mappings.csv"))
        .unwrap_or_else(|e| panic!("{e}"));
    let entries = std::fs::read_to_string(root.join("entries.csv")).unwrap_or_default();
    let first: Vec<&str> = entries.lines().take(4).collect();
    std::fs::write(dir.path().join("entries.csv"), first.join("\n") + "\n")
        .unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn dry_run_prints_the_requests_and_changes_nothing() {
    let dir = qbo_dir();
    let d = dir.path();
    assert_eq!(
        timepost(d, &["sync", "--dry-run"]).0,
        2,
        "no store yet: bad input"
    );
    assert_eq!(timepost(d, &["mappings", "import", "mappings.csv"]).0, 0);
    assert_eq!(
        timepost(
            d,
            &["ingest", "--source", "csv", "entries.csv", "--no-process"]
        )
        .0,
        0
    );
    let store = d.join(".timepost/timepost.sqlite");
    let before = std::fs::read(&store).unwrap_or_default();
    let (code, out, err) = timepost(d, &["sync", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("POST http://127.0.0.1:9/v3/company/9130/batch?requestid=tp-"),
        "{out}"
    );
    assert!(
        out.contains("Authorization: Bearer <redacted>") && out.contains("\"TimeActivity\""),
        "{out}"
    );
    assert!(out.contains("\"PayrollItemRef\""), "{out}");
    assert_eq!(
        std::fs::read(&store).unwrap_or_default(),
        before,
        "the store is unchanged"
    );
    let (code, out, _) = timepost(d, &["sync", "--dry-run", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(v["requests"].as_array().is_some_and(|r| !r.is_empty()));
    // Rolling back a batch the journal does not know is bad input.
    let (code, _out, err) = timepost(d, &["rollback", "--batch", "b-nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nothing for batch"), "{err}");
}

/// `timepost reconcile` on the sandbox as a user runs it: the ingested
/// sandbox agrees, the run is stored and listed by `history`, and a
/// resolve of a break no run holds (or without an action) is bad input.
#[test]
fn reconcile_runs_stores_and_refuses_an_unknown_break() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sandbox");
    for f in ["timepost.toml", "mappings.csv", "entries.csv"] {
        std::fs::copy(root.join(f), d.join(f)).unwrap_or_else(|e| panic!("{e}"));
    }
    let (code, _, err) = timepost(d, &["mappings", "import", "mappings.csv", "--reason", "t"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = timepost(d, &["ingest", "--source", "csv", "entries.csv"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = timepost(d, &["reconcile", "--period", "2026-03-01..2026-03-31"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("reconciliation #1 of 2026-03-01..2026-03-31 against sandbox (tracker: received): agrees"),
        "{out}"
    );
    let (code, out, _) = timepost(
        d,
        &["reconcile", "--period", "2026-03-01..2026-03-31", "--json"],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["summary"]["seq"], 2);
    assert_eq!(v["summary"]["breaks"], 0);
    let (code, out, _) = timepost(d, &["reconcile", "history"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.starts_with("#2 2026-03-01..2026-03-31 sandbox"),
        "{out}"
    );
    let (code, _, err) = timepost(
        d,
        &["reconcile", "resolve", "b-000000000000", "--dismiss", "x"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no break b-000000000000"), "{err}");
    let (code, _, err) = timepost(d, &["reconcile", "resolve", "b-000000000000"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = timepost(d, &["reconcile", "--period", "fortnight"]);
    assert_eq!(code, 2, "{err}");
}
