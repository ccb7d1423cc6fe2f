//! Data minimisation: whatever a vendor sends beyond what timepost needs
//! (geolocation, device ids, custom field values, cost rates, profile
//! pictures…) must not survive into the normalised entry.

use timepost_core::model::NormalisedEntry;
use timepost_core::sources::{clockify, csv_import, harvest, toggl, Event, ParseContext};

const SECRETS: &[&str] = &[
    "customFieldValues",
    "PO-SECRET-7781",
    "geolocation",
    "51.5072",
    "-0.1276",
    "deviceId",
    "A1B2C3D4-DEVICE",
    "device_id",
    "ip_address",
    "203.0.113.7",
    "profilePicture",
    "costRate",
    "cost_rate",
    "4242",
    "kioskId",
    "KIOSK-9",
    "external_reference",
    "tracker.example.com",
    "user_agent",
    "TogglDesktop",
];

fn assert_clean(entries: &[NormalisedEntry]) {
    assert!(!entries.is_empty());
    for e in entries {
        let json = serde_json::to_string(e).unwrap();
        for s in SECRETS {
            assert!(!json.contains(s), "`{s}` leaked into {json}");
        }
    }
}

fn entries(event: Event) -> Vec<NormalisedEntry> {
    match event {
        Event::Entries { entries } => entries,
        other => panic!("{other:?}"),
    }
}

#[test]
fn clockify_extras_are_dropped() {
    let body = br#"{
      "id": "e1", "workspaceId": "w1", "userId": "u1", "description": "Work",
      "billable": true, "isLocked": false, "type": "REGULAR",
      "kioskId": "KIOSK-9",
      "timeInterval": {"start": "2026-03-02T10:00:00Z", "end": "2026-03-02T11:00:00Z", "duration": "PT1H"},
      "hourlyRate": {"amount": 10000, "currency": "USD"},
      "costRate": {"amount": 4242, "currency": "USD"},
      "customFieldValues": [{"customFieldId": "cf", "name": "PO", "value": "PO-SECRET-7781"}],
      "geolocation": {"latitude": 51.5072, "longitude": -0.1276},
      "deviceId": "A1B2C3D4-DEVICE",
      "user": {"id": "u1", "name": "Ada", "profilePicture": "https://img/ada.png", "ip_address": "203.0.113.7"}
    }"#;
    let ctx = ParseContext::new(chrono_tz::UTC);
    let p = clockify::parse(body, Some("NEW_TIME_ENTRY"), &ctx).unwrap();
    assert_clean(&entries(p.event));
}

#[test]
fn toggl_extras_are_dropped() {
    let body = br#"{
      "event_id": 1, "metadata": {"model": "time_entry", "action": "updated", "user_agent": "TogglDesktop"},
      "payload": {
        "id": 1, "workspace_id": 2, "user_id": 3, "start": "2026-03-02T10:00:00Z",
        "stop": "2026-03-02T11:00:00Z", "duration": 3600, "at": "2026-03-02T11:00:00Z",
        "description": "Work", "device_id": "A1B2C3D4-DEVICE", "created_with": "TogglDesktop",
        "geolocation": {"lat": 51.5072, "lon": -0.1276}, "ip_address": "203.0.113.7",
        "customFieldValues": ["PO-SECRET-7781"]
      }
    }"#;
    let ctx = ParseContext::new(chrono_tz::UTC);
    assert_clean(&entries(toggl::parse(body, &ctx).unwrap().event));
}

#[test]
fn harvest_extras_are_dropped() {
    let body = br#"{"time_entries": [{
      "id": 1, "spent_date": "2026-03-02", "hours": 1.0, "updated_at": "2026-03-02T11:00:00Z",
      "user": {"id": 2, "name": "Kim", "ip_address": "203.0.113.7"},
      "client": {"id": 3, "name": "ABC", "currency": "USD"},
      "billable_rate": 100.0, "cost_rate": 4242,
      "external_reference": {"id": "x", "permalink": "https://tracker.example.com/1"},
      "geolocation": {"latitude": 51.5072, "longitude": -0.1276},
      "device_id": "A1B2C3D4-DEVICE", "notes": "Work"
    }]}"#;
    let ctx = ParseContext::new(chrono_tz::UTC);
    assert_clean(&harvest::parse_page(body, &ctx).unwrap().entries);
}

#[test]
fn csv_extra_columns_are_dropped() {
    let text = "entry_id,updated_at,user_id,date,duration,geolocation,deviceId,customFieldValues,cost_rate\n\
                e1,2026-03-02T11:00:00Z,u1,2026-03-02,1:00,\"51.5072,-0.1276\",A1B2C3D4-DEVICE,PO-SECRET-7781,4242\n";
    let ctx = ParseContext::new(chrono_tz::UTC);
    let rows: Vec<NormalisedEntry> =
        csv_import::reader(text.as_bytes(), &csv_import::CsvColumns::default(), &ctx)
            .unwrap()
            .map(Result::unwrap)
            .collect();
    assert_clean(&rows);
}
