//! The console and the role checks of a real `timepost serve`: the RBAC
//! matrix over every guarded route and role, sign-in sessions and CSRF,
//! redrive through the exceptions page posting exactly once, discard with a
//! required reason, and the audit log.

use crate::common;

use common::console::*;
use common::Server;
use serde_json::Value;
use timepost_web::auth::ROUTES;

/// A signed-in browser: the session cookie and the page's CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// The sign-in form's CSRF cookie (`tp_login=…`) and hidden field value.
fn login_form(srv: &Server) -> (String, String) {
    let (st, head, page) = raw(&srv.addr, "GET", "/console/login", &[], b"");
    assert_eq!(st, 200, "{page}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie: tp_login="))
        .expect("the sign-in form sets its CSRF cookie")
        .split_once(':')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the sign-in form carries a CSRF token")
        .to_string();
    (cookie, csrf)
}

pub fn sign_in(srv: &Server, role: &str) -> Session {
    let (login_cookie, login_csrf) = login_form(srv);
    let form = format!("csrf={login_csrf}&token={}", token(role));
    let (st, head, body) = raw(
        &srv.addr,
        "POST",
        "/console/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &login_cookie),
        ],
        form.as_bytes(),
    );
    assert_eq!(st, 303, "{head}\n{body}");
    let set = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie")
        .to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    let cookie = set
        .split_once(':')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string();
    let (st, _, page) = raw(
        &srv.addr,
        "GET",
        "/console/exceptions",
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(st, 200, "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("every signed-in page carries a CSRF token (sign-out form)")
        .to_string();
    Session { cookie, csrf }
}

fn post_form(srv: &Server, s: &Session, path: &str, form: &str) -> (u16, String, String) {
    raw(
        &srv.addr,
        "POST",
        path,
        &[
            ("Cookie", &s.cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form.as_bytes(),
    )
}

/// The expected matrix, written out independently of the server's table:
/// each guarded route and the roles allowed on it.
const MATRIX: &[(&str, &str, &str)] = &[
    ("GET", "/api/report", "admin manager finance auditor viewer"),
    (
        "GET",
        "/api/entries",
        "admin manager finance auditor viewer",
    ),
    (
        "GET",
        "/api/entries/{key}",
        "admin manager finance auditor viewer",
    ),
    ("POST", "/api/entries/{key}/redrive", "admin finance"),
    ("POST", "/api/entries/{key}/discard", "admin finance"),
    ("GET", "/api/dead-letters", "admin finance auditor"),
    ("POST", "/api/dead-letters/{id}/redrive", "admin finance"),
    (
        "GET",
        "/api/mappings",
        "admin manager finance auditor viewer",
    ),
    ("GET", "/api/mappings/history", "admin finance auditor"),
    (
        "GET",
        "/api/exception-codes",
        "admin manager finance auditor viewer",
    ),
    ("GET", "/api/audit", "admin finance auditor"),
    ("GET", "/console", "admin manager finance auditor viewer"),
    (
        "GET",
        "/console/exceptions",
        "admin manager finance auditor viewer",
    ),
    (
        "GET",
        "/console/exceptions.csv",
        "admin manager finance auditor viewer",
    ),
    (
        "GET",
        "/console/hours-by-project.csv",
        "admin manager finance auditor viewer",
    ),
    ("POST", "/console/exceptions/redrive", "admin finance"),
    ("POST", "/console/exceptions/discard", "admin finance"),
    ("POST", "/console/exceptions/fix-mapping", "admin finance"),
    ("POST", "/console/exceptions/holding", "admin finance"),
    ("POST", "/api/holding", "admin finance"),
    (
        "GET",
        "/console/exceptions/{key}",
        "admin manager finance auditor viewer",
    ),
    (
        "GET",
        "/api/entries/{key}/trace",
        "admin manager finance auditor viewer",
    ),
    (
        "POST",
        "/console/logout",
        "admin manager finance auditor viewer",
    ),
    (
        "GET",
        "/api/approvals",
        "admin manager finance auditor viewer",
    ),
    ("POST", "/api/approvals", "admin manager"),
    (
        "GET",
        "/console/approvals",
        "admin manager finance auditor viewer",
    ),
    ("POST", "/console/approvals", "admin manager"),
    ("POST", "/api/mappings", "admin"),
    ("POST", "/api/mappings/revert", "admin"),
    ("GET", "/console/mappings", "admin manager finance auditor"),
    ("POST", "/console/mappings", "admin"),
    (
        "GET",
        "/console/mappings/history",
        "admin manager finance auditor",
    ),
    ("POST", "/console/mappings/revert", "admin"),
    ("GET", "/api/mappings/preview", "admin finance auditor"),
    ("GET", "/api/mappings/pending", "admin finance auditor"),
    ("GET", "/api/mappings/pending/{id}", "admin finance auditor"),
    ("POST", "/api/mappings/pending/{id}/approve", "admin"),
    ("POST", "/api/mappings/pending/{id}/reject", "admin"),
    ("GET", "/console/mappings/preview", "admin finance auditor"),
    (
        "GET",
        "/console/mappings/pending/{id}",
        "admin finance auditor",
    ),
    ("POST", "/console/mappings/pending/{id}/approve", "admin"),
    ("POST", "/console/mappings/pending/{id}/reject", "admin"),
    ("GET", "/api/reconciliation/runs", "admin finance auditor"),
    (
        "GET",
        "/api/reconciliation/runs/{seq}/breaks",
        "admin finance auditor",
    ),
    (
        "POST",
        "/api/reconciliation/breaks/{id}/resolve",
        "admin finance",
    ),
    ("POST", "/api/reconciliation/run", "admin finance"),
    ("GET", "/api/reconciliation/kpi", "admin finance auditor"),
    ("GET", "/console/reconciliation", "admin finance auditor"),
    (
        "GET",
        "/console/reconciliation.csv",
        "admin finance auditor",
    ),
    ("POST", "/console/reconciliation/resolve", "admin finance"),
    ("POST", "/console/reconciliation/run", "admin finance"),
    ("GET", "/api/archives", "admin finance auditor"),
    ("POST", "/api/archives/verify", "admin finance auditor"),
    ("GET", "/console/archives", "admin finance auditor"),
    ("GET", "/console/archives.csv", "admin finance auditor"),
    ("POST", "/console/archives/verify", "admin finance auditor"),
    (
        "GET",
        "/console/archives/{period}/{revision}/{file}",
        "admin finance auditor",
    ),
];

#[test]
fn rbac_matrix_every_role_on_every_route() {
    // The matrix covers the server's table, route for route.
    assert_eq!(MATRIX.len(), ROUTES.len());
    for (m, p, _) in ROUTES {
        assert!(
            MATRIX.iter().any(|(mm, pp, _)| mm == m && pp == p),
            "{m} {p} is not in the test matrix"
        );
    }
    // Every route is also tried with a wrong token: far more failures than
    // the throttle allows one client by default (that is tested in
    // hardening.rs).
    let d = prepare_with(false, "project,9001,C-ACME,\n", |cfg| {
        cfg + "\n[console]\nfailed_tokens_per_client = 1000\n"
    });
    let srv = Server::start(d.path());
    for (method, pattern, allowed) in MATRIX {
        let path = pattern
            .replace("{key}", "toggl:555:424242")
            .replace("{id}", "no-such-letter")
            .replace("{seq}", "1")
            .replace("{period}", "2026-03")
            .replace("{revision}", "1")
            .replace("{file}", "manifest.json");
        // Without credentials: 401; with a wrong token: 401.
        assert_eq!(
            srv.request(method, &path, &[], b"").0,
            401,
            "{method} {path}"
        );
        assert_eq!(
            srv.request(method, &path, &[("Authorization", "Bearer nope")], b"")
                .0,
            401,
            "{method} {path}"
        );
        for role in ROLES {
            let (st, body) = srv.request(method, &path, &[("Authorization", &bearer(role))], b"");
            if allowed.split(' ').any(|r| r == role) {
                assert!(
                    st != 401 && st != 403 && st < 500,
                    "{role} {method} {path}: {st} {body}"
                );
            } else {
                assert_eq!(st, 403, "{role} {method} {path}: {body}");
                assert!(body.contains(role), "403 names the role: {body}");
            }
        }
    }
    // The admin_token secret is still an admin.
    let admin = format!("Bearer {}", srv.token.clone().unwrap());
    assert_eq!(
        srv.request("GET", "/api/audit", &[("Authorization", &admin)], b"")
            .0,
        200
    );
    // Unknown ids: 404; bad ids: 400 naming the field.
    let (st, body) = srv.request(
        "POST",
        "/api/entries/toggl:555:424242/redrive",
        &[("Authorization", &bearer("finance"))],
        b"",
    );
    assert_eq!(st, 404, "{body}");
    let (st, body) = srv.request(
        "GET",
        "/api/entries/not-a-key",
        &[("Authorization", &bearer("viewer"))],
        b"",
    );
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "key"
    );
    // Approvals: an unknown entry is 404, a bad decision 400 naming it.
    let json_post = |body: &str| {
        srv.request(
            "POST",
            "/api/approvals",
            &[
                ("Authorization", &bearer("manager")),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    };
    let (st, body) = json_post(r#"{"entries":["toggl:555:424242"],"decision":"approve"}"#);
    assert_eq!(st, 404, "{body}");
    let (st, body) = json_post(r#"{"entries":["toggl:555:424242"],"decision":"maybe"}"#);
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "decision"
    );
    let (st, body) = json_post(r#"{"entries":["nope"],"decision":"approve"}"#);
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "entries"
    );
}

#[test]
fn finance_fixes_the_mapping_and_redrives_from_the_page_exactly_once() {
    let (d, srv) = serve();
    let key = toggl_entry(&srv, 7001);
    let v = wait_for(&srv, &key, |v| v["status"] == "exception");
    assert_eq!(v["reason"]["code"], "UNMAPPED_EMPLOYEE");

    let fin = sign_in(&srv, "finance");
    let (_, _, page) = raw(
        &srv.addr,
        "GET",
        "/console/exceptions",
        &[("Cookie", &fin.cookie)],
        b"",
    );
    assert!(page.contains("UNMAPPED_EMPLOYEE"), "{page}");
    assert!(page.contains(&key));
    assert!(page.contains("action=\"/console/exceptions/redrive\""));
    assert!(page.contains("Redrive all of this reason"));
    assert!(!page.contains("<b>work</b>"), "tracker text is escaped");

    // Fix the mapping, then redrive from the page: posted.
    import(d.path(), "project,9001,C-ACME,\nemployee,101,E-100,\n");
    let form = format!("csrf={}&key={key}", fin.csrf);
    let (st, head, body) = post_form(&srv, &fin, "/console/exceptions/redrive", &form);
    assert_eq!(st, 303, "{head}\n{body}");
    let v = wait_for(&srv, &key, |v| v["status"] == "posted");
    assert_eq!(v["records"].as_array().unwrap().len(), 1, "{v}");

    // Redriving again (one, and the whole reason) changes nothing.
    assert_eq!(
        post_form(&srv, &fin, "/console/exceptions/redrive", &form).0,
        303
    );
    let all = format!("csrf={}&code=UNMAPPED_EMPLOYEE", fin.csrf);
    assert_eq!(
        post_form(&srv, &fin, "/console/exceptions/redrive", &all).0,
        303
    );
    wait_queue_empty(&srv);
    let v = entry(&srv, &key);
    assert_eq!(v["status"], "posted");
    assert_eq!(v["records"].as_array().unwrap().len(), 1, "{v}");

    // The sandbox ledger holds exactly one active record for the entry.
    let store =
        timepost::local::SqliteStore::open(&d.path().join(".timepost/timepost.sqlite")).unwrap();
    let n: i64 = store
        .lock()
        .query_row(
            "SELECT COUNT(*) FROM sandbox_records WHERE entry_key = ?1 AND active = 1",
            [&key],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);

    // Each redrive is audited with who did it.
    let (_, body) = srv.request(
        "GET",
        "/api/audit",
        &[("Authorization", &bearer("auditor"))],
        b"",
    );
    let log: Vec<Value> = serde_json::from_str(&body).unwrap();
    let redrives: Vec<_> = log.iter().filter(|r| r["action"] == "redrive").collect();
    assert_eq!(redrives.len(), 2, "{body}"); // the group was empty by then
    assert!(redrives
        .iter()
        .all(|r| r["who"] == "finance-user" && r["role"] == "finance" && r["entry"] == key));
}

#[test]
fn forged_posts_and_viewers_are_refused() {
    let (_d, srv) = serve();
    let key = toggl_entry(&srv, 7002);
    wait_for(&srv, &key, |v| v["status"] == "exception");

    // A signed-in finance user's cookie without the CSRF token (what a
    // forged cross-site form would send): 403, nothing queued or changed.
    let fin = sign_in(&srv, "finance");
    for form in [
        format!("key={key}"),
        format!("csrf=wrong&key={key}"),
        format!("csrf=&key={key}"),
    ] {
        let (st, _, body) = post_form(&srv, &fin, "/console/exceptions/redrive", &form);
        assert_eq!(st, 403, "{form}: {body}");
        assert!(body.contains("CSRF"), "{body}");
        let (st, _, _) = post_form(
            &srv,
            &fin,
            "/console/exceptions/discard",
            &format!("{form}&reason=x"),
        );
        assert_eq!(st, 403);
    }
    assert_eq!(entry(&srv, &key)["status"], "exception");

    // A viewer sees the exception but no action forms, and a POST with the
    // viewer's own valid session and token is still refused by role.
    let viewer = sign_in(&srv, "viewer");
    let (st, _, page) = raw(
        &srv.addr,
        "GET",
        "/console/exceptions",
        &[("Cookie", &viewer.cookie)],
        b"",
    );
    assert_eq!(st, 200);
    assert!(page.contains(&key), "{page}");
    assert!(!page.contains("/console/exceptions/redrive"), "{page}");
    assert!(!page.contains("/console/exceptions/discard"), "{page}");
    // The CSV export lists the same entry with its reason.
    let (st, head, csv) = raw(
        &srv.addr,
        "GET",
        "/console/exceptions.csv",
        &[("Cookie", &viewer.cookie)],
        b"",
    );
    assert_eq!(st, 200);
    assert!(head.contains("text/csv"), "{head}");
    // Every text field is quoted (csv_out); numbers stay bare.
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("\"code\",\"status\",\"entry\",\"worker\",\"date\",\"hours\""));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!("\"UNMAPPED_EMPLOYEE\",\"exception\",\"{key}\",")),
        "{row}"
    );
    let form = format!("csrf={}&key={key}", viewer.csrf);
    let (st, _, body) = post_form(&srv, &viewer, "/console/exceptions/redrive", &form);
    assert_eq!(st, 403, "{body}");
    assert_eq!(entry(&srv, &key)["status"], "exception");

    // Signing out ends the session.
    let (st, _, _) = post_form(
        &srv,
        &viewer,
        "/console/logout",
        &format!("csrf={}", viewer.csrf),
    );
    assert_eq!(st, 303);
    let (st, _, _) = raw(
        &srv.addr,
        "GET",
        "/console/exceptions",
        &[("Cookie", &viewer.cookie)],
        b"",
    );
    assert_eq!(st, 401);

    // A bad token does not sign in.
    let (login_cookie, login_csrf) = login_form(&srv);
    let (st, head, _) = raw(
        &srv.addr,
        "POST",
        "/console/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &login_cookie),
        ],
        format!("csrf={login_csrf}&token=guess").as_bytes(),
    );
    assert_eq!(st, 401);
    assert!(!head.to_ascii_lowercase().contains("set-cookie"));
}

#[test]
fn discard_needs_a_reason_and_is_audited() {
    let (_d, srv) = serve();
    let key = toggl_entry(&srv, 7003);
    wait_for(&srv, &key, |v| v["status"] == "exception");
    let fin = sign_in(&srv, "finance");

    let (st, _, body) = post_form(
        &srv,
        &fin,
        "/console/exceptions/discard",
        &format!("csrf={}&key={key}&reason=", fin.csrf),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("reason"), "{body}");
    let (st, _, body) = post_form(
        &srv,
        &fin,
        "/console/exceptions/discard",
        &format!("csrf={}&key=toggl:555:999999&reason=dup", fin.csrf),
    );
    assert_eq!(st, 404, "{body}");

    let (st, _, body) = post_form(
        &srv,
        &fin,
        "/console/exceptions/discard",
        &format!("csrf={}&key={key}&reason=duplicate+of+7002", fin.csrf),
    );
    assert_eq!(st, 303, "{body}");
    let v = entry(&srv, &key);
    assert_eq!(v["status"], "ignored");
    assert!(
        v["note"].as_str().unwrap().contains("duplicate of 7002"),
        "{v}"
    );
    // Discarded twice: refused, it is no longer an exception.
    let (st, _, _) = post_form(
        &srv,
        &fin,
        "/console/exceptions/discard",
        &format!("csrf={}&key={key}&reason=again", fin.csrf),
    );
    assert_eq!(st, 409);

    // The JSON API needs a reason too.
    let (st, body) = srv.request(
        "POST",
        &format!("/api/entries/{key}/discard"),
        &[
            ("Authorization", &bearer("admin")),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    );
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "reason"
    );

    let (_, body) = srv.request(
        "GET",
        "/api/audit",
        &[("Authorization", &bearer("admin"))],
        b"",
    );
    let log: Vec<Value> = serde_json::from_str(&body).unwrap();
    let d = log
        .iter()
        .find(|r| r["action"] == "discard")
        .expect("audited");
    assert_eq!(d["who"], "finance-user");
    assert_eq!(d["entry"], key);
    assert!(d["detail"].as_str().unwrap().contains("UNMAPPED_EMPLOYEE"));
}

#[test]
fn manager_approves_from_the_page_and_it_posts_once() {
    let (d, srv) = serve_with(true, "project,9001,C-ACME,\nemployee,101,E-100,\n");
    let key = toggl_entry(&srv, 7101);
    wait_for(&srv, &key, |v| v["status"] == "awaiting_approval");

    // Finance sees the backlog but may not act.
    let fin = sign_in(&srv, "finance");
    let (st, _, page) = raw(
        &srv.addr,
        "GET",
        "/console/approvals",
        &[("Cookie", &fin.cookie)],
        b"",
    );
    assert_eq!(st, 200);
    assert!(page.contains(&key), "{page}");
    assert!(!page.contains("Approve selected"), "{page}");
    let (st, _, body) = post_form(
        &srv,
        &fin,
        "/console/approvals",
        &format!("csrf={}&key={key}&decision=approve", fin.csrf),
    );
    assert_eq!(st, 403, "{body}");
    let (st, body) = srv.request(
        "POST",
        "/api/approvals",
        &[
            ("Authorization", &bearer("finance")),
            ("Content-Type", "application/json"),
        ],
        format!(r#"{{"entries":["{key}"],"decision":"approve"}}"#).as_bytes(),
    );
    assert_eq!(st, 403, "{body}");
    assert_eq!(entry(&srv, &key)["status"], "awaiting_approval");

    let mgr = sign_in(&srv, "manager");
    let (st, _, page) = raw(
        &srv.addr,
        "GET",
        "/console/approvals",
        &[("Cookie", &mgr.cookie)],
        b"",
    );
    assert_eq!(st, 200);
    assert!(page.contains("Week of 2026-03-02"), "{page}");
    assert!(page.contains("Approve all of this employee"), "{page}");
    assert!(page.contains("1.00"), "{page}");
    // No decision: 400 naming it; without CSRF: 403.
    let (st, _, body) = post_form(
        &srv,
        &mgr,
        "/console/approvals",
        &format!("csrf={}&key={key}", mgr.csrf),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("decision"), "{body}");
    let (st, _, _) = post_form(
        &srv,
        &mgr,
        "/console/approvals",
        &format!("key={key}&decision=approve"),
    );
    assert_eq!(st, 403);

    let (st, head, body) = post_form(
        &srv,
        &mgr,
        "/console/approvals",
        &format!("csrf={}&key={key}&decision=approve", mgr.csrf),
    );
    assert_eq!(st, 303, "{head}\n{body}");
    let v = wait_for(&srv, &key, |v| v["status"] == "posted");
    assert_eq!(v["records"].as_array().unwrap().len(), 1, "{v}");
    wait_queue_empty(&srv);
    // Approving again is refused: it no longer awaits approval.
    let (st, _, _) = post_form(
        &srv,
        &mgr,
        "/console/approvals",
        &format!("csrf={}&key={key}&decision=approve", mgr.csrf),
    );
    assert_eq!(st, 409);
    assert_eq!(ledger_records(d.path(), &key), 1);

    let (_, body) = srv.request(
        "GET",
        "/api/audit",
        &[("Authorization", &bearer("auditor"))],
        b"",
    );
    let log: Vec<Value> = serde_json::from_str(&body).unwrap();
    let a = log
        .iter()
        .find(|r| r["action"] == "approve")
        .expect("audited");
    assert_eq!(a["who"], "manager-user");
    assert_eq!(a["entry"], key);
}

#[test]
fn admin_edits_and_reverts_a_mapping_and_held_entries_post() {
    let (_d, srv) = serve_with(false, "project,9001,C-ACME,\nemployee,101,E-100,\n");
    // An entry on an unmapped project is held.
    let held = toggl_entry_on(&srv, 7201, 9002);
    wait_for(&srv, &held, |v| v["status"] == "held");

    // Finance may read the page but not change a row.
    let fin = sign_in(&srv, "finance");
    let (st, _, page) = raw(
        &srv.addr,
        "GET",
        "/console/mappings",
        &[("Cookie", &fin.cookie)],
        b"",
    );
    assert_eq!(st, 200);
    assert!(page.contains("C-ACME"), "{page}");
    assert!(!page.contains("action=\"/console/mappings\""), "{page}");
    let (st, _, _) = post_form(
        &srv,
        &fin,
        "/console/mappings",
        &format!(
            "csrf={}&table=project&key=9001&target=C-X&reason=x",
            fin.csrf
        ),
    );
    assert_eq!(st, 403);
    let (st, _) = srv.request(
        "POST",
        "/api/mappings",
        &[
            ("Authorization", &bearer("finance")),
            ("Content-Type", "application/json"),
        ],
        br#"{"table":"project","key":"9001","target":"C-X","reason":"x"}"#,
    );
    assert_eq!(st, 403);

    let adm = sign_in(&srv, "admin");
    // A reason is required; a bad table is named.
    let (st, _, body) = post_form(
        &srv,
        &adm,
        "/console/mappings",
        &format!(
            "csrf={}&table=project&key=9001&target=C-NEW&reason=",
            adm.csrf
        ),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("<code>reason</code>"), "{body}");
    let (st, _, body) = post_form(
        &srv,
        &adm,
        "/console/mappings",
        &format!(
            "csrf={}&table=projects&key=9001&target=C&reason=r",
            adm.csrf
        ),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("<code>table</code>"), "{body}");

    // Mapping the held entry's project posts it by itself.
    let (st, _, body) = post_form(
        &srv,
        &adm,
        "/console/mappings",
        &format!(
            "csrf={}&table=project&key=9002&target=C-ACME&reason=new+client",
            adm.csrf
        ),
    );
    assert_eq!(st, 303, "{body}");
    wait_for(&srv, &held, |v| v["status"] == "posted");

    // Edit, then revert to the version before the edit.
    let (st, _, body) = post_form(
        &srv,
        &adm,
        "/console/mappings",
        &format!(
            "csrf={}&table=project&key=9001&target=C-NEW&reason=renamed+customer",
            adm.csrf
        ),
    );
    assert_eq!(st, 303, "{body}");
    let current = |srv: &Server| -> String {
        let (_, body) = srv.request(
            "GET",
            "/api/mappings?table=project",
            &[("Authorization", &bearer("viewer"))],
            b"",
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == "9001")
            .map(|r| r["target"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(current(&srv), "C-NEW");
    let (_, body) = srv.request(
        "GET",
        "/api/mappings/history?table=project&key=9001",
        &[("Authorization", &bearer("admin"))],
        b"",
    );
    let hist: Vec<Value> = serde_json::from_str(&body).unwrap();
    let edit = hist.last().unwrap();
    assert_eq!(edit["after"]["target"], "C-NEW");
    let seq = edit["seq"].as_u64().unwrap();

    let (st, _, body) = post_form(
        &srv,
        &adm,
        "/console/mappings/revert",
        &format!("csrf={}&seq={seq}&reason=", adm.csrf),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = srv.request(
        "POST",
        "/api/mappings/revert",
        &[
            ("Authorization", &bearer("admin")),
            ("Content-Type", "application/json"),
        ],
        br#"{"seq": 999999, "reason": "x"}"#,
    );
    assert_eq!(st, 404, "{body}");
    let (st, _, body) = post_form(
        &srv,
        &adm,
        "/console/mappings/revert",
        &format!("csrf={}&seq={seq}&reason=wrong+customer", adm.csrf),
    );
    assert_eq!(st, 303, "{body}");
    assert_eq!(current(&srv), "C-ACME");

    // The history page shows both changes with who and why.
    let (st, _, page) = raw(
        &srv.addr,
        "GET",
        "/console/mappings/history?table=project&key=9001",
        &[("Cookie", &adm.cookie)],
        b"",
    );
    assert_eq!(st, 200);
    assert!(page.contains("renamed customer"), "{page}");
    assert!(
        page.contains(&format!("revert of #{seq}: wrong customer")),
        "{page}"
    );
    assert!(page.contains("C-ACME → C-NEW"), "{page}");
    assert!(page.contains("C-NEW → C-ACME"), "{page}");
    assert!(page.contains("admin-user"), "{page}");
    assert!(page.contains("Revert to this version"), "{page}");

    // Every change is audited.
    let (_, body) = srv.request(
        "GET",
        "/api/audit",
        &[("Authorization", &bearer("auditor"))],
        b"",
    );
    let log: Vec<Value> = serde_json::from_str(&body).unwrap();
    let actions: Vec<_> = log.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "mapping_set").count(),
        2,
        "{body}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "mapping_revert").count(),
        1,
        "{body}"
    );
}

#[test]
fn dashboard_shows_the_sandbox_figures_to_a_viewer() {
    let d = prepare(true, "");
    ingest_sandbox(d.path());
    let srv = Server::start(d.path());
    let (_, body) = srv.request(
        "GET",
        "/api/report?full=true",
        &[("Authorization", &bearer("viewer"))],
        b"",
    );
    let r: Value = serde_json::from_str(&body).unwrap();
    let num = |v: &Value| -> f64 {
        v.as_str()
            .map(|s| s.parse().unwrap())
            .or_else(|| v.as_f64())
            .unwrap()
    };

    let viewer = sign_in(&srv, "viewer");
    let (st, _, page) = raw(
        &srv.addr,
        "GET",
        "/console",
        &[("Cookie", &viewer.cookie)],
        b"",
    );
    assert_eq!(st, 200, "{page}");
    assert!(!page.contains("<script"), "no scripts");
    let posted = r["posted"]["entries"].as_u64().unwrap();
    assert!(posted > 0, "{r}");
    assert!(page.contains(&format!("<b>{posted}</b> posted")), "{page}");
    let awaiting = r["awaiting_approval"].as_array().unwrap().len();
    assert!(awaiting > 0, "the sandbox has pending entries");
    // Without `full`, the summary: the same totals from the aggregates.
    let (_, body) = srv.request(
        "GET",
        "/api/report",
        &[("Authorization", &bearer("viewer"))],
        b"",
    );
    let summary: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        summary["posted"]["entries"], r["posted"]["entries"],
        "{summary}"
    );
    assert_eq!(
        summary["awaiting_approval"]["total"].as_u64(),
        Some(awaiting as u64),
        "{summary}"
    );
    assert!(
        page.contains(&format!("<b id=\"backlog\">{awaiting}</b>")),
        "{page}"
    );
    assert!(page.contains(&format!("{:.2}</b> hours", num(&r["posted"]["hours"]))));
    let projects = r["posted"]["by_project"].as_array().unwrap();
    assert!(!projects.is_empty());
    for g in projects {
        let name = g["name"].as_str().unwrap();
        assert!(page.contains(name), "{name} missing: {page}");
        assert!(page.contains(&format!("{:.2}", num(&g["hours"]))));
    }
    for g in r["posted"]["by_employee"].as_array().unwrap() {
        assert!(page.contains(g["name"].as_str().unwrap()));
    }
    assert!(
        page.contains("style=\"width:100.0%\""),
        "the largest bar is full"
    );
    for k in r["kpis"].as_object().unwrap().keys() {
        assert!(page.contains(k.as_str()), "KPI {k} missing");
    }

    let (st, head, csv) = raw(
        &srv.addr,
        "GET",
        "/console/hours-by-project.csv",
        &[("Cookie", &viewer.cookie)],
        b"",
    );
    assert_eq!(st, 200);
    assert!(head.contains("text/csv"), "{head}");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "\"project\",\"lines\",\"hours\",\"billable\""
    );
    assert_eq!(lines.count(), projects.len(), "{csv}");
    let first = &projects[0];
    assert!(csv.contains(&format!("{:.2}", num(&first["hours"]))));
}

#[test]
fn malformed_api_requests_are_json_errors_naming_the_field() {
    let (_d, srv) = serve();
    let json = [
        ("Authorization", bearer("admin")),
        ("Content-Type", "application/json".to_string()),
    ];
    let json: Vec<(&str, &str)> = json.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("POST", "/api/approvals", "{bad", 400, "body"),
        (
            "POST",
            "/api/approvals",
            r#"{"entries":"x","decision":"approve"}"#,
            400,
            "entries",
        ),
        (
            "POST",
            "/api/approvals",
            r#"{"entries":[1],"decision":"approve"}"#,
            400,
            "entries[0]",
        ),
        ("POST", "/api/mappings", r#"{"table":1}"#, 400, "table"),
        ("POST", "/api/mappings", "[]", 400, "body"),
        (
            "POST",
            "/api/mappings/revert",
            r#"{"seq":-1,"reason":"x"}"#,
            400,
            "seq",
        ),
        (
            "POST",
            "/api/entries/toggl:555:1/discard",
            r#"{"reason":5}"#,
            400,
            "reason",
        ),
        ("GET", "/api/entries?limit=-1", "", 400, "limit"),
        ("GET", "/api/audit?limit=many", "", 400, "limit"),
    ];
    for (method, path, body, status, field) in cases {
        let (st, answer) = srv.request(method, path, &json, body.as_bytes());
        assert_eq!(st, *status, "{method} {path} {body}: {answer}");
        let v: Value = serde_json::from_str(&answer).unwrap_or_else(|_| panic!("JSON: {answer}"));
        assert_eq!(v["field"], *field, "{method} {path} {body}: {answer}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // A body that is not JSON at all: 415, still the API's JSON error.
    let (st, answer) = srv.request(
        "POST",
        "/api/approvals",
        &[
            ("Authorization", &bearer("admin")),
            ("Content-Type", "text/plain"),
        ],
        b"entries",
    );
    assert_eq!(st, 415, "{answer}");
    let v: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(v["field"], "Content-Type");
    // A known path with a method it does not take: 405 naming the methods.
    let (st, head, _) = raw(
        &srv.addr,
        "DELETE",
        "/api/mappings",
        &[("Authorization", &bearer("admin"))],
        b"",
    );
    assert_eq!(st, 405, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("allow: get, post"),
        "{head}"
    );
    assert_eq!(srv.request("DELETE", "/api/nothing", &[], b"").0, 404);
}
