//! Server-rendered HTML: the one escaping function and the base page (inline
//! CSS, no scripts, no front-end build). Every value that did not come from
//! this crate's own literals goes through [`esc`].

use axum::response::Html;

use super::auth::Principal;

/// Escape text for an HTML element body or a double- or single-quoted
/// attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}
header a{color:#cfe0ff;text-decoration:none}header .who{margin-left:auto;opacity:.85}
header form{display:inline}
main{padding:1rem 1.2rem;max-width:1200px}
h1{font-size:1.35rem}h2{font-size:1.1rem;margin:1.4rem 0 .2rem}
section.group{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.4rem 1rem 1rem;margin-bottom:1rem}
p.hint{color:#45506a;margin:.2rem 0 .6rem}code{background:#eef1f5;padding:0 .25rem;border-radius:3px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-top:1px solid #e6e9ef;vertical-align:top}
th{font-weight:600;color:#45506a}td.num{text-align:right}
.vendor{color:#8a3b12;font-size:.9em}.status{font-size:.8em;padding:.05rem .4rem;border-radius:9px;background:#fde8c8}
button{font:inherit;padding:.2rem .7rem;border:1px solid #2b5fd9;background:#2b5fd9;color:#fff;border-radius:4px;cursor:pointer}
button.secondary{background:#fff;color:#a3261b;border-color:#a3261b}
input[type=text],input[type=password]{font:inherit;padding:.2rem .4rem;border:1px solid #b8c0cc;border-radius:4px}
form.inline{display:inline-flex;gap:.3rem;margin:0}
.notice{background:#e3f4e8;border:1px solid #9fd3ae;padding:.5rem .8rem;border-radius:4px}
.tile{display:inline-block;background:#eef1f5;border-radius:4px;padding:.3rem .6rem;margin:0 .3rem .3rem 0}
td.bar{width:45%}td.bar div{background:#2b5fd9;height:.9rem;border-radius:2px;min-width:1px}
.error{background:#fde4e1;border:1px solid #e7a39b;padding:.5rem .8rem;border-radius:4px}
";

/// The base page. `body` must already be escaped HTML.
pub fn page(title: &str, who: Option<&Principal>, body: &str) -> Html<String> {
    let nav = match who {
        Some(p) => format!(
            "<a href=\"/console\">Dashboard</a><a href=\"/console/exceptions\">Exceptions</a>\
             <a href=\"/console/approvals\">Approvals</a><a href=\"/console/mappings\">Mappings</a>{}\
             <span class=\"who\">{} · {}</span>\
             <form method=\"post\" action=\"/console/logout\">{}<button class=\"secondary\" type=\"submit\">Sign out</button></form>",
            extra_links(p),
            esc(&p.name),
            p.role.as_str(),
            csrf_field(p)
        ),
        None => String::new(),
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · timepost</title><style>{CSS}</style></head>\
         <body><header><strong>timepost</strong>{nav}</header><main><h1>{title}</h1>{body}</main></body></html>\n",
        title = esc(title),
    ))
}

/// The nav links to the pages only some roles may open.
fn extra_links(p: &Principal) -> String {
    [
        ("/console/reconciliation", "Reconciliation"),
        ("/console/archives", "Archives"),
    ]
    .iter()
    .filter(|(path, _)| super::auth::may(p.role, "GET", path))
    .map(|(path, label)| format!("<a href=\"{path}\">{label}</a>"))
    .collect()
}

/// The hidden CSRF field of a form, for a session; nothing for a bearer
/// caller.
pub fn csrf_field(who: &Principal) -> String {
    match &who.csrf {
        Some(t) => format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(t)),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            esc(r#"<a href="x" onclick='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(esc("Zoë — 8h"), "Zoë — 8h");
    }

    #[test]
    fn page_escapes_its_title_and_user() {
        let p = Principal {
            name: "<b>eve</b>".into(),
            role: crate::auth::Role::Viewer,
            csrf: Some("t\"x".into()),
            named: true,
        };
        let h = page("<x>", Some(&p), "").0;
        assert!(!h.contains("<b>eve"));
        assert!(h.contains("&lt;x&gt; · timepost"));
        assert!(h.contains("value=\"t&quot;x\""));
    }
}
