//! The library crates hold their boundaries:
//!
//! - inside each of `core`, `app`, `shared` and `web`, the top-level modules (a
//!   file or a directory) name one another as `crate::<module>` without a
//!   cycle, so each module can be read, tested and moved on its own (Cargo
//!   already forbids cycles between crates);
//! - each crate's `Cargo.toml` names none of the dependencies its crate doc
//!   forbids: the core no runtime, server, database, HTTP client or AWS SDK;
//!   the application layer no database, HTTP client or server, e-mail or
//!   AWS SDK; the adapters no HTTP server (the router is `web`'s).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Text without `//` comments (doc links do not make a dependency).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module → the top-level modules it names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for e in std::fs::read_dir(src).expect("read src").flatten() {
        let p = e.path();
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        let list = files.entry(name).or_default();
        if p.is_dir() {
            rust_files(&p, list);
        } else if p.extension().is_some_and(|x| x == "rs") {
            list.push(p);
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (m, paths) in &files {
        let mut deps = BTreeSet::new();
        for p in paths {
            let text = code(&std::fs::read_to_string(p).expect("read"));
            for name in named_modules(&text) {
                if name != *m && modules.contains(&name) {
                    deps.insert(name);
                }
            }
        }
        graph.insert(m.clone(), deps);
    }
    graph
}

/// The first path segment after every `crate::`, including each of a
/// grouped `crate::{a::X, b}`.
fn named_modules(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for part in text.split("crate::").skip(1) {
        if let Some(group) = part.strip_prefix('{') {
            // Top-level items of the group: split on commas outside braces.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            out.push(ident(&item));
        } else {
            out.push(ident(part));
        }
    }
    out
}

/// A cycle through `start`, if any (depth-first search).
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(graph, start, start, &mut path, &mut seen).then_some(path)
}

fn assert_no_cycle(krate: &str) {
    let graph = module_graph(&crate_dir(krate).join("src"));
    assert!(graph.len() > 10, "read {krate}'s modules: {graph:?}");
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_from(&graph, m))
        .map(|c| c.join(" → "))
        .collect();
    assert!(
        cycles.is_empty(),
        "module cycles in {krate}/src:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_core_modules_form_no_cycle() {
    assert_no_cycle("core");
}

#[test]
fn the_app_modules_form_no_cycle() {
    assert_no_cycle("app");
}

#[test]
fn the_shared_modules_form_no_cycle() {
    assert_no_cycle("shared");
}

#[test]
fn the_web_modules_form_no_cycle() {
    assert_no_cycle("web");
}

/// The packages `[dependencies]` of `krate`'s Cargo.toml names.
fn dependencies(krate: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(crate_dir(krate).join("Cargo.toml")).expect("Cargo.toml");
    let doc: toml::Table = text.parse().expect("Cargo.toml parses");
    doc.get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

/// Dependencies of `krate` whose name starts with one of `forbidden`.
fn forbidden_in(krate: &str, forbidden: &[&str]) -> Vec<String> {
    dependencies(krate)
        .into_iter()
        .filter(|d| forbidden.iter().any(|f| d.starts_with(f)))
        .collect()
}

const IO_CRATES: &[&str] = &[
    "rusqlite",
    "reqwest",
    "axum",
    "hyper",
    "tower",
    "lettre",
    "jsonwebtoken",
    "rustls",
    "aws-",
    "aws_",
    "lambda",
];

#[test]
fn the_core_links_no_runtime_and_no_io() {
    assert!(
        dependencies("core").contains("serde"),
        "read core's dependencies"
    );
    let mut forbidden = IO_CRATES.to_vec();
    forbidden.push("tokio");
    assert_eq!(forbidden_in("core", &forbidden), Vec::<String>::new());
}

#[test]
fn the_application_layer_links_no_adapter() {
    assert!(
        dependencies("app").contains("timepost-core"),
        "read app's dependencies"
    );
    assert_eq!(forbidden_in("app", IO_CRATES), Vec::<String>::new());
    assert!(!dependencies("app").contains("timepost-shared"));
    // The check sees what the adapters crate links.
    assert!(forbidden_in("shared", IO_CRATES).contains(&"rusqlite".to_string()));
}

#[test]
fn the_adapters_serve_no_http() {
    assert!(
        dependencies("shared").contains("rusqlite"),
        "read shared's dependencies"
    );
    assert_eq!(
        forbidden_in("shared", &["axum", "tower", "lambda"]),
        Vec::<String>::new()
    );
    // hyper is there for one client request (a function's start-up error to
    // the Lambda runtime API), never to serve.
    let mut files = Vec::new();
    rust_files(&crate_dir("shared/src"), &mut files);
    let serving: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = code(&std::fs::read_to_string(f).expect("read"));
            text.contains("hyper::server") || text.contains("hyper_util::server")
        })
        .collect();
    assert!(serving.is_empty(), "{serving:?}");
}

/// The crates `cargo tree` resolves for `package` built alone, as SAM
/// builds each function: its own features, not the workspace's union.
fn resolved_crates(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none"])
        .args(["--offline", "--locked"])
        .current_dir(crate_dir("."))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn each_function_compiles_only_the_adapters_it_runs() {
    // (function, crates it must have, crates it must not compile)
    let cases: [(&str, &[&str], &[&str]); 7] = [
        (
            "webhook",
            &["aws-sdk-sqs", "timepost-web"],
            &[
                "rusqlite",
                "reqwest",
                "lettre",
                "jsonwebtoken",
                "aws-sdk-sns",
            ],
        ),
        (
            "poller",
            &["aws-sdk-sqs", "reqwest"],
            &["rusqlite", "lettre", "jsonwebtoken", "aws-sdk-sns"],
        ),
        // The sandbox ledger keeps its books in SQLite on AWS too.
        (
            "sync",
            &["rusqlite", "reqwest"],
            &["lettre", "jsonwebtoken", "aws-sdk-sns"],
        ),
        (
            "archive",
            &["rusqlite"],
            &["lettre", "jsonwebtoken", "aws-sdk-sns"],
        ),
        (
            "reconcile",
            &["rusqlite", "reqwest"],
            &["lettre", "jsonwebtoken", "aws-sdk-sns"],
        ),
        ("alerts", &["lettre", "aws-sdk-sns"], &["jsonwebtoken"]),
        ("admin", &["jsonwebtoken", "rusqlite"], &["aws-sdk-sns"]),
    ];
    let mut wrong = Vec::new();
    for (f, must, must_not) in cases {
        let crates = resolved_crates(&format!("timepost-fn-{f}"));
        for m in must {
            if !crates.contains(*m) {
                wrong.push(format!("{f} lacks {m}"));
            }
        }
        for m in must_not {
            if crates.contains(*m) {
                wrong.push(format!("{f} compiles {m}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

/// The `timepost-web` dependency of `krate`'s Cargo.toml, if any:
/// (default features on, the features named).
fn web_dependency(krate: &str) -> Option<(bool, Vec<String>)> {
    let text = std::fs::read_to_string(crate_dir(krate).join("Cargo.toml")).expect("Cargo.toml");
    let doc: toml::Table = text.parse().expect("Cargo.toml parses");
    let dep = doc.get("dependencies")?.get("timepost-web")?;
    let features = dep
        .get("features")
        .and_then(|f| f.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let defaults = dep
        .get("default-features")
        .and_then(|d| d.as_bool())
        .unwrap_or(true);
    Some((defaults, features))
}

#[test]
fn only_the_admin_function_builds_the_console() {
    // The workspace turns the web crate's default features off, so a
    // member has the console only by naming it.
    let root: toml::Table = std::fs::read_to_string(crate_dir("Cargo.toml"))
        .expect("workspace Cargo.toml")
        .parse()
        .expect("parses");
    assert_eq!(
        root["workspace"]["dependencies"]["timepost-web"]["default-features"].as_bool(),
        Some(false)
    );
    let mut with_console = Vec::new();
    for f in [
        "webhook",
        "poller",
        "sync",
        "admin",
        "archive",
        "alerts",
        "reconcile",
    ] {
        let krate = format!("functions/{f}");
        if let Some((_, features)) = web_dependency(&krate) {
            if features.iter().any(|x| x == "console") {
                with_console.push(f);
            }
        }
    }
    assert_eq!(with_console, ["admin"]);
    let (_, webhook) = web_dependency("functions/webhook").expect("the webhook function uses web");
    assert!(!webhook.contains(&"console".to_string()), "{webhook:?}");
}

#[test]
fn grouped_and_nested_paths_name_their_modules() {
    let text = "use crate::{engine::{Engine, Outcome}, ports::Queue, model};\n\
                let x = crate::stack::LocalStack::open(c);";
    assert_eq!(
        named_modules(text),
        vec!["engine", "ports", "model", "stack"]
    );
}

#[test]
fn a_cycle_is_found() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        cycle_from(&g, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(cycle_from(&g, "d"), None);
}
