//! The codemap stays true: every repository path that `docs/architecture.md`,
//! `docs/reference.md`, `README.md` and the other guides under `docs/` name
//! exists.
//!
//! What counts as a path: a code span (text in single backticks, outside
//! fenced blocks) without whitespace that starts with one of the
//! workspace's top-level directories followed by `/` (`core/src/model.rs`,
//! `docs/screenshots/`), or is one of its top-level files (`Cargo.toml`).
//! A trailing `::item` (`cli/tests/it/docs.rs::some_test`) or `:line` is
//! not part of the path. `*` and `<placeholder>` match any one name
//! (`tests/tests/it/aws_*.rs`, `functions/<name>`): at least one must
//! exist. Relative Markdown link targets (`[text](docs/finance.md)`) are
//! checked too, from the document's own directory. In the codemap and the
//! reference a Rust file is always named by its repository path, never by
//! its file name alone (`qbo.rs`), so each one can be checked.

use std::path::{Path, PathBuf};

/// The workspace's top-level directories a path may start with.
const TOP_DIRS: &[&str] = &[
    "core",
    "app",
    "shared",
    "web",
    "cli",
    "functions",
    "tests",
    "docs",
    "infra",
    "scripts",
    "examples",
    "fuzz",
    ".ci",
];

/// The workspace's top-level files, named without a directory.
const TOP_FILES: &[&str] = &[
    "README.md",
    "Cargo.toml",
    "Cargo.lock",
    "samconfig.toml",
    ".gitignore",
];

/// The documents whose Rust files must be named by their repository path.
const CODEMAPS: &[&str] = &["docs/architecture.md", "docs/reference.md"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// What one document names that does not exist.
#[derive(Debug, Default)]
struct Report {
    /// How many paths were checked.
    checked: usize,
    /// `line: what`, one per problem.
    problems: Vec<String>,
}

/// The inline code spans of `text` outside fenced blocks, with the line
/// each starts on. Spans are read paragraph by paragraph, so one may run
/// over a line break as Markdown allows.
fn code_spans(text: &str) -> Vec<(usize, &str)> {
    let mut spans = Vec::new();
    let mut in_fence = false;
    let mut offset = 0;
    // The current paragraph's lines: (line number, offset, text).
    let mut block: Vec<(usize, usize, &str)> = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            paragraph_spans(text, &mut block, &mut spans);
            in_fence = !in_fence;
        } else if !in_fence {
            if trimmed.is_empty() {
                paragraph_spans(text, &mut block, &mut spans);
            } else {
                block.push((i + 1, offset, line));
            }
        }
        offset += line.len();
    }
    paragraph_spans(text, &mut block, &mut spans);
    spans
}

/// Move the code spans of the paragraph `block` into `spans` and empty it.
fn paragraph_spans<'a>(
    text: &'a str,
    block: &mut Vec<(usize, usize, &'a str)>,
    spans: &mut Vec<(usize, &'a str)>,
) {
    let (Some(first), Some(last)) = (block.first(), block.last()) else {
        return;
    };
    let start = first.1;
    let end = last.1 + last.2.len();
    let mut pos = start;
    // Between backticks: prose, code, prose, code, ...
    for (n, part) in text[start..end].split('`').enumerate() {
        if n % 2 == 1 && !part.is_empty() {
            let line = block
                .iter()
                .rev()
                .find(|(_, o, _)| *o <= pos)
                .map_or(first.0, |(n, _, _)| *n);
            spans.push((line, part));
        }
        pos += part.len() + 1;
    }
    block.clear();
}

/// The relative link targets of `text` (`[text](target)`), with their line.
fn link_targets(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(close) = after.find(')') else { break };
            let target = after[..close].trim();
            let target = target.split('#').next().unwrap_or("");
            let external = target.contains("://") || target.starts_with("mailto:");
            if !target.is_empty() && !external && !target.contains(' ') {
                out.push((i + 1, target));
            }
            rest = &after[close..];
        }
    }
    out
}

/// The repository path a code span names, if it names one.
fn path_of(span: &str) -> Option<&str> {
    if span.chars().any(char::is_whitespace) {
        return None;
    }
    // `file.rs::item` and `file.rs:12` name the file.
    let span = span.split("::").next().unwrap_or(span);
    let span = match span.rsplit_once(':') {
        Some((p, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => p,
        _ => span,
    };
    if TOP_FILES.contains(&span) {
        return Some(span);
    }
    let (first, _) = span.split_once('/')?;
    TOP_DIRS.contains(&first).then_some(span)
}

/// Whether `name` matches `pattern`, where `*` matches any run of
/// characters.
fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|i| rest.is_char_boundary(*i))
                .any(|i| wildcard(tail, &rest[i..]))
        }
    }
}

/// A path segment with its `<placeholder>`s and `{a,b}` alternatives read
/// as `*`.
fn as_pattern(segment: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in segment.chars() {
        match c {
            '<' | '{' => {
                if depth == 0 {
                    out.push('*');
                }
                depth += 1;
            }
            '>' | '}' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether `path` (relative to `base`, possibly with patterns) names
/// something that exists.
fn exists(base: &Path, path: &str) -> bool {
    let mut candidates = vec![base.to_path_buf()];
    for segment in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        let pattern = as_pattern(segment);
        let mut next = Vec::new();
        for dir in &candidates {
            if segment == ".." {
                next.push(dir.join(".."));
            } else if pattern.contains('*') {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    if wildcard(&pattern, &e.file_name().to_string_lossy()) {
                        next.push(e.path());
                    }
                }
            } else {
                let p = dir.join(segment);
                if p.exists() {
                    next.push(p);
                }
            }
        }
        candidates = next;
        if candidates.is_empty() {
            return false;
        }
    }
    // `dir/` names a directory.
    !path.ends_with('/') || candidates.iter().any(|c| c.is_dir())
}

/// Check one document's text; `doc` is its repository path.
fn check(root: &Path, doc: &str, text: &str) -> Report {
    let mut report = Report::default();
    let codemap = CODEMAPS.contains(&doc);
    for (line, span) in code_spans(text) {
        match path_of(span) {
            Some(path) => {
                report.checked += 1;
                if !exists(root, path) {
                    report
                        .problems
                        .push(format!("{doc}:{line}: `{path}` does not exist"));
                }
            }
            None if codemap && span.ends_with(".rs") && !span.chars().any(char::is_whitespace) => {
                report.problems.push(format!(
                    "{doc}:{line}: `{span}` names a Rust file without its repository path"
                ));
            }
            None => {}
        }
    }
    let dir = Path::new(doc).parent().unwrap_or(Path::new(""));
    for (line, target) in link_targets(text) {
        report.checked += 1;
        if !exists(&root.join(dir), target) {
            report.problems.push(format!(
                "{doc}:{line}: link target `{target}` does not exist"
            ));
        }
    }
    report
}

/// The documents checked: the codemap, the reference, the README and the
/// other guides.
fn documents(root: &Path) -> Vec<String> {
    let mut docs: Vec<String> = vec!["README.md".into()];
    let mut guides: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    guides.sort();
    docs.extend(guides);
    docs
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = root();
    let docs = documents(&root);
    for required in ["README.md", "docs/architecture.md", "docs/reference.md"] {
        assert!(docs.iter().any(|d| d == required), "{required} is missing");
    }
    let mut problems = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(root.join(doc)).expect("readable document");
        let report = check(&root, doc, &text);
        if CODEMAPS.contains(&doc.as_str()) || doc == "README.md" {
            // A parser that found nothing would pass anything.
            assert!(
                report.checked >= 20,
                "{doc}: only {} paths found; is the checker still reading code spans?",
                report.checked
            );
        }
        problems.extend(report.problems);
    }
    assert!(
        problems.is_empty(),
        "the docs name {} path(s) that do not exist (fix the doc or the path):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_missing_path_is_named() {
    let root = root();
    let text = "The crate root is `shared/src/lib.rs`; the decision was\n\
                `shared/src/pipeline.rs` and the old `qbo.rs`.\n\
                ```\nshared/src/in_a_fence.rs\n```\n\
                See [the guide](docs/no-such-guide.md) and `core/src/rules/*.rs`,\n\
                `functions/<name>/src/main.rs`, `tests/tests/it/nothing_*.rs`,\n\
                `cli/tests/it/docs.rs::exception_code_reference_matches_the_catalogue`,\n\
                `Cargo.toml`, `shared/src/lib.rs:12`, `timepost.toml`, `../shared/specs/`.\n";
    let report = check(&root, "docs/architecture.md", text);
    let problems = report.problems.join("\n");
    assert_eq!(report.problems.len(), 4, "{problems}");
    assert!(
        problems.contains("docs/architecture.md:2: `shared/src/pipeline.rs` does not exist"),
        "{problems}"
    );
    assert!(
        problems.contains("`qbo.rs` names a Rust file without its repository path"),
        "{problems}"
    );
    assert!(
        problems.contains("link target `docs/no-such-guide.md`"),
        "{problems}"
    );
    assert!(
        problems.contains("`tests/tests/it/nothing_*.rs` does not exist"),
        "{problems}"
    );
    assert_eq!(report.checked, 9, "{problems}");
}
