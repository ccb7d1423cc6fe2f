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
