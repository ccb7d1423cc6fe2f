//! The `timepost` binary as a user meets it: exit codes, messages, and the
//! local server over real HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SANDBOX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/sandbox");

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

/// A working directory with the sandbox config.
fn workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{SANDBOX}/timepost.toml"),
        d.path().join("timepost.toml"),
    )
    .unwrap();
    d
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
    let sorted = |p: &Path| {
        let mut l: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .skip(1)
            .map(String::from)
            .collect();
        l.sort();
        l
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

fn http(addr: &str, req: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn serve_answers_health_guards_its_routes_and_stops_gracefully() {
    let d = workdir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(d.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.rsplit("http://").next().unwrap().trim().to_string();
    let mut token = String::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(t) = l.split("): ").nth(1) {
            token = t.trim().to_string();
        }
        if l.contains("Ctrl-C") {
            break;
        }
    }
    assert!(
        token.starts_with("tpa_"),
        "a fresh admin token is created and shown once"
    );
    let secrets = PathBuf::from(d.path()).join(".timepost/secrets.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    let (st, body) = http(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""));
    let (st, _) = http(&addr, "POST /webhooks/toggl HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    assert_eq!(st, 401, "unsigned webhook refused");
    let (st, _) = http(
        &addr,
        "GET /api/report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(st, 401);
    let (st, body) = http(&addr, &format!("GET /api/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"));
    assert_eq!(st, 200, "{body}");
    let (st, body) = http(
        &addr,
        "GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(st, 200);
    assert!(body.contains("\"openapi\""));

    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("timepost stopped")),
        "{rest:?}"
    );
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
