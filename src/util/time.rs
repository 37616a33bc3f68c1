//! Time formatting shared by frames (every stored message carries its
//! time) and the admin routes.

/// RFC 3339 text of a JetStream timestamp.
pub fn rfc3339(time: &time::OffsetDateTime) -> String {
    let mut out = String::new();
    push_rfc3339(&mut out, time);
    out
}

/// Appends `time` as RFC 3339 (nothing if it has none, e.g. year 10000).
/// Formatted on the stack: replay stamps every frame with one, and a
/// `String` per frame showed in profiles.
pub fn push_rfc3339(out: &mut String, time: &time::OffsetDateTime) {
    // Longest: "-0000-00-00T00:00:00.000000000+00:00" is 36 bytes.
    let mut buf = [0u8; 40];
    let mut rest = &mut buf[..];
    if time
        .format_into(&mut rest, &time::format_description::well_known::Rfc3339)
        .is_ok()
    {
        let len = 40 - rest.len();
        out.push_str(std::str::from_utf8(&buf[..len]).expect("RFC 3339 is ASCII"));
    }
}

#[cfg(test)]
mod tests {
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, UtcOffset};

    #[test]
    fn rfc3339_matches_the_time_crate_and_fits_the_longest_form() {
        let nanos = [0, 1_795_687_200_250_000_000, 253_402_300_799_999_999_999];
        for n in nanos {
            for offset in [UtcOffset::UTC, UtcOffset::from_hms(-23, -59, 0).unwrap()] {
                let t = OffsetDateTime::from_unix_timestamp_nanos(n)
                    .unwrap()
                    .to_offset(offset);
                assert_eq!(super::rfc3339(&t), t.format(&Rfc3339).unwrap());
            }
        }
    }
}
