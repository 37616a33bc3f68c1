//! The run's record: JSON for machines, a markdown table for people.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::stats::BenchResult;
use crate::sys;

#[derive(Serialize, Deserialize)]
pub struct MachineInfo {
    pub cpus: usize,
    pub model: String,
    pub kernel: String,
}

#[derive(Serialize, Deserialize)]
pub struct Report {
    pub date: String,
    pub machine: MachineInfo,
    pub mode: String,
    pub pinned: bool,
    pub affinity: serde_json::Value,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pin_note: String,
    pub nats_server: String,
    pub git_commit: String,
    pub duration_s: f64,
    pub results: Vec<BenchResult>,
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

impl Report {
    pub fn new(
        mode: &str,
        pinned: bool,
        affinity: serde_json::Value,
        pin_note: String,
        duration_s: f64,
        results: Vec<BenchResult>,
    ) -> Report {
        let m = sys::machine();
        let nats_bin = crate::procs::nats_server_bin();
        Report {
            date: OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default(),
            machine: MachineInfo {
                cpus: sys::online_cpus().max(m.cpus),
                model: m.model,
                kernel: m.kernel,
            },
            mode: mode.into(),
            pinned,
            affinity,
            pin_note,
            nats_server: command_line(&nats_bin.to_string_lossy(), &["--version"]),
            git_commit: command_line("git", &["rev-parse", "--short", "HEAD"]),
            duration_s: (duration_s * 10.0).round() / 10.0,
            results,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes") + "\n"
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Run {} ({} mode, {:.0} s) on {} × {}, Linux {}; gateway commit {}; {}; {}.\n\n",
            self.date,
            self.mode,
            self.duration_s,
            self.machine.cpus,
            self.machine.model,
            self.machine.kernel,
            self.git_commit,
            self.nats_server,
            if self.pinned {
                "gateway and nats-server pinned to CPU 0, load generator to CPU 1".to_owned()
            } else {
                format!("not pinned ({})", self.pin_note)
            }
        ));
        out.push_str("| # | benchmark | gateway | baseline | ratio | target | result |\n");
        out.push_str("|---|---|---:|---:|---:|---|---|\n");
        for r in &self.results {
            let verdict = match (r.pass, r.reference, r.within_quick_bound) {
                (true, _, _) => "met".to_owned(),
                (false, Some(_), true) => "missed (known; no regression)".to_owned(),
                (false, Some(_), false) => "missed (regression)".to_owned(),
                (false, None, true) => "missed (within 80 %)".to_owned(),
                (false, None, false) => "missed".to_owned(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.3} | {} | {} |\n",
                r.id,
                r.name,
                value(r.gateway, &r.metric),
                value(r.baseline, &r.metric),
                r.ratio,
                target(r),
                verdict
            ));
        }
        out.push('\n');
        for r in &self.results {
            let mut line = format!("- **{}** baseline: {}.", r.id, r.baseline_is);
            if let Some(note) = &r.note {
                line.push_str(&format!(" {note}."));
            }
            if !r.extra.is_empty() {
                line.push_str(&format!(" Medians: {}.", extras(&r.extra)));
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

fn value(v: f64, metric: &str) -> String {
    if metric.ends_with("/s") {
        format!("{} {metric}", thousands(v.round() as u64))
    } else {
        format!("{v:.1} {metric}")
    }
}

fn target(r: &BenchResult) -> String {
    r.target_text.clone()
}

fn extras(map: &serde_json::Map<String, serde_json::Value>) -> String {
    map.iter()
        .map(|(k, v)| match v.as_f64() {
            Some(f) if f.abs() < 10.0 => format!("{k} {f:.3}"),
            Some(f) => format!("{k} {}", thousands(f.round() as u64)),
            None => format!("{k} {v}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
