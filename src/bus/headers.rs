//! Building NATS message headers from what clients send, with the checks
//! NATS needs (a header line is `Name: value`; CR/LF would corrupt framing).

use async_nats::HeaderMap;

use crate::error::ApiError;

/// The header JetStream deduplicates on.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Accumulates validated headers for one message.
#[derive(Default)]
pub struct HeaderBuilder {
    map: Option<HeaderMap>,
    msg_id: Option<String>,
}

impl HeaderBuilder {
    /// Adds one header; names must be visible ASCII without ':'.
    pub fn append(&mut self, name: &str, value: &str) -> Result<(), ApiError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(ApiError::InvalidHeader(format!(
                "header name {name:?} is not valid for NATS"
            )));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ApiError::InvalidHeader(format!(
                "header {name} has a line break or NUL in its value"
            )));
        }
        if name.eq_ignore_ascii_case(MSG_ID) {
            return self.msg_id(value);
        }
        let value: async_nats::HeaderValue = value
            .parse()
            .map_err(|_| ApiError::InvalidHeader(format!("header {name} has an invalid value")))?;
        self.map
            .get_or_insert_with(HeaderMap::new)
            .append(name, value);
        Ok(())
    }

    /// Sets the message id; a second, different id is an error rather than a
    /// silent choice between the two.
    pub fn msg_id(&mut self, id: &str) -> Result<(), ApiError> {
        let id = id.trim();
        if id.is_empty() || id.len() > 1024 || id.bytes().any(|b| b.is_ascii_control()) {
            return Err(ApiError::InvalidHeader(
                "the message id must be 1-1024 visible characters".into(),
            ));
        }
        match &self.msg_id {
            Some(existing) if existing != id => Err(ApiError::InvalidHeader(format!(
                "two different message ids given ({existing:?} and {id:?})"
            ))),
            _ => {
                self.msg_id = Some(id.to_owned());
                Ok(())
            }
        }
    }

    pub fn build(self) -> Option<HeaderMap> {
        let mut map = self.map;
        if let Some(id) = self.msg_id {
            map.get_or_insert_with(HeaderMap::new)
                .insert(MSG_ID, id.as_str());
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_aliases_must_agree() {
        let mut b = HeaderBuilder::default();
        b.msg_id("abc").unwrap();
        b.append("Nats-Msg-Id", "abc").unwrap();
        assert!(b.msg_id("other").is_err());
        let map = b.build().unwrap();
        assert_eq!(map.get(MSG_ID).unwrap().as_str(), "abc");
    }

    #[test]
    fn rejects_names_and_values_that_break_framing() {
        let cases = [
            ("Bad Name", "v"),
            ("a:b", "v"),
            ("", "v"),
            ("X", "a\r\nb"),
            ("X", "a\0"),
        ];
        for (name, value) in cases {
            assert!(
                HeaderBuilder::default().append(name, value).is_err(),
                "{name:?}: {value:?}"
            );
        }
    }

    #[test]
    fn no_headers_means_none() {
        assert!(HeaderBuilder::default().build().is_none());
    }
}
