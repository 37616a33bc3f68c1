//! The benchmarks in the order they run, and the quick-mode gate's second
//! look at a result that falls below its bound.

use std::time::Instant;

use crate::err::Result;
use crate::stats::BenchResult;
use crate::{Env, fanout, h2ws, http2, many, publish, reload, replay, snapshot, storm};

/// Benchmarks measured together: one call yields all of their results.
pub struct Group {
    /// The ids `--only` selects it by (B2 and B9 share their load).
    pub ids: &'static [&'static str],
    pub title: &'static str,
}

impl Group {
    pub fn covers(&self, id: &str) -> bool {
        // A result id names its variant after the group's id: "B5 (1 KiB)".
        let base = id.split_whitespace().next().unwrap_or(id);
        self.ids.iter().any(|g| g.eq_ignore_ascii_case(base))
    }
}

/// Cheap ones first; the socket-heavy ones last, so a descriptor or memory
/// problem there cannot disturb the throughput figures.
pub const GROUPS: &[Group] = &[
    Group {
        ids: &["B1"],
        title: "B1 HTTP core publish",
    },
    Group {
        ids: &["B1-H2"],
        title: "B1-H2 HTTP/2 core publish",
    },
    Group {
        ids: &["B2", "B9"],
        title: "B2 HTTP JetStream publish + B9 WebSocket publish",
    },
    Group {
        ids: &["B3"],
        title: "B3 NDJSON core",
    },
    Group {
        ids: &["B4"],
        title: "B4 NDJSON JetStream",
    },
    Group {
        ids: &["B5"],
        title: "B5 WebSocket fan-out",
    },
    Group {
        ids: &["B6"],
        title: "B6 latency",
    },
    Group {
        ids: &["B8"],
        title: "B8 replay",
    },
    Group {
        ids: &["B12"],
        title: "B12 snapshot storm",
    },
    Group {
        ids: &["B7"],
        title: "B7 idle socket memory",
    },
    Group {
        ids: &["B7D"],
        title: "B7d idle socket memory, a subject per socket",
    },
    Group {
        ids: &["B7-H2"],
        title: "B7-H2 idle socket memory over HTTP/2",
    },
    Group {
        ids: &["B10"],
        title: "B10 subscribe storm",
    },
    Group {
        ids: &["B11"],
        title: "B11 many-subject fan-out",
    },
    Group {
        ids: &["B13"],
        title: "B13 reload with open sockets",
    },
];

/// Runs one group's benchmarks.
pub async fn measure(env: &Env, group: &Group) -> Result<Vec<BenchResult>> {
    Ok(match group.ids[0] {
        "B1" => vec![publish::b1(env).await?],
        "B1-H2" => vec![http2::b1_h2(env).await?],
        "B2" => {
            let (b2, b9) = publish::b2_b9(env).await?;
            vec![b2, b9]
        }
        "B3" => vec![publish::b3(env).await?],
        "B4" => vec![publish::b4(env).await?],
        "B5" => fanout::b5(env).await?,
        "B6" => vec![fanout::b6(env).await?],
        "B8" => vec![replay::b8(env).await?],
        "B12" => vec![snapshot::b12(env).await?],
        "B7" => vec![fanout::b7(env, false).await?],
        "B7D" => vec![fanout::b7(env, true).await?],
        "B7-H2" => vec![h2ws::b7_h2(env).await?],
        "B10" => storm::b10(env, env.storm_sockets).await?,
        "B11" => vec![many::b11(env, 1_000).await?],
        "B13" => vec![reload::b13(env).await?],
        other => unreachable!("no benchmark group {other}"),
    })
}

/// Quick mode measures a group once more when one of its results falls
/// below its bound, and keeps the second measurement: a regression shows
/// again, while a tail figure such as B6's p99 can be thrown by a single
/// stall of this shared VM. The first figures stay in the result's note,
/// so a pass on the second look is visible as one. `gate` sets the bounds
/// of fresh results; no second look starts after `until`.
pub async fn second_looks(
    env: &Env,
    mut results: Vec<BenchResult>,
    gate: &impl Fn(&mut [BenchResult]),
    step: &impl Fn(&str),
    until: Instant,
) -> Result<Vec<BenchResult>> {
    for group in GROUPS {
        let below = |r: &BenchResult| group.covers(&r.id) && !r.within_quick_bound;
        if !results.iter().any(below) {
            continue;
        }
        if Instant::now() > until {
            eprintln!("bench: no time left for a second look at {}", group.title);
            continue;
        }
        step(&format!(
            "{} again: below its quick-mode bound",
            group.title
        ));
        let mut again = measure(env, group).await?;
        gate(&mut again);
        let (first, rest): (Vec<_>, Vec<_>) =
            results.into_iter().partition(|r| group.covers(&r.id));
        note_first_look(&first, &mut again);
        results = rest;
        results.extend(again);
    }
    Ok(results)
}

/// Records, in each second-look result, the first look that sent it there.
fn note_first_look(first: &[BenchResult], again: &mut [BenchResult]) {
    for r in again.iter_mut() {
        let Some(f) = first.iter().find(|f| f.id == r.id && !f.within_quick_bound) else {
            continue;
        };
        let look = format!(
            "measured twice: the first look ({:.1} {}, ratio {:.3}) was below the quick-mode bound",
            f.gateway, f.metric, f.ratio
        );
        r.note = Some(match r.note.take() {
            Some(n) => format!("{n}; {look}"),
            None => look,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Goal, Rep, Sample};

    /// B6-like: p99 in µs, ratio at most 2 (quick bound 2.5).
    fn latency(gateway: f64, baseline: f64) -> BenchResult {
        let side = |value| Sample {
            value,
            ..Sample::default()
        };
        let reps = vec![Rep::new(side(gateway), side(baseline))];
        BenchResult::from_reps("B6", "n", "µs", "b", Goal::RatioAtMost, 2.0, reps)
    }

    #[test]
    fn a_second_look_notes_the_first_only_where_that_was_below_its_bound() {
        let first = [latency(912.0, 345.0)];
        assert!(!first[0].within_quick_bound);
        let mut again = [latency(400.0, 380.0)];
        note_first_look(&first, &mut again);
        let note = again[0].note.as_deref().expect("noted");
        assert!(
            note.contains("first look (912.0 µs, ratio 2.643)"),
            "{note}"
        );

        let mut again = [latency(400.0, 380.0)];
        note_first_look(&[latency(300.0, 290.0)], &mut again);
        assert_eq!(again[0].note, None);
    }

    #[test]
    fn every_result_id_maps_to_the_group_that_measures_it() {
        let cases = [
            ("B1", "B1"),
            ("B1-H2", "B1-H2"),
            ("B9", "B2"),
            ("B5 (1 KiB)", "B5"),
            ("B7d", "B7D"),
            ("B7-H2", "B7-H2"),
            ("B10 (10 ms link)", "B10"),
            ("B13", "B13"),
        ];
        for (id, group) in cases {
            let found: Vec<&str> = GROUPS
                .iter()
                .filter(|g| g.covers(id))
                .map(|g| g.ids[0])
                .collect();
            assert_eq!(found, [group], "{id}");
        }
    }
}
