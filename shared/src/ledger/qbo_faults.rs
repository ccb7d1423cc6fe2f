//! QuickBooks Online faults → timepost exceptions.
//!
//! QBO answers `{"Fault":{"Error":[{"Message","Detail","code","element"}],
//! "type"}}`, sometimes with HTTP 200. Every code below maps to an exception
//! code with a sentence a bookkeeper can act on; the vendor's own words are
//! kept verbatim beside it. A code not listed keeps the vendor's message as
//! the sentence (`LEDGER_REJECTED`), so nothing QBO says is lost.
//!
//! Codes 6240, 610, 120 and 6190 are confirmed in the vendor notes; the
//! others are QBO's documented codes as commonly reported and are marked
//! "(unconfirmed)" — the mapping is safe either way because the vendor's
//! message travels with the exception.

// `LedgerError` is the port's error type and carries the exception inline.

use serde::Deserialize;

use super::LedgerError;
use crate::exceptions::{Exception, ExceptionCode};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Fault {
    #[serde(rename = "Error", default)]
    pub errors: Vec<FaultError>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FaultError {
    #[serde(rename = "Message", default)]
    pub message: Option<String>,
    #[serde(rename = "Detail", default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub element: Option<String>,
}

/// What one code means for timepost.
pub struct FaultMeaning {
    pub code: &'static str,
    pub exception: ExceptionCode,
    /// The sentence shown to the bookkeeper (before the vendor's words).
    pub sentence: &'static str,
}

/// Every QBO fault code timepost knows.
pub const KNOWN: &[FaultMeaning] = &[
    FaultMeaning {
        code: "120",
        exception: ExceptionCode::LedgerNotAuthorised,
        sentence: "QuickBooks says the connected user is not authorised for this company.",
    },
    FaultMeaning {
        code: "100",
        exception: ExceptionCode::LedgerNotAuthorised, // (unconfirmed)
        sentence: "QuickBooks could not authenticate timepost's connection.",
    },
    FaultMeaning {
        code: "3100",
        exception: ExceptionCode::LedgerNotAuthorised, // (unconfirmed)
        sentence: "QuickBooks says timepost's app is not authorised for this company.",
    },
    FaultMeaning {
        code: "3200",
        exception: ExceptionCode::LedgerNotAuthorised, // (unconfirmed)
        sentence: "QuickBooks refused timepost's access token.",
    },
    FaultMeaning {
        code: "610",
        exception: ExceptionCode::LedgerInactiveReference,
        sentence: "QuickBooks says a record this time entry names was made inactive or deleted.",
    },
    FaultMeaning {
        code: "2500",
        exception: ExceptionCode::LedgerUnknownReference, // (unconfirmed)
        sentence: "QuickBooks has no record with an id this time entry names.",
    },
    FaultMeaning {
        code: "2010",
        exception: ExceptionCode::LedgerValidation, // (unconfirmed)
        sentence: "QuickBooks does not accept a field timepost sent.",
    },
    FaultMeaning {
        code: "2020",
        exception: ExceptionCode::LedgerValidation, // (unconfirmed)
        sentence: "QuickBooks says a required field is missing from the time record.",
    },
    FaultMeaning {
        code: "2030",
        exception: ExceptionCode::LedgerValidation, // (unconfirmed)
        sentence: "QuickBooks says an id in the time record is not valid.",
    },
    FaultMeaning {
        code: "2050",
        exception: ExceptionCode::LedgerValidation, // (unconfirmed)
        sentence: "QuickBooks says a text in the time record is too long or too short.",
    },
    FaultMeaning {
        code: "6000",
        exception: ExceptionCode::LedgerValidation, // (unconfirmed)
        sentence: "QuickBooks refused the time record under one of its business rules.",
    },
    FaultMeaning {
        code: "5010",
        exception: ExceptionCode::LedgerStaleRecord, // (unconfirmed)
        sentence:
            "QuickBooks says the record was changed by someone else since timepost last saw it.",
    },
    FaultMeaning {
        code: "6140",
        exception: ExceptionCode::LedgerDuplicate, // (unconfirmed)
        sentence: "QuickBooks says a document with this number already exists.",
    },
    FaultMeaning {
        code: "6240",
        exception: ExceptionCode::LedgerDuplicate,
        sentence: "QuickBooks says a record with this name already exists.",
    },
    FaultMeaning {
        code: "6190",
        exception: ExceptionCode::LedgerCompanyStatus,
        sentence: "QuickBooks says the company's subscription is not active.",
    },
    FaultMeaning {
        code: "6210",
        exception: ExceptionCode::PeriodClosed, // (unconfirmed)
        sentence: "QuickBooks says the accounting period for this date is closed.",
    },
    FaultMeaning {
        code: "500",
        exception: ExceptionCode::LedgerRejected, // (unconfirmed)
        sentence: "QuickBooks does not support this operation on time records.",
    },
];

/// Codes that mean "slow down" rather than "refused" (unconfirmed).
const THROTTLE: &[&str] = &["3001", "3002"];

pub fn meaning(code: &str) -> Option<&'static FaultMeaning> {
    KNOWN.iter().find(|m| m.code == code)
}

impl Fault {
    fn first(&self) -> FaultError {
        self.errors.first().cloned().unwrap_or_default()
    }

    /// The vendor's words, verbatim: `code: Message — Detail (element)`.
    pub fn vendor_message(&self) -> String {
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|e| {
                let mut s = format!(
                    "{}{}",
                    e.code
                        .as_deref()
                        .map(|c| format!("{c}: "))
                        .unwrap_or_default(),
                    e.message.as_deref().unwrap_or("")
                );
                if let Some(d) = e.detail.as_deref().filter(|d| !d.is_empty()) {
                    s.push_str(" — ");
                    s.push_str(d);
                }
                if let Some(el) = e.element.as_deref().filter(|d| !d.is_empty()) {
                    s.push_str(&format!(" (element {el})"));
                }
                s
            })
            .collect();
        let joined = parts.join("; ");
        match &self.kind {
            Some(k) => format!("QuickBooks {k}: {joined}"),
            None => format!("QuickBooks fault: {joined}"),
        }
    }

    /// What the engine should do with this fault.
    pub fn into_error(self) -> LedgerError {
        let first = self.first();
        let code = first.code.clone().unwrap_or_default();
        let kind = self.kind.clone().unwrap_or_default().to_ascii_lowercase();
        if THROTTLE.contains(&code.as_str()) {
            return LedgerError::RateLimited(None);
        }
        if kind.starts_with("system") {
            return LedgerError::Transient(self.vendor_message());
        }
        LedgerError::Rejected(self.exception())
    }

    /// The exception for a refusal.
    pub fn exception(&self) -> Exception {
        let first = self.first();
        let vendor = self.vendor_message();
        let code = first.code.as_deref().unwrap_or("");
        let kind = self.kind.as_deref().unwrap_or("").to_ascii_lowercase();
        let (exc, sentence) = match meaning(code) {
            Some(m) => (m.exception, m.sentence.to_string()),
            None if kind.starts_with("authentication") || kind.starts_with("authorization") => (
                ExceptionCode::LedgerNotAuthorised,
                "QuickBooks refused timepost's access to this company.".to_string(),
            ),
            None => {
                let msg = first
                    .message
                    .clone()
                    .or(first.detail.clone())
                    .unwrap_or_else(|| "no message".into());
                (
                    ExceptionCode::LedgerRejected,
                    format!(
                        "QuickBooks refused the time record: {}.",
                        msg.trim_end_matches('.')
                    ),
                )
            }
        };
        let mut sentence = sentence;
        if let Some(detail) = first.detail.as_deref().filter(|d| !d.is_empty()) {
            if meaning(code).is_some() {
                sentence = format!(
                    "{} ({})",
                    sentence.trim_end_matches('.'),
                    detail.trim_end_matches('.')
                );
                sentence.push('.');
            }
        }
        Exception::new(exc, sentence).with_vendor_message(vendor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(code: &str, kind: &str) -> Fault {
        serde_json::from_value(serde_json::json!({
            "Error": [{"Message": "Something", "Detail": "Detail here", "code": code, "element": "ItemRef"}],
            "type": kind
        }))
        .unwrap()
    }

    #[test]
    fn every_known_code_maps_to_a_readable_exception() {
        for m in KNOWN {
            assert!(m.sentence.ends_with('.'), "{} sentence", m.code);
            let e = fault(m.code, "ValidationFault").exception();
            assert_eq!(e.code, m.exception, "{}", m.code);
            assert!(e.message.ends_with('.'), "{}", e.message);
            assert!(!e.fix_hint.is_empty());
            let v = e.vendor_message.unwrap();
            assert!(v.contains(m.code) && v.contains("Detail here"), "{v}");
        }
    }

    #[test]
    fn unknown_codes_keep_the_vendor_message() {
        let e = fault("9999", "ValidationFault").exception();
        assert_eq!(e.code, ExceptionCode::LedgerRejected);
        assert!(e.message.contains("Something"));
        assert!(matches!(
            fault("10000", "SystemFault").into_error(),
            LedgerError::Transient(_)
        ));
        assert!(matches!(
            fault("3001", "ValidationFault").into_error(),
            LedgerError::RateLimited(None)
        ));
        assert_eq!(
            fault("777", "AuthenticationFault").exception().code,
            ExceptionCode::LedgerNotAuthorised
        );
    }
}
