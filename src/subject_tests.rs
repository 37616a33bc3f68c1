//! Table-driven tests; the vectors marked "nats-server" are copied from
//! nats-io/nats-server `server/sublist_test.go` (TestSublistValidLiteralSubjects,
//! TestSublistValidlSubjects, TestSublistMatchLiterals, TestSubjectIsLiteral,
//! TestIsSubsetMatch) and `server/subject_fuzz_test.go` (SubjectsCollide seeds).

use super::*;

#[test]
fn publish_subject_vectors() {
    let cases: &[(&str, bool)] = &[
        // nats-server TestSublistValidLiteralSubjects
        ("foo", true),
        (".foo", false),
        ("foo.", false),
        ("foo..bar", false),
        ("foo.bar.*", false),
        ("foo.bar.>", false),
        ("*", false),
        (">", false),
        ("foo*", true),
        ("foo**", true),
        ("foo.**", true),
        ("foo*bar", true),
        ("foo.*bar", true),
        ("foo*.bar", true),
        ("*bar", true),
        ("foo>", true),
        ("foo>>", true),
        ("foo.>>", true),
        ("foo>bar", true),
        ("foo.>bar", true),
        ("foo>.bar", true),
        (">bar", true),
        // ours: whitespace and control characters, which the server's
        // literal check lets through but its protocol parser splits on
        ("foo bar", false),
        ("foo\tbar", false),
        ("foo\rbar", false),
        ("foo\nbar", false),
        ("foo\u{0}bar", false),
        ("foo\u{7f}", false),
        ("foo\u{a0}bar", false),
        ("", false),
        (".", false),
        ("funding_rate.binance.perpetual.BTC-USDT", true),
        ("volatility_index.deribit.options.BTC", true),
        ("trade.okx_spot.spot.BTC-USDT", true),
        ("orders.*", false),
        ("$JS.API.INFO", true),
        ("数据.btc", true),
    ];
    for (input, valid) in cases {
        assert_eq!(
            Subject::parse(input).is_ok(),
            *valid,
            "Subject::parse({input:?})"
        );
    }
}

#[test]
fn subject_length_is_capped() {
    let at_limit = "a".repeat(MAX_SUBJECT_LEN);
    assert!(Subject::parse(&at_limit).is_ok());
    let over = "a".repeat(MAX_SUBJECT_LEN + 1);
    assert_eq!(
        Subject::parse(&over).unwrap_err(),
        SubjectError::TooLong {
            len: MAX_SUBJECT_LEN + 1,
            max: MAX_SUBJECT_LEN
        }
    );
    assert!(SubjectPattern::parse(&"b.".repeat(5_000)).is_err());
}

#[test]
fn subject_errors_say_what_is_wrong() {
    let cases: &[(&str, SubjectError)] = &[
        ("", SubjectError::Empty),
        ("a..b", SubjectError::EmptyToken),
        ("a b", SubjectError::BadCharacter { at: 1 }),
        ("orders.*", SubjectError::Wildcard('*')),
        ("orders.>", SubjectError::Wildcard('>')),
    ];
    for (input, expected) in cases {
        assert_eq!(&Subject::parse(input).unwrap_err(), expected, "{input:?}");
    }
    assert_eq!(
        SubjectPattern::parse("a.>.b").unwrap_err(),
        SubjectError::FullWildcardNotLast
    );
}

#[test]
fn pattern_vectors() {
    let cases: &[(&str, bool)] = &[
        // nats-server TestSublistValidlSubjects
        (".", false),
        (".foo", false),
        ("foo.", false),
        ("foo..bar", false),
        (">.bar", false),
        ("foo.>.bar", false),
        ("foo", true),
        ("foo.bar.*", true),
        ("foo.bar.>", true),
        ("*", true),
        (">", true),
        ("foo*", true),
        ("foo**", true),
        ("foo.**", true),
        ("foo*bar", true),
        ("foo.*bar", true),
        ("foo*.bar", true),
        ("*bar", true),
        ("foo>", true),
        ("foo.>>", true),
        ("foo>bar", true),
        ("foo.>bar", true),
        ("foo>.bar", true),
        (">bar", true),
        // nats-server TestSublistInvalidSubjectsInsert
        ("foo.bar..baz", false),
        // ours
        ("orderbook.>", true),
        ("funding_rate.*.perpetual.*", true),
        ("foo. >", false),
        ("", false),
    ];
    for (input, valid) in cases {
        assert_eq!(
            SubjectPattern::parse(input).is_ok(),
            *valid,
            "SubjectPattern::parse({input:?})"
        );
    }
}

#[test]
fn is_literal_vectors() {
    // nats-server TestSubjectIsLiteral
    let cases: &[(&str, bool)] = &[
        ("foo", true),
        ("foo.bar", true),
        ("foo*.bar", true),
        ("*", false),
        (">", false),
        ("foo.*", false),
        ("foo.>", false),
        ("foo.*.>", false),
        ("foo.*.bar", false),
        ("foo.bar.>", false),
    ];
    for (input, literal) in cases {
        let pattern = SubjectPattern::parse(input).unwrap();
        assert_eq!(pattern.is_literal(), *literal, "{input:?}");
    }
}

#[test]
fn match_vectors() {
    // nats-server TestSublistMatchLiterals: (literal subject, pattern, matches)
    let cases: &[(&str, &str, bool)] = &[
        ("foo", "foo", true),
        ("foo", "bar", false),
        ("foo", "*", true),
        ("foo", ">", true),
        ("foo.bar", ">", true),
        ("foo.bar", "foo.>", true),
        ("foo.bar", "bar.>", false),
        ("stats.test.22", "stats.>", true),
        ("stats.test.22", "stats.*.*", true),
        ("foo.bar", "foo", false),
        ("stats.test.foos", "stats.test.foos", true),
        ("stats.test.foos", "stats.test.foo", false),
        ("stats.test", "stats.test.*", false),
        ("stats.test.foos", "stats.*", false),
        ("stats.test.foos", "stats.*.*.foos", false),
        ("*bar", "*bar", true),
        ("foo*", "foo*", true),
        ("foo*bar", "foo*bar", true),
        ("foo.***.bar", "foo.***.bar", true),
        (">bar", ">bar", true),
        ("foo>", "foo>", true),
        ("foo>bar", "foo>bar", true),
        ("foo.>>>.bar", "foo.>>>.bar", true),
        // nats-server TestSublistInsertWithWildcardsAsLiterals
        ("foo.bar", "foo.*-", false),
        ("foo.bar", "foo.>-", false),
        // ours: `>` needs at least one token
        ("foo", "foo.>", false),
        (
            "funding_rate.binance.perpetual.BTC-USDT",
            "funding_rate.binance.>",
            true,
        ),
        (
            "funding_rate.okx.perpetual.BTC-USDT",
            "funding_rate.binance.>",
            false,
        ),
    ];
    for (subject, pattern, matches) in cases {
        let p = SubjectPattern::parse(pattern).unwrap();
        assert_eq!(
            p.matches(subject),
            *matches,
            "{pattern:?} matches {subject:?}"
        );
    }
}

#[test]
fn subset_vectors() {
    // nats-server TestIsSubsetMatch: (subject, test, subject ⊆ test); the two
    // "bad subject" rows are rejected by parse before a subset check.
    let cases: &[(&str, &str, bool)] = &[
        ("foo.*", ">", true),
        ("foo.*", "*.*", true),
        ("foo.*", "foo.*", true),
        ("foo.*", "foo.bar", false),
        ("foo.>", ">", true),
        ("foo.>", "*.>", true),
        ("foo.>", "foo.>", true),
        ("foo.>", "foo.bar", false),
        // ours: the permission cases the security issue names
        ("trade.binance.>", "trade.>", true),
        ("trade.>", "trade.binance.>", false),
        ("trade.*.spot.BTC", "trade.binance.>", false),
        ("trade.binance.spot.BTC", "trade.binance.>", true),
        ("trade.binance", "trade.binance.>", false),
        ("a.b", "a.b.c", false),
        ("a.*", "*.b", false),
        (">", "*", false),
    ];
    for (subject, test, subset) in cases {
        let s = SubjectPattern::parse(subject).unwrap();
        let t = SubjectPattern::parse(test).unwrap();
        assert_eq!(s.is_subset_of(&t), *subset, "{subject:?} ⊆ {test:?}");
    }
    assert!(SubjectPattern::parse("foo..bar").is_err());
}

#[test]
fn overlap_vectors() {
    // nats-server subject_fuzz_test.go FuzzSubjectsCollide seeds (the rows
    // with an empty subject are skipped there too: it is not a valid subject).
    let cases: &[(&str, &str, bool)] = &[
        ("a", "a", true),
        ("a.b.c", "a.b.c", true),
        ("$JS.b.c", "$JS.b.c", true),
        ("a.b.c", "a.*.c", true),
        ("a.b.*", "a.*.c", true),
        ("aaa.bbb.ccc", "aaa.bbb.ccc", true),
        ("aaa.*.ccc", "*.bbb.ccc", true),
        ("*", "*", true),
        ("**", "*", true),
        (">", ">", true),
        (">>", ">", true),
        ("a", ">", true),
        ("a.b.c", ">", true),
        ("a.b.c.>", "a.b.>", true),
        ("a.b.c.d.*", "a.b.c.*.e", true),
        ("a.*.*.d.>", "a.bbb.ccc.*.e", true),
        ("a.b", "b.a", false),
        ("a.bbbbb.*.d", "a.b.>", false),
        ("a.b", "a.b.c", false),
        ("a.b.c", "a.b", false),
        ("a.*.*.d.e.>", "a.bbb.ccc.*.e", false),
        // ours: the seed's stream subjects do not collide with each other
        ("funding_rate.binance.>", "funding_rate.okx.>", false),
        ("funding_rate.>", "funding_rate.okx.>", true),
    ];
    for (a, b, collide) in cases {
        let pa = SubjectPattern::parse(a).unwrap();
        let pb = SubjectPattern::parse(b).unwrap();
        assert_eq!(pa.overlaps(&pb), *collide, "{a:?} overlaps {b:?}");
        assert_eq!(
            pb.overlaps(&pa),
            *collide,
            "{b:?} overlaps {a:?} (symmetry)"
        );
    }
}

#[test]
fn name_vectors() {
    let cases: &[(&str, bool)] = &[
        ("MARKET_DATA", true),
        ("market-data_2", true),
        ("", false),
        ("a.b", false),
        ("a*", false),
        ("a>", false),
        ("a/b", false),
        ("a\\b", false),
        ("a b", false),
        ("a\tb", false),
        ("a\u{0}", false),
    ];
    for (input, valid) in cases {
        assert_eq!(
            StreamName::parse(input).is_ok(),
            *valid,
            "StreamName {input:?}"
        );
        assert_eq!(
            ConsumerName::parse(input).is_ok(),
            *valid,
            "ConsumerName {input:?}"
        );
    }
    assert!(StreamName::parse(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
}
