//! `timepost archive …`, `export --all`, `import --bundle` and
//! `--data-dir`, run as a person would: exit codes, what is printed, and
//! the restored store read by `status`.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{workdir, SANDBOX};

fn timepost(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

pub(crate) fn ok(dir: &Path, args: &[&str]) -> String {
    let o = timepost(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A work dir whose store holds the demo run.
pub(crate) fn demo_dir() -> tempfile::TempDir {
    let d = workdir();
    ok(d.path(), &["demo", "--keep", "demo-run"]);
    let store = d.path().join(".timepost");
    std::fs::create_dir_all(&store).unwrap();
    for f in std::fs::read_dir(d.path().join("demo-run")).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().to_string_lossy().to_string();
        if name.starts_with("timepost.sqlite") {
            std::fs::rename(f.path(), store.join(name)).unwrap();
        }
    }
    d
}

pub(crate) fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn archive_verify_tamper_restore_and_status_of_the_restored_store() {
    let d = demo_dir();
    let dir = d.path();
    let before = json(&ok(dir, &["status", "--json"]));
    let out = ok(dir, &["archive", "run"]);
    assert!(out.contains("2026-03: revision 1 written"), "{out}");
    let out = ok(dir, &["archive", "run", "--period", "2026-03"]);
    assert!(
        out.contains("unchanged since revision 1; nothing written"),
        "{out}"
    );
    let listed = json(&ok(dir, &["archive", "list", "--json"]));
    assert_eq!(listed[0]["period"], "2026-03");
    assert_eq!(listed[0]["expired"], false);
    assert!(ok(dir, &["archive", "verify"]).contains("2026-03 rev 1: 16 files ok"));

    // Restore, and read it as an auditor would.
    ok(
        dir,
        &[
            "archive", "restore", "--period", "2026-03", "--into", "audit",
        ],
    );
    let restored = json(&ok(dir, &["--data-dir", "audit", "status", "--json"]));
    assert_eq!(restored, before, "the demo's entries are all in March");
    let text = ok(dir, &["--data-dir", "audit", "status"]);
    assert!(!text.is_empty());
    // `serve` on it keeps it as archived: no worker, no schedules.
    let mut child = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args(["--data-dir", "audit", "serve", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    {
        use std::io::BufRead;
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        for line in out.lines() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("Ctrl-C") {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(banner.contains("read-only store"), "{banner}");
    let after_serve = json(&ok(dir, &["--data-dir", "audit", "status", "--json"]));
    assert_eq!(after_serve, before);

    // One flipped byte: verify names the file and exits 1.
    let f = dir.join(".timepost/archive/snapshots/2026-03/rev-1/journal.jsonl.gz");
    let mut perms = std::fs::metadata(&f).unwrap().permissions();
    assert!(perms.readonly(), "snapshot files are read-only");
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&f, perms).unwrap();
    let mut b = std::fs::read(&f).unwrap();
    b[10] ^= 0x80;
    std::fs::write(&f, b).unwrap();
    let o = timepost(dir, &["archive", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("snapshots/2026-03/rev-1/journal.jsonl.gz: differs from its manifest hash"),
        "{out}"
    );
    // A damaged snapshot is not restored (bad input: exit 2).
    let o = timepost(
        dir,
        &[
            "archive", "restore", "--period", "2026-03", "--into", "again",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("journal.jsonl.gz"));
}

#[test]
fn bad_periods_and_purge_without_live_days() {
    let d = demo_dir();
    let dir = d.path();
    let o = timepost(dir, &["archive", "run", "--period", "March"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a period"));
    ok(dir, &["archive", "run"]);
    let out = ok(dir, &["archive", "purge", "--dry-run"]);
    assert!(out.contains("live_days is not set"), "{out}");
    // With live_days: the demo's open entries keep its month whole.
    let mut cfg = std::fs::read_to_string(dir.join("timepost.toml")).unwrap();
    cfg.push_str("\n[retention]\nlive_days = 30\n");
    std::fs::write(dir.join("timepost.toml"), cfg).unwrap();
    let out = ok(dir, &["archive", "purge"]);
    assert!(out.contains("2026-03 rev 1: kept:"), "{out}");
    assert!(out.contains("still open"), "{out}");
    let o = timepost(dir, &["--backend", "aws", "archive", "purge"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn export_all_then_import_bundle_gives_the_same_status() {
    let d = demo_dir();
    let dir = d.path();
    let before = json(&ok(dir, &["status", "--json"]));
    let out = ok(dir, &["export", "--all", "bundle"]);
    assert!(out.contains("exported 33 entries"), "{out}");
    for f in [
        "manifest.json",
        "entries.jsonl.gz",
        "entries.csv",
        "posted_lines.csv",
        "rules.toml",
    ] {
        assert!(dir.join("bundle").join(f).exists(), "{f}");
    }
    let o = timepost(dir, &["export", "--all", "bundle"]);
    assert_eq!(o.status.code(), Some(2), "an export is never overwritten");

    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{SANDBOX}/timepost.toml"),
        fresh.path().join("timepost.toml"),
    )
    .unwrap();
    let bundle = dir.join("bundle");
    let bundle = bundle.to_str().unwrap();
    ok(fresh.path(), &["import", "--bundle", bundle]);
    assert_eq!(json(&ok(fresh.path(), &["status", "--json"])), before);
    // A store that holds something is refused unless told.
    let o = timepost(fresh.path(), &["import", "--bundle", bundle]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    // The entries CSV view opens as a table a person can read.
    let csv = std::fs::read_to_string(dir.join("bundle/entries.csv")).unwrap();
    assert!(csv.starts_with("entry,worker,email,work_date,hours,project"));
    assert_eq!(csv.lines().count(), 34);
}
