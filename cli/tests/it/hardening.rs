//! Issue 12, as an attacker or a careless insider would try it against a
//! real `timepost serve` and the CLI: an absurd billing rate (delivered,
//! imported, or already in the store) never takes a report down; console
//! responses carry the browser hardening headers and the sign-in form is
//! CSRF-protected; the store's files are private and the admin token is
//! never printed; a damaged store is refused with its path; oversized
//! fields and bodies are refused naming what was too large; entries whose
//! identities collided in the unescaped key text are two entries, and an
//! old store is re-keyed; failed tokens are throttled; weak tokens are
//! refused and a copied config cannot check one.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::console::{raw, wait_for};
use common::console_kit::{bearer, get, prepare, Toggl, TOGGL};
use common::{secrets, workdir, Server};
use serde_json::{json, Value};

/// 2⁹⁶ − 1: the largest `Decimal`.
const HUGE: &str = "79228162514264337593543950335";
const CLOCKIFY: &str = "clockify-secret";

fn timepost(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// `timepost serve` on a store it must refuse: its output once it exits.
/// A server still running after a minute took the store — stopped, and the
/// test fails instead of waiting for ever.
fn serve_refusing(dir: &Path) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    let o = child.wait_with_output().unwrap();
    panic!(
        "timepost serve started on a store it must refuse: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// A posted entry as a timepost without plausibility bounds stored it:
/// billable at the largest `Decimal` per hour, ten hours.
fn seed_poisoned_posted_entry(dir: &Path) {
    use timepost::ledger::{Party, PostingLine, RecordRef};
    use timepost::model::Money;
    use timepost::ports::EntryStore;
    use timepost::state::{EntryState, Status};
    let store = timepost::local::SqliteStore::open(&dir.join(".timepost/timepost.sqlite")).unwrap();
    let entry: timepost::model::NormalisedEntry = serde_json::from_value(json!({
        "key": {"source": "csv", "workspace": "legacy", "id": "poisoned"},
        "version": {"updated_at": "2026-03-02T18:00:00Z", "content_hash": "h"},
        "worker": {"tracker_user_id": "u-ann", "name": "Ann Lee"},
        "time_zone": "UTC", "work_date": "2026-03-02", "duration_secs": 36000,
        "project": {"id": "p-acme-web", "name": "Acme website"},
        "billable": true, "rate": {"amount": HUGE, "currency": "USD"},
        "approval": "approved", "origin": "import"
    }))
    .unwrap();
    let rate = entry.rate.clone().unwrap();
    let mut st = EntryState::new(entry, chrono::Utc::now());
    st.set_status(Status::Posted, st.updated_at);
    st.records = vec![RecordRef {
        id: "legacy-1".into(),
        sync_token: "0".into(),
        tier: "regular".into(),
    }];
    let line = PostingLine {
        tier: "regular".into(),
        party: Party::Employee { id: "E-100".into() },
        txn_date: st.entry.work_date,
        minutes: 600,
        customer: Some("C-ACME".into()),
        service_item: Some("SVC-DEV".into()),
        class: None,
        department: None,
        payroll_item: Some("PI-REG".into()),
        account: "4000-services".into(),
        billable: true,
        hourly_rate: Some(Money::new(rate.amount, rate.currency)),
        original_rate: None,
        fx_rate: None,
        fx_date: None,
        description: "legacy".into(),
    };
    // Twice the same line: hours × rate overflows, and so does their sum.
    st.posted_lines = vec![line.clone(), line];
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(store.put(&st))
        .unwrap();
}

#[test]
fn an_overflowing_rate_is_an_exception_and_every_report_still_answers() {
    let d = prepare(&[], &[], "");
    secrets(
        d.path(),
        &format!("toggl_webhook_secret = \"{TOGGL}\"\nclockify_webhook_secret = \"{CLOCKIFY}\"\n"),
    );
    seed_poisoned_posted_entry(d.path());

    // An import with the largest Decimal as its rate: an exception, with a
    // bookkeeper's sentence.
    let csv = d.path().join("huge.csv");
    std::fs::write(
        &csv,
        format!(
            "entry_id,updated_at,user_id,date,duration,project_id,billable,rate,currency,approval\n\
             huge-1,2026-03-03T18:00:00Z,u-ann,2026-03-03,2:00,p-acme-web,true,{HUGE},USD,approved\n\
             neg-1,2026-03-03T18:00:00Z,u-ann,2026-03-03,1:00,p-acme-web,true,-150,USD,approved\n"
        ),
    )
    .unwrap();
    let o = timepost(
        d.path(),
        &["ingest", "--source", "csv", csv.to_str().unwrap(), "--json"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    // Exceptions are parked with their reason (checked below).
    assert_eq!(v["dead_letters"], 2, "{v}");

    let srv = Server::start(d.path());
    // A signed Clockify delivery: hourlyRate in cents, the largest Decimal.
    let body = serde_json::to_vec(&json!({
        "id": "clk-huge", "workspaceId": "ws-1", "userId": "u-ann",
        "description": "Overflow", "billable": true, "projectId": "p-acme-web",
        "timeInterval": {"start": "2026-03-04T16:00:00Z", "end": "2026-03-04T18:00:00Z"},
        "hourlyRate": {"amount": HUGE, "currency": "USD"}
    }))
    .unwrap();
    let (st, b) = srv.request(
        "POST",
        "/webhooks/clockify",
        &[
            ("Clockify-Signature", CLOCKIFY),
            ("Clockify-Webhook-Event-Type", "NEW_TIME_ENTRY"),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(st, 202, "{b}");
    for key in [
        "clockify:ws-1:clk-huge",
        "csv:default:huge-1",
        "csv:default:neg-1",
    ] {
        let v = wait_for(&srv, key, |v| v["status"] == "exception");
        assert_eq!(v["reason"]["code"], "RATE_OUT_OF_BOUNDS", "{v}");
        let msg = v["reason"]["message"].as_str().unwrap();
        assert!(
            msg.contains("hourly rate") && msg.contains("2026-03-0"),
            "{msg}"
        );
    }

    // Every report answers, the poisoned legacy entry included.
    let (st, summary) = get(&srv, "viewer", "/api/report");
    assert_eq!(st, 200, "the summary answers too: {summary}");
    let s: Value = serde_json::from_str(&summary).unwrap();
    assert!(
        s["kpis"]["amount_overflows"]
            .as_str()
            .is_some_and(|n| n != "0"),
        "the summary says some amounts did not fit: {}",
        s["kpis"]
    );
    let (st, body) = get(&srv, "viewer", "/api/report?full=true");
    assert_eq!(st, 200, "{body}");
    let r: Value = serde_json::from_str(&body).unwrap();
    assert!(
        r["kpis"]["amount_overflows"]
            .as_str()
            .is_some_and(|n| n != "0"),
        "the report says some amounts did not fit: {}",
        r["kpis"]
    );
    assert_eq!(r["reconciliation"]["agrees"], false);
    let codes: Vec<&str> = r["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["reason"]["code"].as_str())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "RATE_OUT_OF_BOUNDS").count(),
        3,
        "{codes:?}"
    );
    for path in [
        "/console",
        "/console/hours-by-project.csv",
        "/console/exceptions.csv",
        "/console/exceptions",
    ] {
        let (st, body) = get(&srv, "viewer", path);
        assert_eq!(st, 200, "{path}: {body}");
    }
    let (_, csv) = get(&srv, "viewer", "/console/exceptions.csv");
    assert!(csv.contains("RATE_OUT_OF_BOUNDS"), "{csv}");
    let (status, _) = srv.stop();
    assert!(status.success());

    let o = timepost(d.path(), &["status"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("RATE_OUT_OF_BOUNDS"), "{out}");
    let o = timepost(d.path(), &["status", "--json"]);
    assert!(o.status.success(), "{}", text(&o).1);
    let _: Value = serde_json::from_slice(&o.stdout).unwrap();
}

/// The header block's value of `name` (case-insensitive), if any.
fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn set_cookies(head: &str) -> Vec<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// GET the sign-in form: its CSRF cookie (`tp_login=…`), its hidden token
/// and the header block.
fn login_form(srv: &Server, headers: &[(&str, &str)]) -> (String, String, String) {
    let (st, head, page) = raw(&srv.addr, "GET", "/console/login", headers, b"");
    assert_eq!(st, 200, "{page}");
    let cookie = set_cookies(&head)
        .into_iter()
        .find(|c| c.starts_with("tp_login="))
        .expect("the sign-in form sets its CSRF cookie");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF field")
        .to_string();
    (cookie, csrf, head)
}

fn post_login(
    srv: &Server,
    cookie: Option<&str>,
    body: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    headers.extend_from_slice(extra);
    let (st, head, _) = raw(
        &srv.addr,
        "POST",
        "/console/login",
        &headers,
        body.as_bytes(),
    );
    (st, head)
}

#[test]
fn console_responses_carry_hardening_headers_and_sign_in_needs_its_csrf_token() {
    let d = prepare(&[], &[], "");
    let srv = Server::start(d.path());
    let admin = common::console_kit::token("admin");

    // Headers on a page, an API answer and a refusal.
    let (_, _, head) = login_form(&srv, &[]);
    let auth = bearer("viewer");
    let (_, api_head, _) = raw(
        &srv.addr,
        "GET",
        "/api/report",
        &[("Authorization", &auth)],
        b"",
    );
    let (_, page_head, page) = raw(
        &srv.addr,
        "GET",
        "/console",
        &[("Authorization", &auth)],
        b"",
    );
    let (st, denied_head, _) = raw(&srv.addr, "GET", "/console/exceptions", &[], b"");
    assert_eq!(st, 401);
    for h in [&head, &api_head, &page_head, &denied_head] {
        let csp = header_value(h, "content-security-policy").expect("a CSP");
        for directive in [
            "default-src 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{csp} lacks {directive}");
        }
        assert!(
            !csp.contains("script-src"),
            "no script source is allowed: {csp}"
        );
        assert_eq!(
            header_value(h, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            header_value(h, "referrer-policy").as_deref(),
            Some("no-referrer")
        );
    }
    assert!(!page.contains("<script"), "the console needs no script");

    // Sign-in without the form's token, with a mismatched one, or posted
    // from another site: refused, no session.
    let (cookie, csrf, _) = login_form(&srv, &[]);
    for (c, body, extra) in [
        (None, format!("token={admin}"), vec![]),
        (Some(cookie.as_str()), format!("token={admin}"), vec![]),
        (None, format!("csrf={csrf}&token={admin}"), vec![]),
        (
            Some(cookie.as_str()),
            format!("csrf={csrf}x&token={admin}"),
            vec![],
        ),
        (
            Some(cookie.as_str()),
            format!("csrf={csrf}&token={admin}"),
            vec![("Sec-Fetch-Site", "cross-site")],
        ),
    ] {
        let (st, head) = post_login(&srv, c, &body, &extra);
        assert_eq!(st, 403, "{body} {extra:?}");
        assert!(
            set_cookies(&head)
                .iter()
                .all(|c| !c.starts_with("tp_session=")),
            "{head}"
        );
    }
    // A token minted by another server is refused too.
    let other_dir = prepare(&[], &[], "");
    let other_srv = Server::start(other_dir.path());
    let (foreign_cookie, foreign_csrf, _) = login_form(&other_srv, &[]);
    let (st, _) = post_login(
        &srv,
        Some(&foreign_cookie),
        &format!("csrf={foreign_csrf}&token={admin}"),
        &[],
    );
    assert_eq!(st, 403);

    // The real form signs in; over plain HTTP the cookie is not Secure, and
    // a forwarded-proto header is not believed unless configured.
    let (st, head) = post_login(
        &srv,
        Some(&cookie),
        &format!("csrf={csrf}&token={admin}"),
        &[
            ("Sec-Fetch-Site", "same-origin"),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    assert_eq!(st, 303, "{head}");
    let session = set_cookies(&head)
        .into_iter()
        .find(|c| c.starts_with("tp_session="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    assert!(!session.contains("Secure"), "{session}");
}

#[test]
fn cookies_are_secure_behind_a_configured_https_proxy() {
    let d = prepare(
        &[],
        &[(
            "[rules]\n",
            "[console]\ntrust_forwarded_proto = true\n\n[rules]\n",
        )],
        "",
    );
    let srv = Server::start(d.path());
    let admin = common::console_kit::token("admin");
    let https = [("X-Forwarded-Proto", "https")];

    let (cookie, csrf, head) = login_form(&srv, &https);
    assert!(cookie.contains("Secure"), "{head}");
    let (st, head) = post_login(
        &srv,
        Some(&cookie),
        &format!("csrf={csrf}&token={admin}"),
        &https,
    );
    assert_eq!(st, 303, "{head}");
    let session = set_cookies(&head)
        .into_iter()
        .find(|c| c.starts_with("tp_session="))
        .unwrap();
    assert!(session.contains("; Secure"), "{session}");

    // Straight to the server over plain HTTP: not Secure.
    let (cookie, csrf, _) = login_form(&srv, &[]);
    assert!(!cookie.contains("Secure"));
    let (st, head) = post_login(
        &srv,
        Some(&cookie),
        &format!("csrf={csrf}&token={admin}"),
        &[],
    );
    assert_eq!(st, 303);
    assert!(
        set_cookies(&head).iter().all(|c| !c.contains("Secure")),
        "{head}"
    );
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[test]
fn store_files_are_private_and_the_admin_token_is_never_printed() {
    let d = workdir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(d.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        for l in lines.by_ref() {
            let l = l.unwrap();
            banner.push_str(&l);
            banner.push('\n');
            if l.contains("Ctrl-C") {
                break;
            }
        }
        let token = common::admin_token(d.path()).expect("a token in the secrets file");
        assert!(token.starts_with("tpa_") && token.len() > 40);
        assert!(!banner.contains(&token), "the token is printed:\n{banner}");
        assert!(!banner.contains("tpa_"), "{banner}");
        assert!(
            banner.contains(".timepost/secrets.toml") && banner.contains("admin_token"),
            "the banner says where the token is:\n{banner}"
        );
        let dir = d.path().join(".timepost");
        let db = dir.join("timepost.sqlite");
        assert_eq!(mode(&dir), 0o700, "store directory");
        assert_eq!(mode(&db), 0o600, "store file");
        for companion in ["timepost.sqlite-wal", "timepost.sqlite-shm"] {
            let p = dir.join(companion);
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{companion}");
            }
        }
        assert!(dir.join("timepost.sqlite-wal").exists(), "WAL mode");
        assert_eq!(mode(&dir.join("secrets.toml")), 0o600);
        let _ = child.kill();
        let _ = child.wait();
    }

    // A store made world-readable by hand is narrowed at the next open.
    use std::os::unix::fs::PermissionsExt;
    let db = d.path().join(".timepost/timepost.sqlite");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = timepost(d.path(), &["status"]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(mode(&db), 0o600);
}

/// Overwrite every page of the store after the first with garbage.
fn damage(db: &Path, from: u64) {
    use std::io::{Seek, SeekFrom};
    let len = std::fs::metadata(db).unwrap().len();
    assert!(len > from, "the store has pages to damage");
    let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    f.seek(SeekFrom::Start(from)).unwrap();
    let garbage: Vec<u8> = (0..len - from).map(|i| (i * 7 + 13) as u8).collect();
    f.write_all(&garbage).unwrap();
    f.sync_all().unwrap();
}

/// A work directory whose store holds the sandbox's mappings, and the
/// store file's path.
fn store_with_mappings() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = workdir();
    let o = timepost(
        d.path(),
        &[
            "mappings",
            "import",
            &format!("{}/mappings.csv", common::SANDBOX),
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let db = d.path().join(".timepost/timepost.sqlite");
    (d, db)
}

#[test]
fn a_damaged_store_is_refused_with_its_path() {
    let (d, db) = store_with_mappings();
    // Everything into the file itself, so damaging its pages is damage.
    {
        let store = timepost::local::SqliteStore::open(&db).unwrap();
        store
            .lock()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    damage(&db, 4096);
    for args in [&["status"][..], &["serve", "--bind", "127.0.0.1:0"]] {
        let o = timepost(d.path(), args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {out}{err}");
        assert!(
            err.contains("timepost.sqlite") && err.contains("damaged"),
            "{args:?}: {err}"
        );
        assert!(!out.contains("listening"), "{out}");
    }
    // Even the header page gone: the same answer.
    damage(&db, 0);
    let o = timepost(d.path(), &["status"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("timepost.sqlite") && err.contains("damaged"),
        "{err}"
    );
}

/// A store larger than the whole-file check at every open
/// (`WHOLE_CHECK_BYTES`) is still checked whole before `serve` takes in
/// any work.
#[test]
fn a_damaged_large_store_is_refused_by_serve() {
    let (d, db) = store_with_mappings();
    {
        let store = timepost::local::SqliteStore::open(&db).unwrap();
        let conn = store.lock();
        conn.execute_batch("CREATE TABLE ballast(b BLOB);").unwrap();
        let mb = (timepost::local::sqlite::WHOLE_CHECK_BYTES >> 20) + 8;
        for _ in 0..mb {
            conn.execute("INSERT INTO ballast VALUES (zeroblob(1048576))", [])
                .unwrap();
        }
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    assert!(std::fs::metadata(&db).unwrap().len() > timepost::local::sqlite::WHOLE_CHECK_BYTES);
    // Only the ballast's pages, at the end of the file: what a command that
    // never reads them would not notice.
    let len = std::fs::metadata(&db).unwrap().len();
    damage(&db, len - (4 << 20));
    let o = serve_refusing(d.path());
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("timepost.sqlite") && err.contains("damaged"),
        "{err}"
    );
    assert!(!out.contains("listening"), "{out}");
}

#[cfg(unix)]
#[test]
fn a_read_only_store_names_its_path() {
    use std::os::unix::fs::PermissionsExt;
    let (d, db) = store_with_mappings();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
    if std::fs::OpenOptions::new().write(true).open(&db).is_ok() {
        eprintln!(
            "running with privileges that ignore file modes; read-only case not testable here"
        );
        return;
    }
    let o = timepost(d.path(), &["status"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("timepost.sqlite") && err.contains("read-only"),
        "{err}"
    );
}

#[test]
fn oversized_fields_are_refused_naming_row_and_field() {
    let d = workdir();
    let head = "entry_id,updated_at,user_id,user_name,date,duration,notes\n";
    let row = |id: &str, name: &str, notes: &str| {
        format!("{id},2026-03-03T18:00:00Z,u-ann,{name},2026-03-03,1:00,{notes}\n")
    };
    let at_cap = d.path().join("at-cap.csv");
    std::fs::write(
        &at_cap,
        format!("{head}{}", row("ok-1", &"n".repeat(255), &"x".repeat(4000))),
    )
    .unwrap();
    let o = timepost(
        d.path(),
        &["ingest", "--source", "csv", at_cap.to_str().unwrap()],
    );
    assert!(o.status.success(), "at the caps: {}", text(&o).1);

    for (file, body, field) in [
        (
            "notes.csv",
            format!(
                "{head}{}{}",
                row("a", "Ann", "short"),
                row("b", "Ann", &"x".repeat(4001))
            ),
            "`notes`",
        ),
        (
            "name.csv",
            format!("{head}{}", row("c", &"n".repeat(256), "short")),
            "`user_name`",
        ),
    ] {
        let p = d.path().join(file);
        std::fs::write(&p, body).unwrap();
        let o = timepost(
            d.path(),
            &["ingest", "--source", "csv", p.to_str().unwrap()],
        );
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        let line = if file == "notes.csv" { "at 3" } else { "at 2" };
        assert!(
            err.contains(file) && err.contains(line) && err.contains(field.trim_matches('`')),
            "{err}"
        );
        assert!(err.contains("characters long"), "{err}");
    }
}

#[test]
fn oversized_webhook_fields_and_bodies_are_refused() {
    let d = prepare(&[], &[], "");
    let srv = Server::start(d.path());
    // A Toggl delivery whose description is one character over the cap.
    let t = Toggl::new(9101);
    let at = "2026-03-03T18:00:05Z";
    let body = serde_json::to_vec(&json!({
        "event_id": 9101, "created_at": at, "creator_id": 7, "subscription_id": 42, "timestamp": at,
        "metadata": {"action": "created", "model": "time_entry", "event_user_id": "101", "workspace_id": "555",
                     "time_entry_id": "9101", "path": "/time_entries", "request_type": "POST"},
        "payload": {"id": t.id, "workspace_id": 555, "user_id": 101, "project_id": 9001, "task_id": null,
                    "billable": false, "start": "2026-03-03T17:00:00Z", "stop": "2026-03-03T18:00:00Z",
                    "duration": 3600, "description": "x".repeat(4001), "tags": [], "tag_ids": [],
                    "at": at, "server_deleted_at": null, "duronly": false}
    }))
    .unwrap();
    let sig = timepost::sources::signature::sign_toggl(&body, TOGGL.as_bytes());
    let (st, b) = srv.request(
        "POST",
        "/webhooks/toggl",
        &[("X-Webhook-Signature-256", &sig)],
        &body,
    );
    assert_eq!(st, 400, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["field"], "payload.description", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("4001 characters"),
        "{v}"
    );

    // A 100 MB body is refused from its declared length, before a byte of
    // it is sent.
    let started = Instant::now();
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!(
            "POST /webhooks/toggl HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nX-Webhook-Signature-256: {sig}\r\n\r\n",
            100 * 1024 * 1024
        )
        .as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// An entry key in a URL path: every byte but letters, digits, `-` `.`
/// `_` percent-encoded (so the key's own `%3A` travels as `%253A`).
fn key_path(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Workspace `ws:x` + id `y` and workspace `ws` + id `x:y` joined to the
/// same text when key parts were not escaped, and the second overwrote the
/// first. Imported from a file and delivered by a signed webhook, they are
/// two entries, both posted, each reachable by its own key in a URL.
#[test]
fn entries_whose_identities_collided_are_stored_and_posted_as_two() {
    let d = prepare(&[], &[], "");
    secrets(
        d.path(),
        &format!("toggl_webhook_secret = \"{TOGGL}\"\nclockify_webhook_secret = \"{CLOCKIFY}\"\n"),
    );
    let csv = d.path().join("colliding.csv");
    std::fs::write(
        &csv,
        "entry_id,workspace,updated_at,user_id,date,duration,project_id,billable,rate,currency,approval\n\
         y,ws:x,2026-03-03T18:00:00Z,u-ann,2026-03-03,2:00,p-acme-web,true,150,USD,approved\n\
         x:y,ws,2026-03-03T18:00:00Z,u-ann,2026-03-04,3:00,p-acme-web,true,150,USD,approved\n",
    )
    .unwrap();
    let o = timepost(
        d.path(),
        &["ingest", "--source", "csv", csv.to_str().unwrap(), "--json"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["posted"], 2, "{v}");

    let srv = Server::start(d.path());
    let deliver = |workspace: &str, id: &str, day: &str| {
        let body = serde_json::to_vec(&json!({
            "id": id, "workspaceId": workspace, "userId": "u-ann",
            "description": "Colliding ids", "billable": true, "projectId": "p-acme-web",
            "timeInterval": {"start": format!("{day}T16:00:00Z"), "end": format!("{day}T18:00:00Z")},
            "hourlyRate": {"amount": 15000, "currency": "USD"}
        }))
        .unwrap();
        let (st, b) = srv.request(
            "POST",
            "/webhooks/clockify",
            &[
                ("Clockify-Signature", CLOCKIFY),
                ("Clockify-Webhook-Event-Type", "NEW_TIME_ENTRY"),
                ("Content-Type", "application/json"),
            ],
            &body,
        );
        assert_eq!(st, 202, "{b}");
    };
    deliver("cw:x", "y", "2026-03-05");
    deliver("cw", "x:y", "2026-03-06");
    let pairs = [
        ("csv:ws%3Ax:y", "ws:x", "y"),
        ("csv:ws:x%3Ay", "ws", "x:y"),
        ("clockify:cw%3Ax:y", "cw:x", "y"),
        ("clockify:cw:x%3Ay", "cw", "x:y"),
    ];
    for (key, workspace, id) in pairs {
        let path = format!("/api/entries/{}", key_path(key));
        let start = Instant::now();
        let v = loop {
            let (st, body) = get(&srv, "admin", &path);
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if st == 200 && v["status"] != "awaiting_approval" && v["status"] != Value::Null {
                break v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{key}: {st} {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(v["entry"]["key"]["workspace"], workspace, "{v}");
        assert_eq!(v["entry"]["key"]["id"], id, "{v}");
        // The console's detail page of each is its own.
        let (st, page) = get(
            &srv,
            "viewer",
            &format!("/console/exceptions/{}", key_path(key)),
        );
        assert_eq!(st, 200, "{key}: {page}");
    }
    common::console::wait_queue_empty(&srv);
    for (key, _, _) in pairs {
        let (_, body) = get(&srv, "admin", &format!("/api/entries/{}", key_path(key)));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "posted", "{key}: {v}");
    }
    let (st, body) = get(&srv, "viewer", "/api/report");
    assert_eq!(st, 200, "{body}");
    let (status, _) = srv.stop();
    assert!(status.success());
}

/// `timepost serve` with its log (stderr) written to `log`.
fn serve_logging(dir: &Path, log: &Path) -> Server {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("TIMEPOST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.rsplit("http://").next().unwrap().trim().to_string();
    for l in lines.by_ref() {
        if l.unwrap().contains("Ctrl-C") {
            break;
        }
    }
    Server {
        child,
        addr,
        token: None,
        lines,
    }
}

/// Failed bearer tokens and sign-ins from one client count together: after
/// five, the next attempt is answered 429 with `Retry-After` before its
/// token is looked at (a valid one too), for a wait that doubles with each
/// further failure; once the wait is over a valid token works again. The
/// log says what engaged and never holds a token tried.
#[test]
fn failed_sign_ins_and_bearer_tokens_are_throttled_with_backoff() {
    let d = prepare(&[], &[], "");
    let log = d.path().join("serve.log");
    let srv = serve_logging(d.path(), &log);
    let bad = |n: usize| format!("Bearer wrong-guess-{n}-0123456789abcdef");
    for n in 0..4 {
        let (st, body) = get_as_raw(&srv, &bad(n));
        assert_eq!(st, 401, "{body}");
    }
    // The fifth failure is a sign-in.
    let (cookie, csrf, _) = login_form(&srv, &[]);
    let cookie = cookie.split(';').next().unwrap().to_string();
    let (st, _) = post_login(
        &srv,
        Some(&cookie),
        &format!("csrf={csrf}&token=wrong-sign-in-0123456789abcdef"),
        &[],
    );
    assert_eq!(st, 401);
    // Now even a good token waits, in the API and in the sign-in form.
    let (st, head, body) = raw(
        &srv.addr,
        "GET",
        "/api/report",
        &[("Authorization", &bearer("viewer"))],
        b"",
    );
    assert_eq!(st, 429, "{body}");
    let wait: u64 = header_value(&head, "retry-after").unwrap().parse().unwrap();
    assert_eq!(wait, 1);
    assert!(body.contains("too many failed"), "{body}");
    let (st, head) = post_login(
        &srv,
        Some(&cookie),
        &format!("csrf={csrf}&token={}", common::console::token("viewer")),
        &[],
    );
    assert_eq!(st, 429);
    assert!(header_value(&head, "retry-after").is_some(), "{head}");

    // Released after the wait.
    std::thread::sleep(Duration::from_millis(1100));
    let (st, body) = get(&srv, "viewer", "/api/report");
    assert_eq!(st, 200, "{body}");
    // One more failure: twice the wait.
    let (st, _) = get_as_raw(&srv, &bad(9));
    assert_eq!(st, 401);
    let (st, head, _) = raw(
        &srv.addr,
        "GET",
        "/api/report",
        &[("Authorization", &bearer("viewer"))],
        b"",
    );
    assert_eq!(st, 429);
    assert_eq!(header_value(&head, "retry-after").as_deref(), Some("2"));
    // A signed-in session is not a token guess: it is never throttled.
    srv.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("too many failed attempts"), "{log}");
    assert!(log.contains("client 127.0.0.1"), "{log}");
    for n in [0, 1, 2, 3, 9] {
        assert!(
            !log.contains(&format!("wrong-guess-{n}")),
            "a token in the log"
        );
    }
    assert!(!log.contains("wrong-sign-in"), "a token in the log");
}

fn get_as_raw(srv: &Server, auth: &str) -> (u16, String) {
    srv.request("GET", "/api/report", &[("Authorization", auth)], b"")
}

/// A weak token is refused wherever timepost sees one: hashing it for a
/// user, or as the admin token at start; `token new` makes a strong one
/// whose keyed hash signs in. A copy of `timepost.toml` holds only that
/// keyed hash: with another server secret (another machine, the copy
/// alone) the same token does not check out.
#[test]
fn weak_tokens_are_refused_and_a_copied_config_cannot_check_a_token() {
    let d = workdir();
    // Hashing a weak token for a user.
    let mut child = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(d.path())
        .args(["token", "hash", "--user", "ann", "--role", "viewer"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"password123\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("at least 24 characters") && err.contains("timepost token new"),
        "{err}"
    );

    // A weak admin token: serve refuses to start, naming the file.
    secrets(d.path(), "admin_token = \"admin\"\n");
    let o = timepost(d.path(), &["serve", "--bind", "127.0.0.1:0"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("admin_token")
            && err.contains("secrets.toml")
            && err.contains("timepost token new"),
        "{err}"
    );
    secrets(d.path(), "");

    // A new token for a user: shown once, kept as a keyed hash.
    let o = timepost(
        d.path(),
        &["token", "new", "--user", "ann", "--role", "viewer"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let token = out.lines().next().unwrap().trim().to_string();
    assert!(token.starts_with("tpu_") && token.len() > 60, "{out}");
    let block = out[out.find("[[console.users]]").expect("the lines to add")..].to_string();
    assert!(
        block.contains("token_hmac = \"") && !block.contains(&token),
        "{block}"
    );
    let hmac = block
        .split("token_hmac = \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    assert_ne!(
        hmac,
        timepost_web::auth::sha256_hex(&token),
        "keyed, not a plain SHA-256"
    );
    let secrets_text = std::fs::read_to_string(d.path().join(".timepost/secrets.toml")).unwrap();
    assert!(
        secrets_text.contains("token_key"),
        "the key is in the secrets file"
    );
    let cfg = std::fs::read_to_string(d.path().join("timepost.toml")).unwrap() + &block + "\n";
    std::fs::write(d.path().join("timepost.toml"), &cfg).unwrap();
    let key = secrets_text
        .lines()
        .find_map(|l| l.strip_prefix("token_key = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert_eq!(key.len(), 64, "{secrets_text}");
    assert!(!cfg.contains(&key), "the key never goes into timepost.toml");
    assert_eq!(hmac, timepost_web::tokens::hmac_hex(&key, &token));

    let srv = Server::start(d.path());
    let auth = format!("Bearer {token}");
    let (st, body) = srv.request("GET", "/api/report", &[("Authorization", &auth)], b"");
    assert_eq!(st, 200, "{body}");
    srv.stop();

    // The same timepost.toml with another server secret: the token is
    // not recognised.
    let copy = workdir();
    std::fs::write(copy.path().join("timepost.toml"), &cfg).unwrap();
    let srv = Server::start(copy.path());
    let (st, _) = srv.request("GET", "/api/report", &[("Authorization", &auth)], b"");
    assert_eq!(st, 401);
    srv.stop();
}

/// A store written before keys were escaped (an id holding `:` stored
/// under `csv:legacy:a:1`): `timepost migrate-keys` says it re-keyed the
/// entry, `status` finds it, and a second run has nothing to do.
#[test]
fn migrate_keys_re_keys_a_store_written_the_old_way() {
    use timepost::ports::EntryStore;
    let d = workdir();
    let db = d.path().join(".timepost/timepost.sqlite");
    {
        let store = timepost::local::SqliteStore::open(&db).unwrap();
        let entry: timepost::model::NormalisedEntry = serde_json::from_value(json!({
            "key": {"source": "csv", "workspace": "legacy", "id": "a:1"},
            "version": {"updated_at": "2026-03-02T18:00:00Z", "content_hash": "h"},
            "worker": {"tracker_user_id": "u-ann", "name": "Ann Lee"},
            "time_zone": "UTC", "work_date": "2026-03-02", "duration_secs": 3600,
            "billable": false, "approval": "approved", "origin": "import"
        }))
        .unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(store.put(&timepost::state::EntryState::new(entry, chrono::Utc::now())))
            .unwrap();
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE entries SET key = 'csv:legacy:a:1' WHERE key = 'csv:legacy:a%3A1'",
        [],
    )
    .unwrap();
    conn.pragma_update(None, "user_version", 0).unwrap();
    drop(conn);

    let o = timepost(d.path(), &["migrate-keys"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("1 entry re-keyed"), "{out}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let key: String = conn
        .query_row("SELECT key FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(key, "csv:legacy:a%3A1");
    drop(conn);
    let o = timepost(d.path(), &["migrate-keys"]);
    assert!(text(&o).0.contains("0 entries re-keyed"), "{}", text(&o).0);
}
