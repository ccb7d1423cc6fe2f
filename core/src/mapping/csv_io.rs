//! Mapping tables as CSV: `table,key,target,attrs,note`, where `attrs` is
//! `name=value` pairs separated by `;`. A bad row is reported with its line
//! and field, and nothing is imported from that file.
//!
//! The export quotes and defuses every cell like every CSV timepost writes
//! ([`crate::csv_out`]); the import removes exactly the `'` the export
//! added ([`crate::csv_out::restore`]), so export → import is lossless.

use std::io::{Read, Write};

use super::table::{normalise_key, MappingRow, MappingTable, Mappings};
use crate::csv_out::{restore, Cell, SafeCsv};

#[derive(Debug, thiserror::Error)]
pub enum MappingCsvError {
    #[error("line {line}, field `{field}`: {message}")]
    Row {
        line: u64,
        field: String,
        message: String,
    },
    #[error("cannot read mapping CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot write mapping CSV: {0}")]
    Io(#[from] std::io::Error),
}

const HEADER: [&str; 4] = ["table", "key", "target", "attrs"];

/// Read mapping rows. The header row must name at least `table,key,target`.
pub fn read(input: impl Read) -> Result<Vec<MappingRow>, MappingCsvError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(input);
    let headers = rdr.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let missing = |field: &str| MappingCsvError::Row {
        line: 1,
        field: field.to_string(),
        message: "missing column in the header row".into(),
    };
    let (t, k, v) = (
        col("table").ok_or_else(|| missing("table"))?,
        col("key").ok_or_else(|| missing("key"))?,
        col("target").ok_or_else(|| missing("target"))?,
    );
    let a = col("attrs");
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for rec in rdr.records() {
        let rec = rec?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let err = |field: &str, message: String| MappingCsvError::Row {
            line,
            field: field.to_string(),
            message,
        };
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let cell = |i: usize| restore(rec.get(i).unwrap_or(""));
        let table: MappingTable = cell(t).parse().map_err(|e: String| err("table", e))?;
        let key = cell(k);
        if key.is_empty() {
            return Err(err("key", "is empty".into()));
        }
        let target = cell(v);
        if target.is_empty() {
            return Err(err("target", "is empty".into()));
        }
        let mut row = MappingRow::new(table, key, target);
        if let Some(attrs) = a.and_then(|a| rec.get(a)).map(restore) {
            for pair in attrs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| err("attrs", format!("`{pair}` is not name=value")))?;
                row.attrs
                    .insert(name.trim().to_string(), value.trim().to_string());
            }
        }
        validate_attrs(&row).map_err(|m| err("attrs", m))?;
        if !seen.insert((table, normalise_key(key))) {
            return Err(err(
                "key",
                format!("`{key}` appears twice in table {table}"),
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Check the attributes timepost reads (an IANA `time_zone`).
pub fn validate_attrs(row: &MappingRow) -> Result<(), String> {
    if let Some(tz) = row.attr("time_zone") {
        tz.parse::<chrono_tz::Tz>()
            .map_err(|_| format!("`{tz}` is not an IANA time zone (e.g. America/New_York)"))?;
    }
    Ok(())
}

/// Write every row of `mappings` (optionally one table) as CSV.
pub fn write(
    mappings: &Mappings,
    table: Option<MappingTable>,
    out: impl Write,
) -> Result<usize, MappingCsvError> {
    let mut w = SafeCsv::new(out);
    w.header(&HEADER)?;
    let mut n = 0;
    for row in mappings.rows() {
        if table.is_some_and(|t| t != row.table) {
            continue;
        }
        let attrs: Vec<String> = row.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let attrs = attrs.join(";");
        w.row(&[
            Cell::Text(row.table.as_str()),
            Cell::Text(&row.key),
            Cell::Text(&row.target),
            Cell::Text(&attrs),
        ])?;
        n += 1;
    }
    w.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let src =
            "table,key,target,attrs\nemployee,u1,E1,time_zone=Europe/Berlin\nproject,p1,C1,\n";
        let rows = read(src.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].attr("time_zone"), Some("Europe/Berlin"));
        let m = Mappings::from_rows(rows, 1);
        let mut out = Vec::new();
        write(&m, None, &mut out).unwrap();
        let again = read(out.as_slice()).unwrap();
        assert_eq!(Mappings::from_rows(again, 1).rows(), m.rows());
    }

    #[test]
    fn export_defuses_every_cell_and_import_restores_it() {
        let rows = vec![
            MappingRow::new(MappingTable::Project, "=HYPERLINK(\"x\")", "C-1")
                .with_attr("-y", "2")
                .with_attr("x", "@1"),
            MappingRow::new(MappingTable::Project, "Proj;=1+1", "+C-2"),
            MappingRow::new(MappingTable::Employee, "'quoted", "E-1"),
            MappingRow::new(MappingTable::Employee, "plain", "E-2"),
        ];
        let m = Mappings::from_rows(rows, 1);
        let mut out = Vec::new();
        write(&m, None, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        for line in text.lines().skip(1) {
            // Every text cell is quoted, and none starts a formula.
            for cell in line.split("\",\"") {
                let cell = cell.trim_matches('"');
                assert!(
                    cell.starts_with('\'') || !crate::csv_out::formula_like(cell),
                    "{line}"
                );
            }
            assert!(line.starts_with('"') && line.ends_with('"'), "{line}");
        }
        assert!(text.contains("\"'Proj;=1+1\""), "{text}");
        assert!(text.contains("\"'+C-2\""), "{text}");
        let again = read(out.as_slice()).unwrap();
        assert_eq!(Mappings::from_rows(again, 1).rows(), m.rows());
    }

    #[test]
    fn bad_rows_name_line_and_field() {
        let src = "table,key,target\nemployee,u1,E1\nprojects,p1,C1\n";
        let e = read(src.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("`table`"), "{e}");
        let src = "table,key,target\nemployee,u1,\n";
        let e = read(src.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("`target`"), "{e}");
        let src = "table,key,target,attrs\nemployee,u1,E1,time_zone=Mars/Base\n";
        let e = read(src.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("`attrs`"), "{e}");
        let src = "table,key\nemployee,u1\n";
        let e = read(src.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("`target`"), "{e}");
    }
}
