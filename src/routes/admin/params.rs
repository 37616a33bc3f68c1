//! Path parameters as the OpenAPI document describes them. Documentation
//! only: handlers extract the raw strings and validate them with
//! `StreamName::parse` / `ConsumerName::parse`, so that a bad name gets the
//! gateway's own 400 problem rather than an extractor rejection.
#![allow(dead_code)]

/// The `{name}` path parameter, documented once for every route under
/// `/admin/streams/{name}` (the rule is `subject::check_name`'s).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StreamPath {
    /// Stream name: 1 to 128 bytes, without whitespace, control characters,
    /// `.`, `*`, `>`, `/` or `\`.
    #[param(
        pattern = r"^[^.*>/\\\s\u0000-\u001f\u007f-\u009f]+$",
        max_length = 128
    )]
    name: String,
}

/// The `{consumer}` path parameter (same rule as stream names).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConsumerPath {
    /// Consumer name: 1 to 128 bytes, without whitespace, control
    /// characters, `.`, `*`, `>`, `/` or `\`.
    #[param(
        pattern = r"^[^.*>/\\\s\u0000-\u001f\u007f-\u009f]+$",
        max_length = 128
    )]
    consumer: String,
}

#[cfg(test)]
mod tests {
    use utoipa::IntoParams;
    use utoipa::openapi::path::ParameterIn;

    use crate::subject::{ConsumerName, StreamName};

    /// The pattern a parameter type puts into the OpenAPI document.
    fn documented_pattern<P: IntoParams>() -> String {
        let params = P::into_params(|| Some(ParameterIn::Path));
        let json = serde_json::to_value(&params[0]).unwrap();
        json["schema"]["pattern"].as_str().unwrap().to_owned()
    }

    #[test]
    fn documented_name_pattern_accepts_exactly_what_the_name_types_accept() {
        let stream = documented_pattern::<super::StreamPath>();
        assert_eq!(stream, documented_pattern::<super::ConsumerPath>());
        let pattern = regex::Regex::new(&stream).unwrap();
        let names = [
            "MARKET_DATA",
            "orders-v2",
            "a",
            "ñame",
            "x=1",
            "",
            "a.b",
            "a*",
            ">",
            "a/b",
            "a\\b",
            "a b",
            "tab\there",
            "nl\n",
            "nul\0",
            "del\u{7f}",
            "c1\u{85}",
            "nbsp\u{a0}",
        ];
        for name in names {
            let valid = StreamName::parse(name).is_ok();
            assert_eq!(pattern.is_match(name), valid, "{name:?}");
            assert_eq!(ConsumerName::parse(name).is_ok(), valid, "{name:?}");
        }
    }
}
