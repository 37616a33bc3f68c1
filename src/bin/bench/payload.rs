//! Benchmark payloads: real market-data JSON from `tests/fixtures/payloads`,
//! cut or padded to an exact size so every benchmark states its size.

use serde_json::{Map, Value};

const ORDERBOOK: &str =
    include_str!("../../../tests/fixtures/payloads/orderbook.binance.perpetual.BTC-USDT.json");

/// A JSON object of exactly `size` bytes (size >= 48) built from the
/// orderbook fixture: leading fields and book levels kept while they fit,
/// then a `pad` string fills the rest.
pub fn sized(size: usize) -> Vec<u8> {
    let mut book: Map<String, Value> = serde_json::from_str(ORDERBOOK).expect("fixture is JSON");
    // Fields in a stable, realistic order (serde_json sorts keys).
    let order = [
        "exchange",
        "market_type",
        "symbol",
        "data_type",
        "ts_ms",
        "collected_ts_ms",
        "last_update_id",
        "bids",
        "asks",
    ];
    let mut fields: Vec<(String, Value)> = order
        .iter()
        .filter_map(|k| book.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect();
    let encode = |fields: &[(String, Value)], pad: usize| -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).expect("key"));
            out.push(':');
            out.push_str(&serde_json::to_string(v).expect("value"));
        }
        if !fields.is_empty() {
            out.push(',');
        }
        out.push_str("\"pad\":\"");
        out.push_str(&"x".repeat(pad));
        out.push_str("\"}");
        out
    };
    loop {
        let text = encode(&fields, 0);
        if text.len() <= size {
            let padded = encode(&fields, size - text.len());
            assert_eq!(padded.len(), size);
            return padded.into_bytes();
        }
        // Drop the last book level of the longer side, then trailing fields.
        let longest = fields
            .iter_mut()
            .filter_map(|(_, v)| v.as_array_mut())
            .filter(|a| !a.is_empty())
            .max_by_key(|a| a.len());
        match longest {
            Some(levels) => {
                levels.pop();
            }
            None => {
                fields.pop();
            }
        }
    }
}

/// Width of the timestamp slot written by [`stamp`].
const TS_DIGITS: usize = 20;
const TS_KEY: &[u8] = b"{\"ts\":\"";

/// A `size`-byte JSON payload starting with a fixed-width `"ts"` string
/// that [`stamp`] fills in at send time.
pub fn timestamped(size: usize) -> Vec<u8> {
    let rest = sized(size - TS_KEY.len() - TS_DIGITS - 2 + 1);
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(TS_KEY);
    out.extend_from_slice(&[b'0'; TS_DIGITS]);
    out.extend_from_slice(b"\",");
    out.extend_from_slice(&rest[1..]);
    assert_eq!(out.len(), size);
    out
}

/// Writes `nanos` into a payload made by [`timestamped`].
pub fn stamp(payload: &mut [u8], nanos: u64) {
    let slot = &mut payload[TS_KEY.len()..TS_KEY.len() + TS_DIGITS];
    let mut n = nanos;
    for b in slot.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Finds the timestamp written by [`stamp`] anywhere in `bytes`.
pub fn read_stamp(bytes: &[u8]) -> Option<u64> {
    let at = memfind(bytes, TS_KEY)? + TS_KEY.len();
    let digits = bytes.get(at..at + TS_DIGITS)?;
    let mut n = 0u64;
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    Some(n)
}

pub fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_exact_and_json() {
        for size in [128, 256, 1024] {
            let p = sized(size);
            assert_eq!(p.len(), size);
            serde_json::from_slice::<Value>(&p).expect("JSON");
        }
        let mut t = timestamped(256);
        stamp(&mut t, 1234567);
        serde_json::from_slice::<Value>(&t).expect("JSON");
        assert_eq!(read_stamp(&t), Some(1234567));
    }
}
