//! The console in a real browser: headless Chromium driven through
//! WebDriver (chromedriver) against a real `timepost serve`. A finance user
//! signs in through the form, reads an exception's plain-language reason and
//! fix hint, has the mapping fixed and redrives it: posted once. A viewer
//! sees no action buttons, and forged POSTs carrying the viewer's session
//! are refused. Full-page screenshots of the dashboard and the exceptions
//! page go to `target/screenshots/` (and `docs/screenshots/` with
//! `UPDATE_SCREENSHOTS=1`).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`scripts/chromium.sh` installs them). Without them a test prints
//! "skipped: ..." and passes, except under `CI=true`, where it fails.

use crate::common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::console::*;
use common::Server;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use timepost::exceptions::ExceptionCode;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

/// How long the browser may take to show what a step expects.
const PATIENCE: Duration = Duration::from_secs(20);

/// None when the browser can run; otherwise why not. Under `CI=true` a
/// missing browser is a failure, never a skip.
fn missing_browser() -> Option<String> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return None;
    }
    let why = format!(
        "{} not installed (run scripts/chromium.sh)",
        missing.join(" and ")
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the browser tests must run in CI: {why}"
    );
    Some(why)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A chromedriver of our own, with one headless Chromium session. Dropping
/// it ends the process group chromedriver leads (chromedriver and the
/// Chromium it started), so a failed test leaves no browser behind.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    base: String,
}

impl Browser {
    async fn start(srv: &Server) -> Browser {
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let driver = cmd.spawn().expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile directory");
        // rustls needs one crypto provider; a second install (another test
        // in this process) is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    "--disable-crash-reporter", "--disable-breakpad",
                    format!("--window-size={WIDTH},{HEIGHT}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let client = loop {
            // Plain HTTP: chromedriver listens on loopback.
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if start.elapsed() < PATIENCE => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session from chromedriver at {url}: {e}"),
            }
        };
        client
            .set_window_size(WIDTH, HEIGHT)
            .await
            .expect("window size");
        Browser {
            client,
            driver,
            _profile: profile,
            base: format!("http://{}", srv.addr),
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no `{selector}` on the page: {e}"))
    }

    async fn text(&self, selector: &str) -> String {
        self.css(selector).await.text().await.expect("element text")
    }

    async fn count(&self, selector: &str) -> usize {
        self.client
            .find_all(Locator::Css(selector))
            .await
            .expect("find_all")
            .len()
    }

    async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .path()
            .to_string()
    }

    /// Wait until the page's `h1` reads `title`.
    async fn on_page(&self, title: &str) {
        let start = Instant::now();
        loop {
            if let Ok(h) = self.client.find(Locator::Css("main h1")).await {
                if h.text().await.is_ok_and(|t| t == title) {
                    return;
                }
            }
            assert!(
                start.elapsed() < PATIENCE,
                "never reached the {title} page; at {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sign in through the form, as a person would.
    async fn sign_in(&self, role: &str) {
        self.goto("/console/login").await;
        self.css("input[name=token]")
            .await
            .send_keys(&token(role))
            .await
            .expect("type the token");
        self.css("form[action='/console/login'] button[type=submit]")
            .await
            .click()
            .await
            .expect("click Sign in");
        self.on_page("Dashboard").await;
        let who = self.text("header .who").await;
        assert_eq!(who, format!("{role}-user · {role}"));
    }

    async fn sign_out(&self) {
        self.css("header form[action='/console/logout'] button")
            .await
            .click()
            .await
            .expect("click Sign out");
        self.on_page("Sign in").await;
    }

    /// Follow a link of the header's navigation.
    async fn nav(&self, label: &str, title: &str) {
        let links = self
            .client
            .find_all(Locator::Css("header a"))
            .await
            .expect("navigation links");
        for a in links {
            if a.text().await.is_ok_and(|t| t == label) {
                a.click().await.expect("click the link");
                self.on_page(title).await;
                return;
            }
        }
        panic!("no `{label}` link in the header");
    }

    /// A POST from the page itself (`fetch`, same origin, the session
    /// cookie attached by the browser); returns the final status.
    async fn fetch_post(&self, path: &str, form: &str) -> u64 {
        let v = self
            .client
            .execute(
                "const [path, body] = arguments;\
                 return fetch(path, {method: 'POST', credentials: 'same-origin',\
                   headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body})\
                   .then(r => r.status);",
                vec![json!(path), json!(form)],
            )
            .await
            .unwrap_or_else(|e| panic!("fetch {path}: {e}"));
        v.as_u64().unwrap_or_else(|| panic!("fetch status: {v}"))
    }

    /// A full-page PNG: the window is made tall enough for the whole
    /// document for the shot (the window is taller than its viewport by the
    /// browser's own frame, measured first), then set back.
    async fn full_page_png(&self) -> Vec<u8> {
        let measure = || async {
            let v = self
                .client
                .execute(
                    "return [window.innerHeight, \
                     Math.ceil(document.documentElement.scrollHeight)];",
                    vec![],
                )
                .await
                .expect("page height");
            let n = |i: usize| v[i].as_u64().expect("a number");
            (n(0), n(1))
        };
        let (viewport, page) = measure().await;
        let (_, window) = self.client.get_window_size().await.expect("window size");
        let frame = window.saturating_sub(viewport);
        let tall = u32::try_from(page.max(u64::from(HEIGHT)) + frame).expect("a sane height");
        self.client
            .set_window_size(WIDTH, tall)
            .await
            .expect("resize");
        let (viewport, page) = measure().await;
        assert!(viewport >= page, "viewport {viewport} < page {page}");
        let png = self.client.screenshot().await.expect("screenshot");
        self.client
            .set_window_size(WIDTH, HEIGHT)
            .await
            .expect("resize");
        png
    }

    /// End the WebDriver session (Chromium exits), then chromedriver.
    async fn close(self) {
        let _ = self.client.clone().close().await;
        drop(self);
    }
}

fn kill_group(child: &mut Child) {
    // The negative id names the process group the child leads.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// The sandbox with an unmapped project made an exception (policy
/// `block`), Toggl user 101 mapped, no approval required.
fn serve_blocking_unmapped_projects() -> (tempfile::TempDir, Server) {
    let d = prepare_with(
        false,
        "project,9001,C-ACME,\nemployee,101,E-100,\n",
        |cfg| {
            assert!(cfg.contains("project = \"hold\""), "sandbox config changed");
            cfg.replace("project = \"hold\"", "project = \"block\"")
        },
    );
    let srv = Server::start(d.path());
    (d, srv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_reads_the_reason_has_the_mapping_fixed_redrives_and_it_posts_once() {
    if let Some(why) = missing_browser() {
        eprintln!("skipped: {why}");
        return;
    }
    let (d, srv) = serve_blocking_unmapped_projects();
    let key = toggl_entry_on(&srv, 7301, 9002);
    let v = wait_for(&srv, &key, |v| v["status"] == "exception");
    assert_eq!(v["reason"]["code"], "UNMAPPED_PROJECT", "{v}");
    let message = v["reason"]["message"]
        .as_str()
        .expect("a reason")
        .to_string();

    let b = Browser::start(&srv).await;
    b.sign_in("finance").await;
    assert_eq!(b.text("[data-status=exception] b").await, "1");
    b.nav("Exceptions", "Exceptions").await;

    // The group names the reason in a bookkeeper's words, with the fix.
    let code = ExceptionCode::UnmappedProject;
    let group = b.text("section#UNMAPPED_PROJECT").await;
    assert!(group.contains(code.title()), "{group}");
    assert!(
        group.contains(&format!("Fix: {}", code.fix_hint())),
        "{group}"
    );
    let row = format!("section#UNMAPPED_PROJECT tr[data-key='{key}']");
    let text = b.text(&row).await;
    assert!(text.contains(&message), "{text}");
    assert!(text.contains("1.00"), "{text}");

    // Finance may read the mappings but not change them: the exceptions
    // page has no inline fix and the mappings page no form for finance, so
    // an admin maps the project there, and finance then redrives.
    b.nav("Mappings", "Mappings").await;
    assert_eq!(b.count("form[action='/console/mappings']").await, 0);
    b.sign_out().await;
    b.sign_in("admin").await;
    b.nav("Mappings", "Mappings").await;
    let form = b
        .client
        .form(Locator::Css("form[action='/console/mappings']"))
        .await
        .expect("the mapping form");
    b.css("form[action='/console/mappings'] select[name=table]")
        .await
        .select_by_label("project")
        .await
        .expect("choose the project table");
    form.set_by_name("key", "9002")
        .await
        .expect("key")
        .set_by_name("target", "C-ACME")
        .await
        .expect("target")
        .set_by_name("reason", "Acme's second project")
        .await
        .expect("reason");
    b.css("form[action='/console/mappings'] button:not([name=remove])")
        .await
        .click()
        .await
        .expect("click Save");
    let notice = b.text("p.notice").await;
    assert!(notice.contains("saved"), "{notice}");
    assert!(b.text("section#project").await.contains("9002"));
    b.sign_out().await;

    // A blocked entry waits for finance: still an exception after the fix.
    assert_eq!(entry(&srv, &key)["status"], "exception");
    b.sign_in("finance").await;
    b.nav("Exceptions", "Exceptions").await;
    b.css(&format!("{row} form.redrive button"))
        .await
        .click()
        .await
        .expect("click Redrive");
    let notice = b.text("p.notice").await;
    assert_eq!(notice, format!("Redrive of {key} queued."));

    let v = wait_for(&srv, &key, |v| v["status"] == "posted");
    assert_eq!(v["records"].as_array().map(Vec::len), Some(1), "{v}");
    wait_queue_empty(&srv);

    // The page shows it: gone from the exceptions, counted as posted.
    b.client.refresh().await.expect("reload");
    b.on_page("Exceptions").await;
    assert_eq!(b.count(&format!("tr[data-key='{key}']")).await, 0);
    assert!(b
        .text("main")
        .await
        .contains("0 entries could not be posted"));
    b.nav("Dashboard", "Dashboard").await;
    assert_eq!(b.text("[data-status=posted] b").await, "1");
    assert_eq!(b.text("[data-status=exception] b").await, "0");
    b.close().await;

    // The books hold it exactly once, and the redrive is audited.
    assert_eq!(ledger_records(d.path(), &key), 1);
    let (_, body) = srv.request(
        "GET",
        "/api/audit",
        &[("Authorization", &bearer("auditor"))],
        b"",
    );
    let log: Vec<Value> = serde_json::from_str(&body).expect("audit JSON");
    assert!(
        log.iter()
            .any(|r| r["action"] == "redrive" && r["who"] == "finance-user" && r["entry"] == key),
        "{body}"
    );
    assert!(
        log.iter()
            .any(|r| r["action"] == "mapping_set" && r["who"] == "admin-user"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_has_no_redrive_and_forged_posts_with_its_session_are_refused() {
    if let Some(why) = missing_browser() {
        eprintln!("skipped: {why}");
        return;
    }
    // Toggl user 101 is not mapped: its entry is an UNMAPPED_EMPLOYEE
    // exception.
    let (_d, srv) = serve();
    let key = toggl_entry(&srv, 7302);
    wait_for(&srv, &key, |v| v["status"] == "exception");

    let b = Browser::start(&srv).await;
    b.sign_in("viewer").await;
    b.nav("Exceptions", "Exceptions").await;
    let row = format!("tr[data-key='{key}']");
    assert!(
        b.text(&row).await.contains("UNMAPPED_EMPLOYEE") || {
            b.text("section#UNMAPPED_EMPLOYEE").await.contains(&key)
        }
    );
    assert_eq!(
        b.count("form.redrive, form.redrive-all, form.discard")
            .await,
        0
    );
    assert_eq!(b.count("button").await, 1, "only Sign out");
    assert!(!b
        .client
        .source()
        .await
        .expect("page source")
        .contains("/console/exceptions/redrive"));

    // The viewer's own CSRF token (from the sign-out form) and session.
    let csrf = b
        .css("header input[name=csrf]")
        .await
        .attr("value")
        .await
        .expect("attr")
        .expect("a CSRF token");
    let cookies = b.client.get_all_cookies().await.expect("cookies");
    let session = cookies
        .iter()
        .find(|c| c.name() == "tp_session")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    let cookie = format!("tp_session={}", session.value());
    let readable = b
        .client
        .execute("return document.cookie;", vec![])
        .await
        .expect("document.cookie");
    assert!(
        !readable.as_str().unwrap_or("").contains("tp_session"),
        "the session cookie is HttpOnly: {readable}"
    );

    // Forged POSTs from the page, with and without the CSRF token: 403.
    let one = format!("key={key}");
    let all = "code=UNMAPPED_EMPLOYEE".to_string();
    for form in [
        one.clone(),
        format!("csrf={csrf}&{one}"),
        all.clone(),
        format!("csrf={csrf}&{all}"),
    ] {
        let st = b.fetch_post("/console/exceptions/redrive", &form).await;
        assert_eq!(st, 403, "{form}");
        let st = b
            .fetch_post(&format!("/api/entries/{key}/redrive"), &form)
            .await;
        assert_eq!(st, 403, "{form}");
    }
    // The same with a raw request carrying the session cookie.
    for form in [one.clone(), format!("csrf={csrf}&{one}")] {
        let (st, _, body) = raw(
            &srv.addr,
            "POST",
            "/console/exceptions/redrive",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form.as_bytes(),
        );
        assert_eq!(st, 403, "{form}: {body}");
        assert!(body.contains("viewer"), "{body}");
    }
    assert_eq!(entry(&srv, &key)["status"], "exception");

    // The control: a finance session's POST is refused without its CSRF
    // token and accepted with it, so the refusals above are the role's.
    b.sign_out().await;
    b.sign_in("finance").await;
    b.nav("Exceptions", "Exceptions").await;
    let fin_csrf = b
        .css("header input[name=csrf]")
        .await
        .attr("value")
        .await
        .expect("attr")
        .expect("a CSRF token");
    assert_eq!(b.fetch_post("/console/exceptions/redrive", &one).await, 403);
    assert_eq!(
        b.fetch_post(
            "/console/exceptions/redrive",
            &format!("csrf={fin_csrf}&{one}")
        )
        .await,
        200,
        "accepted, redirected back to the exceptions page"
    );
    b.close().await;

    wait_queue_empty(&srv);
    let (_, body) = srv.request(
        "GET",
        "/api/audit",
        &[("Authorization", &bearer("auditor"))],
        b"",
    );
    let log: Vec<Value> = serde_json::from_str(&body).expect("audit JSON");
    let redrives: Vec<_> = log.iter().filter(|r| r["action"] == "redrive").collect();
    assert_eq!(redrives.len(), 1, "only finance's: {body}");
    assert_eq!(redrives[0]["who"], "finance-user");
    // Redriven without a fix, it is still the same exception.
    assert_eq!(entry(&srv, &key)["reason"]["code"], "UNMAPPED_EMPLOYEE");
}

fn screenshot_dirs() -> Vec<PathBuf> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut dirs = vec![root.join("target/screenshots")];
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        dirs.push(root.join("docs/screenshots"));
    }
    dirs
}

fn save(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is not a PNG");
    for dir in screenshot_dirs() {
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(name), png).expect("write the screenshot");
        eprintln!("wrote {}", dir.join(name).display());
    }
}

/// The width and height a PNG's header declares.
fn png_size(png: &[u8]) -> (u32, u32) {
    let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (be(16), be(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_the_dashboard_and_exceptions_with_sandbox_data() {
    if let Some(why) = missing_browser() {
        eprintln!("skipped: {why}");
        return;
    }
    // The sandbox's entries as `timepost demo` loads them.
    let d = prepare(true, "");
    ingest_sandbox(d.path());
    let srv = Server::start(d.path());
    wait_queue_empty(&srv);

    let b = Browser::start(&srv).await;
    b.sign_in("finance").await;
    // The dashboard's figures are the sandbox's.
    let posted: usize = b
        .text("[data-status=posted] b")
        .await
        .parse()
        .expect("a count");
    assert!(posted > 0);
    assert!(b.count("td.bar div").await > 1, "hours bars");
    let png = b.full_page_png().await;
    let (w, h) = png_size(&png);
    assert_eq!(w, WIDTH);
    assert!(h >= HEIGHT, "{h}");
    save("dashboard.png", &png);

    b.nav("Exceptions", "Exceptions").await;
    for code in ["UNMAPPED_EMPLOYEE", "UNMAPPED_PROJECT"] {
        assert_eq!(b.count(&format!("section#{code}")).await, 1, "{code}");
    }
    assert!(b.count("form.redrive button").await > 1);
    let png = b.full_page_png().await;
    assert_eq!(png_size(&png).0, WIDTH);
    save("exceptions.png", &png);
    b.close().await;
}

/// `timepost serve` with browser sign-in through the fake OpenID provider
/// (on `localhost`, so it is another site than the console on
/// `127.0.0.1`, as a real provider is): opening the console goes to the
/// provider's sign-in page; finance signs in there and is back on the
/// console with the finance role, opens the exceptions page, is refused an
/// admin-only action, and signs out of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_signs_in_through_the_provider_and_works_with_the_finance_role() {
    use timepost_tests::oidc_fake::{FakeOidc, FakeUser};
    if let Some(why) = missing_browser() {
        eprintln!("skipped: {why}");
        return;
    }
    let fake = FakeOidc::start(
        "console-client",
        &[],
        &[],
        vec![FakeUser {
            username: "fran".into(),
            email: "fran@example.com".into(),
            role: Some("finance".into()),
        }],
    )
    .await;
    let d = prepare_with(false, "project,9001,C-ACME,\n", |mut cfg| {
        cfg.push_str(&format!(
            "\n[console.oidc]\nissuer = \"{}\"\nclient_id = \"console-client\"\n\
             provider_name = \"Fake pool\"\nlogout_url = \"{}/logout\"\n",
            fake.issuer, fake.base
        ));
        cfg
    });
    let srv = Server::start(d.path());
    fake.register(
        &format!("http://{}/auth/callback", srv.addr),
        &format!("http://{}/console/login", srv.addr),
    );
    let b = Browser::start(&srv).await;

    // Unsigned, the console sends the browser to the provider.
    b.goto("/console").await;
    b.css("#username")
        .await
        .send_keys("fran")
        .await
        .expect("type the username");
    let at = b.client.current_url().await.expect("url");
    assert_eq!(at.host_str(), Some("localhost"));
    assert_eq!(at.path(), "/oauth2/authorize");
    b.css("#signin").await.click().await.expect("click Sign in");

    // Back on the console, signed in as finance.
    b.on_page("Dashboard").await;
    assert_eq!(b.text("header .who").await, "fran@example.com · finance");
    b.nav("Exceptions", "Exceptions").await;
    assert_eq!(b.path().await, "/console/exceptions");

    // An admin-only action is refused, with the session's own CSRF token.
    let csrf = b
        .css("header input[name=csrf]")
        .await
        .attr("value")
        .await
        .expect("attr")
        .expect("a CSRF token");
    let status = b
        .fetch_post("/console/mappings", &format!("csrf={csrf}&kind=employee"))
        .await;
    assert_eq!(status, 403);

    // Signing out ends both sessions and comes back to the sign-in page,
    // which offers the provider.
    b.css("header form[action='/console/logout'] button")
        .await
        .click()
        .await
        .expect("click Sign out");
    b.on_page("Sign in").await;
    assert_eq!(fake.logouts(), 1);
    assert_eq!(b.text("a.signin-provider").await, "Sign in with Fake pool");
    b.goto("/console/exceptions").await;
    b.css("#username").await;
    b.close().await;
    let _ = srv.stop();
}

/// The Archives page in the browser: an auditor finds a snapshot
/// `timepost archive run` wrote, verifies it with the row's button (the
/// session's CSRF token in the form), and sees the result; the download
/// link serves the file; a viewer has no Archives link, is refused the
/// page, and a forged Verify with its session is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_verifies_an_archived_period_and_a_viewer_is_refused() {
    if let Some(why) = missing_browser() {
        eprintln!("skipped: {why}");
        return;
    }
    let d = prepare_with(false, "project,9001,C-ACME,\nemployee,101,E-100,\n", |c| c);
    let srv = Server::start(d.path());
    let key = toggl_entry(&srv, 7311);
    wait_for(&srv, &key, |v| v["status"] == "posted");
    let o = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(d.path())
        .args(["archive", "run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let b = Browser::start(&srv).await;
    b.sign_in("auditor").await;
    b.nav("Archives", "Archives").await;
    let row = "tr[data-period='2026-03'][data-revision='1']";
    let text = b.text(row).await;
    assert!(text.contains("not verified yet"), "{text}");
    assert!(text.contains("local directory"), "{text}");
    b.css(&format!(
        "{row} form[action='/console/archives/verify'] button"
    ))
    .await
    .click()
    .await
    .expect("click Verify");
    b.on_page("Archives").await;
    let notice = b.text("p.notice").await;
    assert!(notice.starts_with("Verified 1 snapshot(s)"), "{notice}");
    let text = b.text(row).await;
    assert!(text.contains("ok"), "{text}");
    assert!(text.contains("by auditor-user"), "{text}");
    let href = b
        .css("a[href='/console/archives/2026-03/1/manifest.json.sha256']")
        .await
        .attr("href")
        .await
        .expect("href");
    assert_eq!(
        href.as_deref(),
        Some("/console/archives/2026-03/1/manifest.json.sha256")
    );
    b.sign_out().await;

    b.sign_in("viewer").await;
    let links = b
        .client
        .find_all(Locator::Css("header a[href='/console/archives']"))
        .await
        .expect("find_all");
    assert!(links.is_empty(), "a viewer has no Archives link");
    b.goto("/console/archives").await;
    b.on_page("Forbidden").await;
    assert_eq!(
        b.fetch_post("/console/archives/verify", "period=2026-03")
            .await,
        403
    );
    b.close().await;
    let (_, log) = get_audit(&srv);
    assert_eq!(log, 1, "only the auditor's verification is recorded");
    let _ = srv.stop();
}

/// How many `archive.verified` records the audit log holds.
fn get_audit(srv: &Server) -> (u16, usize) {
    let (st, body) = srv.request(
        "GET",
        "/api/audit",
        &[("Authorization", &bearer("auditor"))],
        b"",
    );
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let n = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["action"] == "archive.verified")
                .count()
        })
        .unwrap_or(0);
    (st, n)
}
