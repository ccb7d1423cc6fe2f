//! Every CSV timepost writes (`/console/exceptions.csv`,
//! `/console/hours-by-project.csv`, `timepost mappings export`) goes through
//! [`SafeCsv`], so a name a tracker user typed can never become a live
//! formula in the spreadsheet finance opens it with (CSV injection).
//!
//! ## The rule
//!
//! - **Every text field is quoted** (`"…"`, inner quotes doubled). Cells
//!   timepost formats as plain numbers (hours, counts) are left bare so
//!   spreadsheets still read them as numbers.
//! - **A text cell is defused** by prefixing it with `'` (which spreadsheets
//!   take as "this is text" and do not show) when
//!   - it starts with a *dangerous character*: `=`, `+`, `-`, `@`, tab, CR
//!     or LF, or their full-width forms `＝ ＋ － ＠`; or
//!   - a dangerous character follows a *separator* anywhere in it: `,`,
//!     `;`, tab, CR or LF. A spreadsheet whose list separator is `;` (most
//!     of Europe) ignores the quoting and splits `Proj;=1+1` into `Proj` and
//!     a live `=1+1`; the whole cell is then marked as text. Spaces between
//!     the start (or the separator) and the dangerous character do not
//!     help the formula: ` =1` counts as dangerous too; or
//!   - it starts with `'` itself, so that reading back is unambiguous.
//!
//!   Quoting is what keeps `Proj;=1+1` one cell in a `;`-separated
//!   spreadsheet (a quoted field is never split), and the leading `'` makes
//!   that whole cell text.
//! - **Reading back** ([`restore`], used by `timepost mappings import`)
//!   removes one leading `'` exactly when the rest is a cell [`defuse`]
//!   would have prefixed. `restore(defuse(s)) == s` for every string, so an
//!   export → import round trip is lossless.

use std::borrow::Cow;
use std::io::Write;

/// Characters that start a formula.
fn dangerous(c: char) -> bool {
    matches!(
        c,
        '=' | '+' | '-' | '@' | '\t' | '\r' | '\n' | '＝' | '＋' | '－' | '＠'
    )
}

/// Characters a spreadsheet may split a cell at.
fn separator(c: char) -> bool {
    matches!(c, ',' | ';' | '\t' | '\r' | '\n')
}

/// Would a spreadsheet run (part of) this text as a formula?
pub fn formula_like(s: &str) -> bool {
    // At the start, or after a separator; spaces in between do not count.
    let mut at_start = true;
    for c in s.chars() {
        if at_start && dangerous(c) {
            return true;
        }
        if separator(c) {
            at_start = true;
        } else if c != ' ' {
            at_start = false;
        }
    }
    false
}

/// Does [`defuse`] prefix this text?
fn needs_prefix(s: &str) -> bool {
    s.starts_with('\'') || formula_like(s)
}

/// The text as a spreadsheet-safe cell (see the module docs).
pub fn defuse(s: &str) -> Cow<'_, str> {
    if needs_prefix(s) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// The text a cell written by [`defuse`] stood for.
pub fn restore(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_prefix(rest) => rest,
        _ => cell,
    }
}

/// One cell of a row.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    /// Anything that came from outside: quoted and defused.
    Text(&'a str),
    /// A number timepost formatted itself; written bare when it is a plain
    /// decimal number (`-1.50`, `12`), otherwise treated as text.
    Number(&'a str),
}

fn plain_number(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let mut parts = digits.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// A CSV writer that quotes every text field and defuses every text cell.
pub struct SafeCsv<W: Write> {
    inner: csv::Writer<W>,
}

impl<W: Write> SafeCsv<W> {
    pub fn new(out: W) -> Self {
        Self {
            inner: csv::WriterBuilder::new()
                .quote_style(csv::QuoteStyle::NonNumeric)
                .from_writer(out),
        }
    }

    /// A header row (text cells).
    pub fn header(&mut self, names: &[&str]) -> csv::Result<()> {
        let cells: Vec<Cell<'_>> = names.iter().map(|n| Cell::Text(n)).collect();
        self.row(&cells)
    }

    /// One row.
    pub fn row(&mut self, cells: &[Cell<'_>]) -> csv::Result<()> {
        let fields: Vec<Cow<'_, str>> = cells
            .iter()
            .map(|c| match c {
                Cell::Number(n) if plain_number(n) => Cow::Borrowed(*n),
                Cell::Number(t) | Cell::Text(t) => defuse(t),
            })
            .collect();
        self.inner.write_record(fields.iter().map(|f| f.as_ref()))
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }

    /// The underlying writer, flushed.
    pub fn into_inner(self) -> Result<W, csv::IntoInnerError<csv::Writer<W>>> {
        self.inner.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_starts_and_separators_are_defused() {
        for s in [
            "=1+1",
            "+1",
            "-2",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "Proj;=1+1",
            "Proj,=1+1",
            "Proj;  =1+1",
            "a\tb;-1",
            "x\n@y",
            " =1",
            "＝1+1",
            "'quoted",
        ] {
            assert!(defuse(s).starts_with('\''), "{s:?} was not defused");
            assert_eq!(restore(&defuse(s)), s);
        }
        for s in [
            "plain",
            "Zoë — 8h",
            "a-b",
            "a=b",
            "jurisdiction=us-ca;time_zone=Europe/Berlin",
            "",
        ] {
            assert_eq!(defuse(s), s, "{s:?} changed");
            assert_eq!(restore(s), s);
        }
        // A hand-written leading quote before plain text is kept.
        assert_eq!(restore("'abc"), "'abc");
    }

    #[test]
    fn text_is_quoted_and_numbers_stay_numbers() {
        let mut w = SafeCsv::new(Vec::new());
        w.header(&["name", "hours"]).unwrap();
        w.row(&[Cell::Text("Proj;=1+1"), Cell::Number("-1.50")])
            .unwrap();
        w.row(&[Cell::Text("42"), Cell::Number("=2")]).unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            out,
            "\"name\",\"hours\"\n\"'Proj;=1+1\",-1.50\n42,\"'=2\"\n"
        );
    }

    proptest::proptest! {
        #[test]
        fn round_trip_is_lossless(s in "[=+@'\\-;, \tabc\r\n＝]{0,12}") {
            let d = defuse(&s);
            proptest::prop_assert_eq!(restore(&d), s.as_str());
            // What is written is text to a spreadsheet: marked with `'`,
            // or with nothing a formula could start at.
            proptest::prop_assert!(d.starts_with('\'') || !formula_like(&d));
        }
    }
}
