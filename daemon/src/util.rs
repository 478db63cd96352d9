//! Small helpers with no better home: job ids and timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a job id: 128 bits in lower-case hex.
pub const ID_LEN: usize = 32;

/// Bytes of an id that count milliseconds; the other 10 are random.
const ID_TIME_BYTES: usize = 6;

/// A fresh job id: a 48-bit millisecond timestamp, then 80 bits from the OS
/// generator, so ids cannot be guessed.
///
/// Time first keeps new ids at the end of the store's id index: a batch of
/// inserts dirties one or two index pages rather than one random page per
/// job. With fully random ids every job cost a 4 KiB WAL frame of its own
/// (64 page writes per 40-job commit under `wrk`).
pub fn new_id() -> std::io::Result<String> {
    let mut bytes = [0u8; ID_LEN / 2];
    let ms = now_ms().to_be_bytes();
    bytes[..ID_TIME_BYTES].copy_from_slice(&ms[ms.len() - ID_TIME_BYTES..]);
    getrandom::getrandom(&mut bytes[ID_TIME_BYTES..])
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hashcore::to_hex(&bytes))
}

/// Whether `s` has the shape of an id we issue. Anything else is answered
/// `INVALID_ID` without touching the store.
pub fn is_valid_id(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-28T07:16:41.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil conversion (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_ordered_by_time_and_recognised() {
        let before = now_ms();
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_ne!(a, b);
        assert_ne!(a[12..], b[12..], "the random part repeats");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let c = new_id().unwrap();
        assert!(c > a && c > b, "{c} sorts before {a} or {b}");
        let stamp = i64::from_str_radix(&a[..12], 16).unwrap();
        assert!((before..=now_ms()).contains(&stamp), "time prefix {stamp}");
        assert!(is_valid_id(&a));
        for bad in [
            "-1",
            "abc",
            "",
            &a.to_uppercase(),
            &format!("{a}0"),
            "1' OR '1'='1",
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn formats_timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(rfc3339(1_795_850_201_123), "2026-11-28T07:16:41.123Z");
    }
}
