//! Xero's organisation time zone → an IANA zone.
//!
//! The Accounting API's `GET /api.xro/2.0/Organisation` answers the
//! organisation's `Timezone` as one of its `TimeZone` enum values: Windows
//! time zone ids upper-cased with spaces and punctuation removed (e.g.
//! `NEWZEALANDSTANDARDTIME`, `EASTERNSTANDARDTIME`, `UTC`; Xero Accounting
//! API, "Organisation" and the `TimeZone` enum of its OpenAPI document).
//! Each is translated with the Unicode CLDR `windowsZones` table (territory
//! "001": the zone the Windows id stands for). Pure.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// Xero's `TimeZone` value (normalised: upper case, letters and digits
/// only) → the IANA name CLDR gives the Windows zone.
const ZONES: &[(&str, &str)] = &[
    ("DATELINESTANDARDTIME", "Etc/GMT+12"),
    ("UTC11", "Etc/GMT+11"),
    ("ALEUTIANSTANDARDTIME", "America/Adak"),
    ("HAWAIIANSTANDARDTIME", "Pacific/Honolulu"),
    ("MARQUESASSTANDARDTIME", "Pacific/Marquesas"),
    ("ALASKANSTANDARDTIME", "America/Anchorage"),
    ("UTC09", "Etc/GMT+9"),
    ("PACIFICSTANDARDTIMEMEXICO", "America/Tijuana"),
    ("UTC08", "Etc/GMT+8"),
    ("PACIFICSTANDARDTIME", "America/Los_Angeles"),
    ("USMOUNTAINSTANDARDTIME", "America/Phoenix"),
    ("MOUNTAINSTANDARDTIMEMEXICO", "America/Mazatlan"),
    ("MOUNTAINSTANDARDTIME", "America/Denver"),
    ("YUKONSTANDARDTIME", "America/Whitehorse"),
    ("CENTRALAMERICASTANDARDTIME", "America/Guatemala"),
    ("CENTRALSTANDARDTIME", "America/Chicago"),
    ("EASTERISLANDSTANDARDTIME", "Pacific/Easter"),
    ("CENTRALSTANDARDTIMEMEXICO", "America/Mexico_City"),
    ("CANADACENTRALSTANDARDTIME", "America/Regina"),
    ("SAPACIFICSTANDARDTIME", "America/Bogota"),
    ("EASTERNSTANDARDTIMEMEXICO", "America/Cancun"),
    ("EASTERNSTANDARDTIME", "America/New_York"),
    ("HAITISTANDARDTIME", "America/Port-au-Prince"),
    ("CUBASTANDARDTIME", "America/Havana"),
    ("USEASTERNSTANDARDTIME", "America/Indiana/Indianapolis"),
    ("TURKSANDCAICOSSTANDARDTIME", "America/Grand_Turk"),
    ("PARAGUAYSTANDARDTIME", "America/Asuncion"),
    ("ATLANTICSTANDARDTIME", "America/Halifax"),
    ("VENEZUELASTANDARDTIME", "America/Caracas"),
    ("CENTRALBRAZILIANSTANDARDTIME", "America/Cuiaba"),
    ("SAWESTERNSTANDARDTIME", "America/La_Paz"),
    ("PACIFICSASTANDARDTIME", "America/Santiago"),
    ("NEWFOUNDLANDSTANDARDTIME", "America/St_Johns"),
    ("TOCANTINSSTANDARDTIME", "America/Araguaina"),
    ("ESOUTHAMERICASTANDARDTIME", "America/Sao_Paulo"),
    ("SAEASTERNSTANDARDTIME", "America/Cayenne"),
    ("ARGENTINASTANDARDTIME", "America/Argentina/Buenos_Aires"),
    ("GREENLANDSTANDARDTIME", "America/Nuuk"),
    ("MONTEVIDEOSTANDARDTIME", "America/Montevideo"),
    ("MAGALLANESSTANDARDTIME", "America/Punta_Arenas"),
    ("SAINTPIERRESTANDARDTIME", "America/Miquelon"),
    ("BAHIASTANDARDTIME", "America/Bahia"),
    ("UTC02", "Etc/GMT+2"),
    ("MIDATLANTICSTANDARDTIME", "Etc/GMT+2"),
    ("AZORESSTANDARDTIME", "Atlantic/Azores"),
    ("CAPEVERDESTANDARDTIME", "Atlantic/Cape_Verde"),
    ("UTC", "Etc/UTC"),
    ("GMTSTANDARDTIME", "Europe/London"),
    ("GREENWICHSTANDARDTIME", "Atlantic/Reykjavik"),
    ("SAOTOMESTANDARDTIME", "Africa/Sao_Tome"),
    ("MOROCCOSTANDARDTIME", "Africa/Casablanca"),
    ("WEUROPESTANDARDTIME", "Europe/Berlin"),
    ("CENTRALEUROPESTANDARDTIME", "Europe/Budapest"),
    ("ROMANCESTANDARDTIME", "Europe/Paris"),
    ("CENTRALEUROPEANSTANDARDTIME", "Europe/Warsaw"),
    ("WCENTRALAFRICASTANDARDTIME", "Africa/Lagos"),
    ("JORDANSTANDARDTIME", "Asia/Amman"),
    ("GTBSTANDARDTIME", "Europe/Bucharest"),
    ("MIDDLEEASTSTANDARDTIME", "Asia/Beirut"),
    ("EGYPTSTANDARDTIME", "Africa/Cairo"),
    ("EEUROPESTANDARDTIME", "Europe/Chisinau"),
    ("SYRIASTANDARDTIME", "Asia/Damascus"),
    ("WESTBANKSTANDARDTIME", "Asia/Hebron"),
    ("SOUTHAFRICASTANDARDTIME", "Africa/Johannesburg"),
    ("FLESTANDARDTIME", "Europe/Kyiv"),
    ("ISRAELSTANDARDTIME", "Asia/Jerusalem"),
    ("SOUTHSUDANSTANDARDTIME", "Africa/Juba"),
    ("KALININGRADSTANDARDTIME", "Europe/Kaliningrad"),
    ("SUDANSTANDARDTIME", "Africa/Khartoum"),
    ("LIBYASTANDARDTIME", "Africa/Tripoli"),
    ("NAMIBIASTANDARDTIME", "Africa/Windhoek"),
    ("ARABICSTANDARDTIME", "Asia/Baghdad"),
    ("TURKEYSTANDARDTIME", "Europe/Istanbul"),
    ("ARABSTANDARDTIME", "Asia/Riyadh"),
    ("BELARUSSTANDARDTIME", "Europe/Minsk"),
    ("RUSSIANSTANDARDTIME", "Europe/Moscow"),
    ("EAFRICASTANDARDTIME", "Africa/Nairobi"),
    ("VOLGOGRADSTANDARDTIME", "Europe/Volgograd"),
    ("IRANSTANDARDTIME", "Asia/Tehran"),
    ("ARABIANSTANDARDTIME", "Asia/Dubai"),
    ("ASTRAKHANSTANDARDTIME", "Europe/Astrakhan"),
    ("AZERBAIJANSTANDARDTIME", "Asia/Baku"),
    ("RUSSIATIMEZONE3", "Europe/Samara"),
    ("MAURITIUSSTANDARDTIME", "Indian/Mauritius"),
    ("SARATOVSTANDARDTIME", "Europe/Saratov"),
    ("GEORGIANSTANDARDTIME", "Asia/Tbilisi"),
    ("CAUCASUSSTANDARDTIME", "Asia/Yerevan"),
    ("AFGHANISTANSTANDARDTIME", "Asia/Kabul"),
    ("WESTASIASTANDARDTIME", "Asia/Tashkent"),
    ("EKATERINBURGSTANDARDTIME", "Asia/Yekaterinburg"),
    ("PAKISTANSTANDARDTIME", "Asia/Karachi"),
    ("QYZYLORDASTANDARDTIME", "Asia/Qyzylorda"),
    ("INDIASTANDARDTIME", "Asia/Kolkata"),
    ("SRILANKASTANDARDTIME", "Asia/Colombo"),
    ("NEPALSTANDARDTIME", "Asia/Kathmandu"),
    ("CENTRALASIASTANDARDTIME", "Asia/Bishkek"),
    ("BANGLADESHSTANDARDTIME", "Asia/Dhaka"),
    ("OMSKSTANDARDTIME", "Asia/Omsk"),
    ("MYANMARSTANDARDTIME", "Asia/Yangon"),
    ("SEASIASTANDARDTIME", "Asia/Bangkok"),
    ("ALTAISTANDARDTIME", "Asia/Barnaul"),
    ("WMONGOLIASTANDARDTIME", "Asia/Hovd"),
    ("NORTHASIASTANDARDTIME", "Asia/Krasnoyarsk"),
    ("NCENTRALASIASTANDARDTIME", "Asia/Novosibirsk"),
    ("TOMSKSTANDARDTIME", "Asia/Tomsk"),
    ("CHINASTANDARDTIME", "Asia/Shanghai"),
    ("NORTHASIAEASTSTANDARDTIME", "Asia/Irkutsk"),
    ("SINGAPORESTANDARDTIME", "Asia/Singapore"),
    ("WAUSTRALIASTANDARDTIME", "Australia/Perth"),
    ("TAIPEISTANDARDTIME", "Asia/Taipei"),
    ("ULAANBAATARSTANDARDTIME", "Asia/Ulaanbaatar"),
    ("AUSCENTRALWSTANDARDTIME", "Australia/Eucla"),
    ("TRANSBAIKALSTANDARDTIME", "Asia/Chita"),
    ("TOKYOSTANDARDTIME", "Asia/Tokyo"),
    ("NORTHKOREASTANDARDTIME", "Asia/Pyongyang"),
    ("KOREASTANDARDTIME", "Asia/Seoul"),
    ("YAKUTSKSTANDARDTIME", "Asia/Yakutsk"),
    ("CENAUSTRALIASTANDARDTIME", "Australia/Adelaide"),
    ("AUSCENTRALSTANDARDTIME", "Australia/Darwin"),
    ("EAUSTRALIASTANDARDTIME", "Australia/Brisbane"),
    ("AUSEASTERNSTANDARDTIME", "Australia/Sydney"),
    ("WESTPACIFICSTANDARDTIME", "Pacific/Port_Moresby"),
    ("TASMANIASTANDARDTIME", "Australia/Hobart"),
    ("VLADIVOSTOKSTANDARDTIME", "Asia/Vladivostok"),
    ("LORDHOWESTANDARDTIME", "Australia/Lord_Howe"),
    ("BOUGAINVILLESTANDARDTIME", "Pacific/Bougainville"),
    ("RUSSIATIMEZONE10", "Asia/Srednekolymsk"),
    ("MAGADANSTANDARDTIME", "Asia/Magadan"),
    ("NORFOLKSTANDARDTIME", "Pacific/Norfolk"),
    ("SAKHALINSTANDARDTIME", "Asia/Sakhalin"),
    ("CENTRALPACIFICSTANDARDTIME", "Pacific/Guadalcanal"),
    ("RUSSIATIMEZONE11", "Asia/Kamchatka"),
    ("KAMCHATKASTANDARDTIME", "Asia/Kamchatka"),
    ("NEWZEALANDSTANDARDTIME", "Pacific/Auckland"),
    ("UTC12", "Etc/GMT-12"),
    ("FIJISTANDARDTIME", "Pacific/Fiji"),
    ("CHATHAMISLANDSSTANDARDTIME", "Pacific/Chatham"),
    ("UTC13", "Etc/GMT-13"),
    ("TONGASTANDARDTIME", "Pacific/Tongatapu"),
    ("SAMOASTANDARDTIME", "Pacific/Apia"),
    ("LINEISLANDSSTANDARDTIME", "Pacific/Kiritimati"),
];

/// The IANA zone of a Xero `Timezone` value (`None` for one not in the
/// table: the caller asks for `[ledger.xero] time_zone`).
pub fn iana(xero: &str) -> Option<Tz> {
    let key: String = xero
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    ZONES
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, name)| name.parse().ok())
}

/// The first instant of `date` in `tz`, as UTC: local midnight, or (where
/// the clocks skip midnight) the first local time that exists that day.
/// Shown in `tz`, it reads as `date`.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut t = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    // A gap is at most a few hours; step in quarter hours until it ends.
    for _ in 0..(24 * 4) {
        if let Some(d) = tz.from_local_datetime(&t).earliest() {
            return d.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(15);
    }
    date.and_hms_opt(12, 0, 0).unwrap_or_default().and_utc()
}

/// `dateUtc` for a work date: its start in the organisation's zone, as a
/// UTC instant in the form the Projects API shows (`…Z`).
pub fn date_utc(date: NaiveDate, tz: Tz) -> String {
    start_of_day(date, tz)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The date an instant reads as in `tz`.
pub fn local_date(instant: DateTime<Utc>, tz: Tz) -> NaiveDate {
    instant.with_timezone(&tz).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn every_table_entry_is_a_known_zone_and_names_normalise() {
        for (k, v) in ZONES {
            assert!(v.parse::<Tz>().is_ok(), "{k} → {v}");
        }
        assert_eq!(
            iana("NEWZEALANDSTANDARDTIME"),
            Some(chrono_tz::Pacific::Auckland)
        );
        assert_eq!(
            iana("Eastern Standard Time"),
            Some(chrono_tz::America::New_York)
        );
        assert_eq!(
            iana("EASTERNSTANDARDTIME(MEXICO)"),
            Some(chrono_tz::America::Cancun)
        );
        assert_eq!(iana("UTC"), Some(chrono_tz::Etc::UTC));
        assert_eq!(iana("MARSSTANDARDTIME"), None);
    }

    #[test]
    fn the_work_date_reads_as_itself_in_the_organisation_zone() {
        // West of UTC: midnight UTC would read as the day before.
        let ny = chrono_tz::America::New_York;
        assert_eq!(date_utc(d("2026-03-02"), ny), "2026-03-02T05:00:00Z");
        // East of UTC: the local midnight is the previous UTC day.
        let akl = chrono_tz::Pacific::Auckland;
        assert_eq!(date_utc(d("2026-03-02"), akl), "2026-03-01T11:00:00Z");
        for tz in [
            ny,
            akl,
            chrono_tz::Pacific::Honolulu,
            chrono_tz::Pacific::Kiritimati,
        ] {
            for day in ["2026-01-01", "2026-03-08", "2026-11-01", "2026-12-31"] {
                assert_eq!(
                    local_date(start_of_day(d(day), tz), tz),
                    d(day),
                    "{tz} {day}"
                );
            }
        }
        // A zone that skips midnight (Santiago, start of DST 2026-09-06).
        let scl = chrono_tz::America::Santiago;
        let s = start_of_day(d("2026-09-06"), scl);
        assert_eq!(local_date(s, scl), d("2026-09-06"));
    }
}
