//! Property tests (proptest) for the subject validator and the permission
//! matcher: no input panics, and the algebra holds for generated subjects.

use message_broker::auth::Permissions;
use message_broker::config::PermissionConfig;
use message_broker::subject::{Subject, SubjectPattern};
use proptest::prelude::*;

/// Tokens drawn from a small alphabet so generated subjects collide often.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ab]{1,2}",
        1 => Just("*".to_owned()),
        1 => Just(">".to_owned()),
    ]
}

fn pattern() -> impl Strategy<Value = SubjectPattern> {
    prop::collection::vec(token(), 1..5).prop_filter_map("'>' must be last", |tokens| {
        SubjectPattern::parse(&tokens.join(".")).ok()
    })
}

fn literal() -> impl Strategy<Value = String> {
    prop::collection::vec("[ab]{1,2}", 1..6).prop_map(|t| t.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn parsing_arbitrary_text_never_panics_and_accepted_subjects_are_clean(s in any::<String>()) {
        if let Ok(subject) = Subject::parse(&s) {
            prop_assert!(!subject.as_str().is_empty() && subject.as_str().len() <= 512);
            prop_assert!(!subject.as_str().chars().any(|c| c.is_whitespace() || c.is_control()));
            prop_assert!(subject.as_str().split('.').all(|t| !t.is_empty() && t != "*" && t != ">"));
        }
        if let Ok(pattern) = SubjectPattern::parse(&s) {
            let tokens: Vec<&str> = pattern.as_str().split('.').collect();
            prop_assert!(tokens.iter().all(|t| !t.is_empty()));
            prop_assert!(tokens.iter().rev().skip(1).all(|t| *t != ">"));
        }
    }

    #[test]
    fn a_literal_pattern_matches_exactly_itself(a in literal(), b in literal()) {
        let p = SubjectPattern::parse(&a).unwrap();
        prop_assert!(p.matches(&a));
        prop_assert_eq!(p.matches(&b), a == b);
    }

    #[test]
    fn subset_means_every_match_of_the_smaller_matches_the_larger(p in pattern(), q in pattern(), s in literal()) {
        if p.is_subset_of(&q) && p.matches(&s) {
            prop_assert!(q.matches(&s), "{} ⊆ {} but {} only matches the first", p, q, s);
        }
        prop_assert!(p.is_subset_of(&p));
    }

    #[test]
    fn overlap_is_symmetric_and_a_common_match_implies_overlap(p in pattern(), q in pattern(), s in literal()) {
        prop_assert_eq!(p.overlaps(&q), q.overlaps(&p));
        if p.matches(&s) && q.matches(&s) {
            prop_assert!(p.overlaps(&q));
        }
    }

    #[test]
    fn deny_wins_and_allowed_subscriptions_only_receive_allowed_subjects(
        allow in prop::collection::vec(pattern(), 0..3),
        deny in prop::collection::vec(pattern(), 0..2),
        sub in pattern(),
        s in literal(),
    ) {
        let perms = Permissions::from_config(&PermissionConfig {
            allow: allow.iter().map(|p| p.to_string()).collect(),
            deny: deny.iter().map(|p| p.to_string()).collect(),
        });
        let subject = Subject::parse(&s).unwrap();
        if deny.iter().any(|d| d.matches(&s)) {
            prop_assert!(!perms.allows_publish(&subject));
        }
        if perms.allows_subscribe(&sub) && sub.matches(&s) {
            // Whatever the subscription receives is allowed and not denied.
            prop_assert!(allow.iter().any(|a| a.matches(&s)));
            prop_assert!(!deny.iter().any(|d| d.matches(&s)));
        }
    }
}
