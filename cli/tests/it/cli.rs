//! The `timepost` binary as a user meets it: exit codes, messages, and the
//! local server over real HTTP.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{workdir, Server, SANDBOX};

fn timepost(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args(args)
        .env_remove("TIMEPOST_CONFIG")
        .output()
        .expect("runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn demo_prints_the_outcome_and_json_has_the_contract_keys() {
    let d = tempfile::tempdir().unwrap();
    let o = timepost(d.path(), &["demo"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for s in [
        "POSTED",
        "HELD",
        "WAITING FOR APPROVAL",
        "EXCEPTIONS",
        "DUPLICATES IGNORED",
        "RECONCILIATION",
        "tracker and ledger agree",
    ] {
        assert!(out.contains(s), "missing {s}");
    }
    let o = timepost(d.path(), &["demo", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "posted",
        "held",
        "awaiting_approval",
        "exceptions",
        "duplicates_ignored",
        "reconciliation",
        "kpis",
    ] {
        assert!(v.get(k).is_some(), "missing key {k}");
    }
    assert_eq!(v["reconciliation"]["agrees"], true);
}

#[test]
fn explain_knows_every_code_and_refuses_unknown_ones() {
    let d = tempfile::tempdir().unwrap();
    let o = timepost(d.path(), &["explain", "unmapped_project"]);
    assert!(o.status.success());
    assert!(text(&o).0.contains("customer or job"));
    let o = timepost(d.path(), &["explain", "NOPE"]);
    assert_eq!(o.status.code(), Some(2));
    let o = timepost(d.path(), &["explain", "--all"]);
    assert!(text(&o).0.lines().count() > 10);
}

#[test]
fn a_broken_config_is_bad_input_naming_file_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("timepost.toml"),
        "[rules.currency]\nhome = \"USD\"\n\n[rules.rounding]\nincrement_minutes = 15\nmode = \"sideways\"\n",
    )
    .unwrap();
    let o = timepost(d.path(), &["mappings", "list"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("timepost.toml") && err.contains("line 6") && err.contains("mode"),
        "{err}"
    );
    // A missing config file is bad usage too.
    let o = timepost(d.path(), &["--config", "nope.toml", "status"]);
    assert_eq!(o.status.code(), Some(2));
    // Bad arguments.
    let o = timepost(d.path(), &["ingest", "--source", "excel", "x"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_bad_mapping_csv_writes_nothing_and_a_good_one_round_trips() {
    let d = workdir();
    let bad = d.path().join("bad.csv");
    std::fs::write(&bad, "table,key,target\nemployee,u1,E-100\nproject,p1,\n").unwrap();
    let o = timepost(d.path(), &["mappings", "import", bad.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.csv") && err.contains("line 3") && err.contains("`target`"),
        "{err}"
    );
    let o = timepost(d.path(), &["mappings", "list"]);
    assert!(o.status.success());
    assert!(text(&o).0.trim().is_empty(), "nothing half-imported");

    let good = format!("{SANDBOX}/mappings.csv");
    let o = timepost(
        d.path(),
        &[
            "mappings",
            "import",
            &good,
            "--reason",
            "initial load",
            "--by",
            "ann",
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let out = d.path().join("out.csv");
    let o = timepost(
        d.path(),
        &["mappings", "export", "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success());
    // The export quotes and defuses every cell (csv_out); read back, it
    // holds exactly the rows imported.
    let sorted = |p: &Path| {
        let f = std::fs::File::open(p).unwrap();
        let mut rows = timepost::mapping::csv_io::read(f).unwrap();
        rows.sort_by(|a, b| (a.table, &a.key).cmp(&(b.table, &b.key)));
        rows
    };
    assert_eq!(sorted(&out), sorted(Path::new(&good)));
    let o = timepost(d.path(), &["mappings", "history", "--table", "vendor"]);
    let (h, _) = text(&o);
    assert!(
        h.contains("ann") && h.contains("initial load") && h.contains("V-200"),
        "{h}"
    );
}

#[test]
fn ingest_csv_processes_and_a_malformed_file_enqueues_nothing() {
    let d = workdir();
    let o = timepost(
        d.path(),
        &["mappings", "import", &format!("{SANDBOX}/mappings.csv")],
    );
    assert!(o.status.success());
    let bad = d.path().join("bad.csv");
    let mut rows = std::fs::read_to_string(format!("{SANDBOX}/entries.csv")).unwrap();
    rows.push_str("e-x,acme-consulting,not-a-date,u-ann,,,,,,,2026-03-02 08:00,2026-03-02 09:00,,,,,,,,,false,,,,approved,web,false,false,\n");
    std::fs::write(&bad, rows).unwrap();
    let o = timepost(
        d.path(),
        &["ingest", "--source", "csv", bad.to_str().unwrap()],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.csv") && err.contains("updated_at"),
        "{err}"
    );
    let o = timepost(d.path(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["kpis"]["entries_known"], "0",
        "nothing from the bad file was enqueued"
    );

    let o = timepost(
        d.path(),
        &[
            "ingest",
            "--source",
            "csv",
            &format!("{SANDBOX}/entries.csv"),
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["posted"].as_u64().unwrap() > 10, "{v}");
    assert_eq!(v["duplicate"], 2);
}

#[test]
fn store_rebuild_aggregates_verifies_and_repairs_the_maintained_rows() {
    let d = workdir();
    assert!(timepost(
        d.path(),
        &["mappings", "import", &format!("{SANDBOX}/mappings.csv")]
    )
    .status
    .success());
    let o = timepost(
        d.path(),
        &[
            "ingest",
            "--source",
            "csv",
            &format!("{SANDBOX}/entries.csv"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let rebuild = |d: &Path| {
        let o = timepost(d, &["store", "rebuild-aggregates", "--json"]);
        assert!(o.status.success(), "{}", text(&o).1);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    // Kept with every write: nothing to repair.
    let v = rebuild(d.path());
    assert!(v["entries"].as_u64().unwrap() > 10, "{v}");
    assert!(v["rows"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(
        (v["differed"].as_u64(), v["samples_differed"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    // Rows damaged behind timepost's back are found and recomputed.
    let conn = rusqlite::Connection::open(d.path().join(".timepost/timepost.sqlite")).unwrap();
    let damaged = conn
        .execute(
            "UPDATE aggregates SET entries = entries + 1 WHERE grain = 'week' AND kind = 'entry'",
            [],
        )
        .unwrap();
    drop(conn);
    assert!(damaged > 0);
    let v = rebuild(d.path());
    assert_eq!(v["differed"].as_u64(), Some(damaged as u64), "{v}");
    assert_eq!(rebuild(d.path())["differed"].as_u64(), Some(0));
    // The report of a period reads the aggregates; all time sums the years
    // and agrees with the full report's counts.
    let full = timepost(d.path(), &["status", "--full", "--json"]);
    let full: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    let all = timepost(d.path(), &["status", "--period", "all", "--json"]);
    assert!(all.status.success(), "{}", text(&all).1);
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(
        all["kpis"]["entries_known"], full["kpis"]["entries_known"],
        "{all}"
    );
    assert_eq!(
        all["kpis"]["posting_lines"], full["kpis"]["posting_lines"],
        "{all}"
    );
    assert_eq!(
        all["by_project"].as_array().map(Vec::len),
        full["posted"]["by_project"].as_array().map(Vec::len)
    );
    let month = timepost(d.path(), &["status", "--period", "2026-03"]);
    assert!(
        text(&month).0.contains("period 2026-03"),
        "{}",
        text(&month).0
    );
    let bad = timepost(d.path(), &["status", "--period", "March"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad).1);
    // A text summary; `--backend aws` with no stack named (`TIMEPOST_*`
    // unset) is bad usage.
    let o = timepost(d.path(), &["store", "rebuild-aggregates"]);
    assert!(
        text(&o).0.contains("0 row(s) and 0 KPI sample(s) differed"),
        "{}",
        text(&o).0
    );
    let o = timepost(
        d.path(),
        &["--backend", "aws", "store", "rebuild-aggregates"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    // The mapped-key index: kept with every write, then rows removed
    // behind timepost's back are found and rewritten.
    let keys = |d: &Path| {
        let o = timepost(d, &["store", "rebuild-key-index", "--json"]);
        assert!(o.status.success(), "{}", text(&o).1);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let v = keys(d.path());
    assert!(v["entries"].as_u64().unwrap() > 10, "{v}");
    assert_eq!(v["differed"].as_u64(), Some(0), "{v}");
    let conn = rusqlite::Connection::open(d.path().join(".timepost/timepost.sqlite")).unwrap();
    conn.execute(
        "DELETE FROM entry_keys WHERE entry IN (SELECT entry FROM entry_keys LIMIT 1)",
        [],
    )
    .unwrap();
    assert_eq!(keys(d.path())["differed"].as_u64(), Some(1));
    let o = timepost(d.path(), &["store", "rebuild-key-index"]);
    assert!(
        text(&o)
            .0
            .contains("0 entr(y/ies) had missing or wrong index rows"),
        "{}",
        text(&o).0
    );
}

#[test]
fn serve_answers_health_guards_its_routes_and_stops_gracefully() {
    let d = workdir();
    let srv = Server::start(d.path());
    let token = srv.token.clone().unwrap_or_default();
    assert!(
        token.starts_with("tpa_"),
        "a fresh admin token is created and shown once"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secrets = PathBuf::from(d.path()).join(".timepost/secrets.toml");
        let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (st, body) = srv.request("GET", "/healthz", &[], b"");
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""));
    let (st, _) = srv.request(
        "POST",
        "/webhooks/toggl",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(st, 401, "unsigned webhook refused");
    let (st, _) = srv.request("GET", "/api/report", &[], b"");
    assert_eq!(st, 401);
    let auth = format!("Bearer {token}");
    let (st, body) = srv.request("GET", "/api/report", &[("Authorization", &auth)], b"");
    assert_eq!(st, 200, "{body}");
    let (st, body) = srv.request("GET", "/openapi.json", &[], b"");
    assert_eq!(st, 200);
    assert!(body.contains("\"openapi\""));
    let (status, rest) = srv.stop();
    assert!(status.success(), "graceful shutdown exits 0");
    assert!(
        rest.iter().any(|l| l.contains("timepost stopped")),
        "{rest:?}"
    );
}

#[test]
fn generic_csv_columns_come_from_config() {
    let d = workdir();
    let cfg = std::fs::read_to_string(d.path().join("timepost.toml")).unwrap();
    std::fs::write(
        d.path().join("timepost.toml"),
        format!("{cfg}\n[intake.csv_columns]\nentry_id = \"Row ID\"\nuser_id = \"Employee\"\nupdated_at = \"Changed\"\n"),
    )
    .unwrap();
    let f = d.path().join("own.csv");
    std::fs::write(&f, "Row ID,Employee,Changed,start,end,project_id,approval\nr1,u-ann,2026-03-09T00:00:00Z,2026-03-03 09:00,2026-03-03 10:30,p-acme-web,approved\n").unwrap();
    let o = timepost(
        d.path(),
        &["mappings", "import", &format!("{SANDBOX}/mappings.csv")],
    );
    assert!(o.status.success());
    let o = timepost(
        d.path(),
        &["ingest", "--source", "csv", f.to_str().unwrap(), "--json"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["posted"], 1, "{v}");
}

#[test]
fn poll_exit_codes_name_the_missing_section_and_secret() {
    let d = workdir();
    // Not configured: bad usage, and the message says what to add.
    let o = timepost(d.path(), &["poll", "--source", "harvest"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("[intake.harvest]"), "{err}");
    let o = timepost(d.path(), &["poll", "--source", "toggl"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("[intake.toggl_poll]"), "{err}");

    // Configured, but no token secret: a configuration problem (2).
    let cfg = d.path().join("timepost.toml");
    let mut text_cfg = std::fs::read_to_string(&cfg).unwrap();
    text_cfg.push_str(
        "\n[intake.harvest]\naccount_id = \"1\"\nbase_url = \"http://127.0.0.1:1\"\nmax_attempts = 2\nbackoff_base_ms = 10\n",
    );
    std::fs::write(&cfg, &text_cfg).unwrap();
    let o = timepost(d.path(), &["poll", "--source", "harvest"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("harvest_token"), "{err}");

    // With the token but the vendor unreachable: a runtime failure (1).
    {
        use std::os::unix::fs::PermissionsExt;
        let secrets = d.path().join(".timepost/secrets.toml");
        std::fs::create_dir_all(secrets.parent().unwrap()).unwrap();
        std::fs::write(&secrets, "harvest_token = \"t\"\n").unwrap();
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = timepost(d.path(), &["poll", "--source", "harvest"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("watermark unchanged"), "{err}");
}

#[test]
fn ingest_of_a_saved_payload_names_file_position_and_field() {
    let d = workdir();
    let good = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/toggl/time_entry_created.json"
    ))
    .unwrap();
    let mut bad: serde_json::Value = serde_json::from_str(&good).unwrap();
    bad["payload"].as_object_mut().unwrap().remove("start");
    let f = d.path().join("replay.json");
    std::fs::write(&f, format!("[{good}, {bad}]")).unwrap();
    let o = timepost(
        d.path(),
        &["ingest", "--source", "toggl", f.to_str().unwrap()],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("replay.json") && err.contains("[1]") && err.contains("start"),
        "{err}"
    );
    let o = timepost(d.path(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["kpis"]["entries_known"], "0",
        "nothing from the file was enqueued"
    );
    // The good element alone is accepted (exit 0, whatever its outcome).
    std::fs::write(&f, format!("[{good}]")).unwrap();
    let o = timepost(
        d.path(),
        &["ingest", "--source", "toggl", f.to_str().unwrap(), "--json"],
    );
    assert!(o.status.success(), "{}", text(&o).1);
}

/// Issue 11, point 13: a Clockify body does not carry its event kind, so a
/// saved deletion must never be ingested as a new entry.
#[test]
fn ingest_clockify_without_event_refuses_an_entry_and_names_the_flag() {
    let d = workdir();
    let deleted = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/clockify/time_entry_deleted.json"
    );
    let o = timepost(d.path(), &["ingest", "--source", "clockify", deleted]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--event") && err.contains("TIME_ENTRY_DELETED"),
        "{err}"
    );
    let o = timepost(d.path(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kpis"]["entries_known"], "0", "nothing was enqueued");
    // With the event named, the same file goes through as a deletion.
    let o = timepost(
        d.path(),
        &[
            "ingest",
            "--source",
            "clockify",
            deleted,
            "--event",
            "TIME_ENTRY_DELETED",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    // An approval body is not ambiguous: no --event needed.
    let approval = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/clockify/approval_status_updated.json"
    );
    let o = timepost(
        d.path(),
        &["ingest", "--source", "clockify", approval, "--json"],
    );
    assert!(o.status.success(), "{}", text(&o).1);
}

#[cfg(not(feature = "aws"))]
#[test]
fn backend_aws_without_the_feature_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir.path())
        .args(["--backend", "aws", "mappings", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("built without AWS support: cargo install --path cli --features aws"),
        "{err}"
    );
}

/// A working directory whose mapping changes need a second admin as soon
/// as they touch more than one stored entry, with the sandbox mappings
/// imported and the sandbox entries (March 2026, long before the default
/// 30-day preview window) posted.
fn reviewed_workdir() -> tempfile::TempDir {
    let d = workdir();
    let cfg = d.path().join("timepost.toml");
    let toml = std::fs::read_to_string(&cfg).unwrap();
    assert!(toml.contains("[rules]\n") && !toml.lines().any(|l| l.trim() == "[console]"));
    std::fs::write(
        &cfg,
        toml.replacen(
            "[rules]\n",
            "[console]\nmapping_approval_threshold = 1\n\n[rules]\n",
            1,
        ),
    )
    .unwrap();
    // On an empty store an import touches no entry: it applies at once.
    let o = timepost(
        d.path(),
        &["mappings", "import", &format!("{SANDBOX}/mappings.csv")],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let o = timepost(
        d.path(),
        &[
            "ingest",
            "--source",
            "csv",
            &format!("{SANDBOX}/entries.csv"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    d
}

/// The sandbox mappings with Acme's website billed to Globex instead.
fn rerouting_file(dir: &Path) -> PathBuf {
    let rows = std::fs::read_to_string(format!("{SANDBOX}/mappings.csv")).unwrap();
    assert!(rows.contains("project,p-acme-web,C-ACME,"));
    let f = dir.join("reroute.csv");
    std::fs::write(
        &f,
        rows.replace("project,p-acme-web,C-ACME,", "project,p-acme-web,C-GLOBEX,"),
    )
    .unwrap();
    f
}

fn acme_web_target(dir: &Path) -> String {
    let o = timepost(dir, &["mappings", "list", "--table", "project"]);
    assert!(o.status.success());
    let out = text(&o).0;
    let line = out
        .lines()
        .find(|l| l.contains("p-acme-web"))
        .unwrap_or_else(|| panic!("{out}"));
    line.split('→')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// (who, action, detail) of every audit record, oldest first.
fn audit_log(dir: &Path) -> Vec<(String, String, String)> {
    let store = timepost::local::SqliteStore::open(&dir.join(".timepost/timepost.sqlite")).unwrap();
    let conn = store.lock();
    let mut st = conn
        .prepare("SELECT who, action, detail FROM audit ORDER BY seq")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

/// (id, status) of every stored mapping change proposal.
fn proposals(dir: &Path) -> Vec<(i64, String)> {
    let store = timepost::local::SqliteStore::open(&dir.join(".timepost/timepost.sqlite")).unwrap();
    let conn = store.lock();
    let Ok(mut st) = conn.prepare("SELECT id, status FROM mapping_proposals ORDER BY id") else {
        return Vec::new();
    };
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

#[test]
fn an_import_above_the_threshold_waits_for_a_second_admin() {
    let d = reviewed_workdir();
    let file = rerouting_file(d.path());
    let file = file.to_str().unwrap();
    let before = proposals(d.path()).len();

    // The dry run shows the change and its impact, and changes nothing.
    let o = timepost(d.path(), &["mappings", "import", file, "--dry-run"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("project `p-acme-web`: C-ACME → C-GLOBEX"),
        "{out}"
    );
    assert!(
        out.contains("the change can affect up to 10 stored entries (review threshold: 1); 8 of the 11 replayed"),
        "{out}"
    );
    assert!(out.contains("would wait for a second admin"), "{out}");
    assert!(out.contains("1 change(s) would be made (dry run)"), "{out}");
    assert_eq!(acme_web_target(d.path()), "C-ACME");
    assert_eq!(proposals(d.path()).len(), before);

    // Imported for real: stored as a proposal (exit 0), nothing applied.
    let o = timepost(
        d.path(),
        &[
            "mappings",
            "import",
            file,
            "--by",
            "ann",
            "--reason",
            "Acme sold",
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("project `p-acme-web`: C-ACME → C-GLOBEX"),
        "{out}"
    );
    let all = proposals(d.path());
    let (id, status) = all.last().cloned().unwrap();
    assert_eq!(status, "pending");
    assert!(
        out.contains(&format!("proposal #{id}")) && out.contains("wait for a second admin"),
        "{out}"
    );
    assert_eq!(acme_web_target(d.path()), "C-ACME");
    let o = timepost(d.path(), &["mappings", "history", "--table", "project"]);
    let h = text(&o).0;
    assert!(!h.contains("C-ACME → C-GLOBEX"), "no change logged: {h}");
    let log = audit_log(d.path());
    let (who, _, detail) = log
        .iter()
        .find(|(_, a, _)| a == "mapping_propose")
        .expect("proposal audited");
    assert_eq!(who, "ann");
    assert!(detail.contains(&format!("proposal #{id}")), "{detail}");
}

#[test]
fn an_import_approved_as_the_importer_is_refused_and_by_another_admin_applies() {
    let d = reviewed_workdir();
    let file = rerouting_file(d.path());
    let file = file.to_str().unwrap();
    for same in ["ann", "Ann", " ann "] {
        let o = timepost(
            d.path(),
            &[
                "mappings",
                "import",
                file,
                "--by",
                "ann",
                "--approve-as",
                same,
            ],
        );
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{same}: {err}");
        assert!(err.contains("another person, must approve"), "{err}");
    }
    let o = timepost(
        d.path(),
        &[
            "mappings",
            "import",
            file,
            "--by",
            "ann",
            "--approve-as",
            "",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    assert_eq!(acme_web_target(d.path()), "C-ACME");
    assert!(proposals(d.path()).iter().all(|(_, s)| s != "pending"));

    // A second admin, named: applied at once, both names audited.
    let o = timepost(
        d.path(),
        &[
            "mappings",
            "import",
            file,
            "--by",
            "ann",
            "--approve-as",
            "bob",
            "--reason",
            "Acme sold",
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("approved by bob as second admin"), "{out}");
    assert!(out.contains("1 change(s) applied"), "{out}");
    assert_eq!(acme_web_target(d.path()), "C-GLOBEX");
    let o = timepost(d.path(), &["mappings", "history", "--table", "project"]);
    let h = text(&o).0;
    assert!(h.contains("Acme sold (approved by bob)"), "{h}");
    let log = audit_log(d.path());
    let import = log
        .iter()
        .find(|(_, a, d)| a == "mapping_import" && d.contains("C-GLOBEX"))
        .expect("import audited");
    assert_eq!(import.0, "ann");
    assert!(import.2.contains("approved by bob"), "{}", import.2);
    let approval = log
        .iter()
        .find(|(_, a, _)| a == "mapping_approve")
        .expect("approval audited");
    assert_eq!(approval.0, "bob");
    let (_, status) = proposals(d.path()).last().cloned().unwrap();
    assert_eq!(status, "applied");
}

/// `timepost redrive` takes the console's action (`timepost::app::entries`):
/// each redrive of an entry or a dead letter is audited under `--by`, and a
/// key the store does not hold is refused (exit 2) with nothing queued.
#[test]
fn redrive_is_audited_under_the_name_given_and_refuses_an_unknown_entry() {
    let d = workdir();
    // Without mappings every entry stops as an exception (and is parked).
    let o = timepost(
        d.path(),
        &[
            "ingest",
            "--source",
            "csv",
            &format!("{SANDBOX}/entries.csv"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let key: String = {
        let store = timepost::local::SqliteStore::open(&d.path().join(".timepost/timepost.sqlite"))
            .unwrap();
        let conn = store.lock();
        conn.query_row(
            "SELECT key FROM entries WHERE status = 'exception' ORDER BY key LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };

    let o = timepost(
        d.path(),
        &["redrive", "--entry", "csv:nope:1", "--by", "ann"],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no entry csv:nope:1"), "{err}");
    assert!(audit_log(d.path()).iter().all(|(_, a, _)| a != "redrive"));

    let o = timepost(d.path(), &["redrive", "--entry", &key, "--by", "ann"]);
    assert!(o.status.success(), "{}", text(&o).1);
    let log = audit_log(d.path());
    assert!(
        log.contains(&("ann".into(), "redrive".into(), "cli".into())),
        "{log:?}"
    );
}
