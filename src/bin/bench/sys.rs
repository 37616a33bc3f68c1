//! What the harness reads from the OS: CPU pinning, per-core busy time,
//! process RSS, file-descriptor limits and a short machine description.

use std::io;

/// Pins the calling thread (and every thread it creates later) to `cpu`.
pub fn pin_current(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// CPUs this process may run on (after pinning, the one it is pinned to).
pub fn allowed_cpus(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
}

/// Resident set size of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Cumulative (busy, total) jiffies per CPU from `/proc/stat`.
pub fn cpu_times() -> Vec<(u64, u64)> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal ...
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            let total: u64 = v.iter().take(8).sum();
            (total - idle, total)
        })
        .collect()
}

/// Busy percentage of each CPU between two [`cpu_times`] samples.
pub fn busy_percent(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|((b0, t0), (b1, t1))| {
            let total = t1.saturating_sub(*t0);
            if total == 0 {
                0.0
            } else {
                100.0 * b1.saturating_sub(*b0) as f64 / total as f64
            }
        })
        .collect()
}

/// Raises the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

pub struct Machine {
    pub cpus: usize,
    pub model: String,
    pub kernel: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|v| v.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        model,
        kernel,
    }
}

/// Number of CPUs online (not just those this process may use).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 { n as usize } else { 1 }
}

/// CPU time (user + system, in clock ticks) a process has used.
pub fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may contain spaces): state is
    // field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Processes whose CPU time is ours (the harness and its servers).
static WATCHED: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// CPU time (clock ticks) of the watched server processes.
pub fn servers_ticks() -> u64 {
    WATCHED
        .lock()
        .expect("watched")
        .iter()
        .map(|&p| process_ticks(p))
        .sum()
}

/// Clock ticks per second (USER_HZ) of /proc's CPU times.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// CPU time (clock ticks) of each watched process, in the order watched
/// (the gateway, then nats-server).
pub fn watched_ticks() -> Vec<u64> {
    WATCHED
        .lock()
        .expect("watched")
        .iter()
        .map(|&p| process_ticks(p))
        .collect()
}

/// CPU time per item (`gateway_process_cpu_ns_per_<unit>`,
/// `nats_cpu_ns_per_<unit>`) the gateway and nats-server spent since
/// `before` ([`watched_ticks`]) on `n` items. Unlike a rate it hardly moves
/// when other processes share the machine: it tells a slower server from a
/// busier machine.
pub fn cpu_per_item(
    before: &[u64],
    n: u64,
    unit: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let after = watched_ticks();
    let ns = |i: usize| {
        let ticks = after
            .get(i)
            .zip(before.get(i))
            .map_or(0, |(a, b)| a.saturating_sub(*b));
        (ticks as f64 / ticks_per_second() * 1e9 / n.max(1) as f64).round()
    };
    let (gateway, nats) = (ns(0), ns(1));
    crate::debug(&format!(
        "CPU per {unit}: gateway process {gateway} ns, nats-server {nats} ns"
    ));
    let mut extra = serde_json::Map::new();
    extra.insert(format!("gateway_process_cpu_ns_per_{unit}"), gateway.into());
    extra.insert(format!("nats_cpu_ns_per_{unit}"), nats.into());
    extra
}

pub fn watch(pid: u32) {
    WATCHED.lock().expect("watched").push(pid);
}

/// A point-in-time reading for [`Load::since`].
#[derive(Clone)]
pub struct Load {
    cores: Vec<(u64, u64)>,
    /// user + nice + system + steal over all CPUs.
    task_busy: u64,
    ours: u64,
}

impl Load {
    pub fn now() -> Load {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let task_busy = stat
            .lines()
            .next()
            .map(|l| {
                let v: Vec<u64> = l
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                [0, 1, 2, 7]
                    .iter()
                    .map(|&i| v.get(i).copied().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        let mut pids = WATCHED.lock().expect("watched").clone();
        pids.push(std::process::id());
        Load {
            cores: cpu_times(),
            task_busy,
            ours: pids.into_iter().map(process_ticks).sum(),
        }
    }

    /// (busy % per CPU, CPU used by other processes in % of one CPU).
    pub fn since(&self, earlier: &Load) -> (Vec<f64>, f64) {
        let busy = busy_percent(&earlier.cores, &self.cores);
        let wall: u64 = self
            .cores
            .first()
            .zip(earlier.cores.first())
            .map_or(0, |(a, b)| a.1.saturating_sub(b.1));
        let other = (self.task_busy.saturating_sub(earlier.task_busy))
            .saturating_sub(self.ours.saturating_sub(earlier.ours));
        let foreign = if wall == 0 {
            0.0
        } else {
            100.0 * other as f64 / wall as f64
        };
        (busy, foreign)
    }
}
