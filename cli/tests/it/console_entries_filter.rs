//! `GET /api/entries` filtered by worker and by project on a real
//! `timepost serve`: pages in key order over the mapped-key index, with
//! `after` as the cursor and `status` filtering the page.

use crate::common;

use common::console_kit::*;
use common::Server;

fn keys(body: &str) -> Vec<String> {
    let v: Vec<serde_json::Value> = serde_json::from_str(body).unwrap_or_default();
    v.iter()
        .map(|x| {
            let k = &x["entry"]["key"];
            format!(
                "{}:{}:{}",
                k["source"].as_str().unwrap_or_default(),
                k["workspace"].as_str().unwrap_or_default(),
                k["id"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn entries_filter_by_worker_and_project_in_pages() {
    let d = prepare(&[], &[], "project,9001,C-ACME,\nemployee,101,E-100,\n");
    let srv = Server::start(d.path());
    let a = Toggl::new(41).send(&srv);
    let b = Toggl {
        date: "2026-03-10",
        ..Toggl::new(42)
    }
    .send(&srv);
    let c = Toggl {
        user: 202,
        ..Toggl::new(43)
    }
    .send(&srv);
    let e = Toggl {
        project: 9002,
        ..Toggl::new(44)
    }
    .send(&srv);
    wait_status(&srv, &a, "posted");
    wait_status(&srv, &b, "posted");
    wait_status(&srv, &c, "exception");
    wait_status(&srv, &e, "held");

    let (st, body) = get(&srv, "viewer", "/api/entries?worker=101");
    assert_eq!(st, 200, "{body}");
    let mut want = vec![a.clone(), b.clone(), e.clone()];
    want.sort();
    assert_eq!(keys(&body), want, "u101's entries in key order");
    // One at a time, the cursor the last key.
    let (_, body) = get(&srv, "viewer", "/api/entries?worker=101&limit=1");
    let first = keys(&body);
    assert_eq!(first, want[..1]);
    let (_, body) = get(
        &srv,
        "viewer",
        &format!("/api/entries?worker=101&limit=2&after={}", first[0]),
    );
    assert_eq!(keys(&body), want[1..]);

    let (_, body) = get(&srv, "viewer", "/api/entries?project=9001");
    let mut p9001 = vec![a.clone(), b.clone(), c.clone()];
    p9001.sort();
    assert_eq!(keys(&body), p9001);
    let (_, body) = get(&srv, "viewer", "/api/entries?worker=101&project=9002");
    assert_eq!(keys(&body), vec![e.clone()]);
    let (_, body) = get(&srv, "viewer", "/api/entries?project=9001&status=exception");
    assert_eq!(keys(&body), vec![c.clone()]);
    let (_, body) = get(&srv, "viewer", "/api/entries?worker=nobody");
    assert_eq!(keys(&body), Vec::<String>::new());
    let (st, body) = get(&srv, "viewer", "/api/entries?worker=101&status=lost");
    assert_eq!(st, 400, "{body}");
}
