//! Pool settings, given as Flink-style `key=value` pairs.
//!
//! Keys under `python.` and `udfpool.` are udfpool's and are checked (a typo is an error that lists the
//! valid keys); any other key is a job parameter, handed to the UDF's `open(context)` untouched.

use ipc::spin::SpinPolicy;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the UDF runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Separate `udfpool-worker` processes fed through shared-memory rings (Flink's default).
    #[default]
    Process,
    /// CPython embedded in the host process; worker threads share one interpreter and its GIL.
    Thread,
    /// CPython embedded in the host process; each worker is a thread running an isolated
    /// subinterpreter with its own GIL (PEP 684), so workers run Python in parallel without a codec
    /// or a ring. Needs a build against CPython 3.12 or newer.
    Subinterpreter,
}

impl Mode {
    /// `process`, `thread` or `subinterpreter`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Process => "process",
            Mode::Thread => "thread",
            Mode::Subinterpreter => "subinterpreter",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "process" => Ok(Mode::Process),
            "thread" => Ok(Mode::Thread),
            "subinterpreter" => Ok(Mode::Subinterpreter),
            _ => Err(ConfigError::BadValue {
                key: EXECUTION_MODE.into(),
                value: s.into(),
                expected: "one of: process, thread, subinterpreter (case-insensitive)".into(),
            }),
        }
    }
}

/// Flink's key for the execution mode.
pub const EXECUTION_MODE: &str = "python.execution-mode";
/// A Python interpreter of a virtualenv whose site-packages the UDFs see.
pub const PYTHON_EXECUTABLE: &str = "python.executable";
/// Batches in flight per worker.
pub const MAX_IN_FLIGHT: &str = "udfpool.max-in-flight";
/// Bytes of each shared-memory ring (per direction, per worker).
pub const RING_BYTES: &str = "udfpool.ring-bytes";
/// Microseconds to spin before sleeping when waiting on a ring (unset: learned, see [`ipc::spin`]).
pub const SPIN_US: &str = "udfpool.spin-us";
/// Seconds a worker may take to start and load its UDF.
pub const STARTUP_TIMEOUT_S: &str = "udfpool.startup-timeout-s";
/// Seconds to wait for one batch's result before the worker counts as hung (0: no limit).
pub const BATCH_TIMEOUT_S: &str = "udfpool.batch-timeout-s";
/// How many times a batch whose worker died is retried on a fresh worker before it counts as poison.
pub const MAX_RETRIES: &str = "udfpool.max-retries";
/// Address-space limit of each worker process in MiB (0: none).
pub const WORKER_MEMORY_MB: &str = "udfpool.worker-memory-mb";
/// Whether to time every batch's stages (see [`crate::stages`]).
pub const TRACE_STAGES: &str = "udfpool.trace-stages";
/// DataStream stages: rows of input each kept to rebuild a dead worker's state (0: none kept).
pub const STREAM_REPLAY_ROWS: &str = "udfpool.stream-replay-rows";
/// DataStream stages: `native` (udfpool's Rust operator runtime where it covers the stage) or `python`.
pub const STREAM_RUNTIME: &str = "udfpool.stream-runtime";
/// DataStream jobs: pushed batches in flight at once (1: each push returns its own batch's output).
pub const STREAM_BATCHES_IN_FLIGHT: &str = "udfpool.stream-batches-in-flight";
/// DataStream jobs: how often to checkpoint (Flink's key; a duration such as `10 s`, `500 ms`, `1 min`).
pub const CHECKPOINT_INTERVAL: &str = "execution.checkpointing.interval";
/// DataStream jobs run by `udfpool run`: the directory checkpoints are written to (Flink's key).
pub const CHECKPOINT_DIR: &str = "execution.checkpointing.dir";

/// Aggregates: `ONE_PHASE` (each group's rows to one worker) or `TWO_PHASE` (local accumulators merged
/// by key); Flink's key.
pub const AGG_PHASE_STRATEGY: &str = "table.optimizer.agg-phase-strategy";

/// Every key udfpool itself understands, with a one-line description.
pub const KEYS: [(&str, &str); 16] = [
    (EXECUTION_MODE, "process (default) or thread"),
    (PYTHON_EXECUTABLE, "python of a virtualenv whose packages UDFs import (default: $VIRTUAL_ENV's)"),
    (MAX_IN_FLIGHT, "batches queued per worker to hide latency (default 2)"),
    (RING_BYTES, "bytes per shared-memory ring, each direction (default 1048576)"),
    (
        SPIN_US,
        "microseconds to spin before sleeping on a ring, fixed (default: learned from recent batches, up to 2000, \
         when workers and host threads have a core each; else 50)",
    ),
    (STARTUP_TIMEOUT_S, "seconds a worker may take to start and load its UDF (default 60)"),
    (BATCH_TIMEOUT_S, "seconds to wait for a batch's result before killing its worker as hung (default 0: none)"),
    (MAX_RETRIES, "retries of a batch whose worker died, on a fresh worker, before it is poison (default 2)"),
    (
        WORKER_MEMORY_MB,
        "address-space limit per worker process in MiB; Python raises MemoryError past it (default 0: none)",
    ),
    (TRACE_STAGES, "true to time each batch's stages for the breakdown in Pool::stage_totals (default false)"),
    (
        STREAM_REPLAY_ROWS,
        "DataStream stages: input rows kept to replay into a replacement for a dead worker; past it, a \
         worker death fails the job (default 1000000; 0: keep none)",
    ),
    (
        STREAM_RUNTIME,
        "DataStream stages: native (default) runs map, flat_map, filter, keyed reduce, keyed process \
         without event time, and tumbling and sliding windows' aggregates and reduces in udfpool's Rust \
         operator runtime, calling Python only for the functions; python runs every stage in the bundled \
         Python runtime (every other stage always does)",
    ),
    (
        STREAM_BATCHES_IN_FLIGHT,
        "DataStream jobs: pushed batches in flight at once, 1 to 64 (default 1: each push returns its own \
         batch's output); above 1, a batch enters the first stage while earlier ones run in later stages, \
         and push returns the output of the batches that completed, in order",
    ),
    (
        CHECKPOINT_INTERVAL,
        "DataStream jobs: checkpoint every so often, e.g. 10 s, 500 ms, 1 min (default: none); replay \
         after a worker death then starts at the last checkpoint",
    ),
    (
        CHECKPOINT_DIR,
        "DataStream jobs of udfpool run: write checkpoints here, so that --resume can continue a job whose \
         host died (default: none, checkpoints stay in memory)",
    ),
    (
        AGG_PHASE_STRATEGY,
        "aggregates: ONE_PHASE (default; AUTO means it too) sends each group's rows to one worker; TWO_PHASE \
         accumulates rows where they land and merges the partial accumulators by key (needs merge)",
    ),
];

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value that is not valid for its key.
    #[error("invalid value {value:?} for {key}: expected {expected}")]
    BadValue {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What would be valid.
        expected: String,
    },
    /// A `python.*`, `udfpool.*` or `execution.checkpointing.*` key udfpool does not know.
    #[error("unknown setting {key:?}; udfpool's settings are: {}", KEYS.iter().map(|k| k.0).collect::<Vec<_>>().join(", "))]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// A `key=value` string without `=`.
    #[error("setting {0:?} is not of the form key=value")]
    NotKeyValue(String),
}

/// The parsed settings of a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Execution mode.
    pub mode: Mode,
    /// Virtualenv interpreter, if any.
    pub python_executable: Option<String>,
    /// Batches in flight per worker (>= 1).
    pub max_in_flight: usize,
    /// Ring capacity in bytes.
    pub ring_bytes: u64,
    /// A fixed spin before sleeping; `None`: adaptive where cores allow (see [`PoolConfig::spin_policy`]).
    pub spin: Option<Duration>,
    /// Worker start-up limit.
    pub startup_timeout: Duration,
    /// Per-batch limit (PROCESS mode), if any.
    pub batch_timeout: Option<Duration>,
    /// Retries of a batch whose worker died.
    pub max_retries: u32,
    /// Address-space limit per worker process, in bytes.
    pub worker_memory: Option<u64>,
    /// Time each batch's stages.
    pub trace_stages: bool,
    /// DataStream stages: input rows kept for replay.
    pub stream_replay_rows: u64,
    /// DataStream stages: run in the Python runtime even where the Rust one covers them.
    pub python_stream_runtime: bool,
    /// DataStream jobs: pushed batches in flight at once.
    pub stream_batches_in_flight: usize,
    /// DataStream jobs: how often to checkpoint, if at all.
    pub checkpoint_interval: Option<Duration>,
    /// DataStream jobs of `udfpool run`: where checkpoints are written, if anywhere.
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Aggregates: accumulate where rows land and merge partial accumulators by key.
    pub two_phase: bool,
    /// All pairs as given (job parameters included), for the UDF's context.
    pub raw: BTreeMap<String, String>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Process,
            python_executable: None,
            max_in_flight: 2,
            // 1 MiB measured faster than 4 MiB (PROCESS/THREAD ~0.94x vs ~0.82x at batches of 4096 and
            // 16384): a smaller ring stays in cache. Larger batches are split into frames.
            ring_bytes: 1 << 20,
            spin: None,
            startup_timeout: Duration::from_secs(60),
            batch_timeout: None,
            max_retries: 2,
            worker_memory: None,
            trace_stages: false,
            stream_replay_rows: 1_000_000,
            python_stream_runtime: false,
            stream_batches_in_flight: 1,
            checkpoint_interval: None,
            checkpoint_dir: None,
            two_phase: false,
            raw: BTreeMap::new(),
        }
    }
}

fn number<T: std::str::FromStr>(
    key: &str,
    value: &str,
    expected: &str,
    ok: impl Fn(&T) -> bool,
) -> Result<T, ConfigError> {
    value.trim().parse::<T>().ok().filter(|v| ok(v)).ok_or_else(|| ConfigError::BadValue {
        key: key.into(),
        value: value.into(),
        expected: expected.into(),
    })
}

/// A duration as Flink writes them: a number and a unit (`ms`, `s`, `min`, `h`, `d`, or their long
/// names), with or without a space; a bare number is milliseconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1e-3,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(number * seconds).ok()
}

impl PoolConfig {
    /// How the rings' two sides wait when `busy` threads (worker processes and the host threads that
    /// call them) share this machine's cores: the fixed spin if one was set, else
    /// [`SpinPolicy::for_cores`].
    pub fn spin_policy(&self, busy: usize) -> SpinPolicy {
        match self.spin {
            Some(fixed) => SpinPolicy::Fixed(fixed),
            None => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                SpinPolicy::for_cores(busy, cores)
            }
        }
    }

    /// Parses `key=value` strings (as given on a command line).
    pub fn parse_pair(s: &str) -> Result<(String, String), ConfigError> {
        let (k, v) = s.split_once('=').ok_or_else(|| ConfigError::NotKeyValue(s.into()))?;
        Ok((k.trim().to_owned(), v.trim().to_owned()))
    }

    /// Applies one setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            EXECUTION_MODE => self.mode = value.parse()?,
            PYTHON_EXECUTABLE => self.python_executable = Some(value.to_owned()).filter(|v| !v.is_empty()),
            MAX_IN_FLIGHT => {
                self.max_in_flight = number(key, value, "an integer from 1 to 1024", |n| (1..=1024).contains(n))?
            }
            RING_BYTES => {
                self.ring_bytes = number(key, value, "a multiple of 8 from 4096 to 1073741824", |n: &u64| {
                    (4096..=1 << 30).contains(n) && n.is_multiple_of(8)
                })?
            }
            SPIN_US => {
                self.spin =
                    Some(Duration::from_micros(number(key, value, "microseconds, 0 to 1000000", |n| *n <= 1_000_000)?))
            }
            STARTUP_TIMEOUT_S => {
                self.startup_timeout =
                    Duration::from_secs(number(key, value, "seconds, 1 to 3600", |n| (1..=3600).contains(n))?)
            }
            BATCH_TIMEOUT_S => {
                let secs: f64 =
                    number(key, value, "seconds, 0 (no limit) to 86400", |n: &f64| (0.0..=86400.0).contains(n))?;
                self.batch_timeout = (secs > 0.0).then(|| Duration::from_secs_f64(secs));
            }
            MAX_RETRIES => self.max_retries = number(key, value, "an integer from 0 to 100", |n| *n <= 100)?,
            WORKER_MEMORY_MB => {
                let mb: u64 = number(key, value, "MiB, 0 (no limit) or 64 to 1048576", |n| {
                    *n == 0 || (64..=1 << 20).contains(n)
                })?;
                self.worker_memory = (mb > 0).then_some(mb << 20);
            }
            TRACE_STAGES => {
                self.trace_stages = match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "on" | "yes" => true,
                    "false" | "0" | "off" | "no" => false,
                    _ => {
                        return Err(ConfigError::BadValue {
                            key: key.into(),
                            value: value.into(),
                            expected: "true or false".into(),
                        })
                    }
                }
            }
            STREAM_REPLAY_ROWS => self.stream_replay_rows = number(key, value, "a number of rows", |_: &u64| true)?,
            STREAM_BATCHES_IN_FLIGHT => {
                self.stream_batches_in_flight = number(key, value, "an integer from 1 to 64", |n| (1..=64).contains(n))?
            }
            STREAM_RUNTIME => {
                self.python_stream_runtime = match value.trim().to_ascii_lowercase().as_str() {
                    "native" => false,
                    "python" => true,
                    _ => {
                        return Err(ConfigError::BadValue {
                            key: key.into(),
                            value: value.into(),
                            expected: "native or python".into(),
                        })
                    }
                }
            }
            CHECKPOINT_INTERVAL => {
                let interval = parse_duration(value).ok_or_else(|| ConfigError::BadValue {
                    key: key.into(),
                    value: value.into(),
                    expected: "a duration such as 10 s, 500 ms, 2 min or 1 h (0: no checkpoints)".into(),
                })?;
                self.checkpoint_interval = (!interval.is_zero()).then_some(interval);
            }
            CHECKPOINT_DIR => self.checkpoint_dir = Some(value.trim()).filter(|v| !v.is_empty()).map(Into::into),
            AGG_PHASE_STRATEGY => {
                self.two_phase = match value.trim().to_ascii_uppercase().as_str() {
                    "AUTO" | "ONE_PHASE" => false,
                    "TWO_PHASE" => true,
                    _ => {
                        return Err(ConfigError::BadValue {
                            key: key.into(),
                            value: value.into(),
                            expected: "AUTO, ONE_PHASE or TWO_PHASE".into(),
                        })
                    }
                }
            }
            k if k.starts_with("python.") || k.starts_with("udfpool.") || k.starts_with("execution.checkpointing.") => {
                return Err(ConfigError::UnknownKey { key: k.to_owned() })
            }
            _ => {}
        }
        self.raw.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// Settings from pairs, applied in order over the defaults.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let mut c = Self::default();
        for (k, v) in pairs {
            c.set(k.as_ref(), v.as_ref())?;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_is_case_insensitive_and_defaults_to_process() {
        assert_eq!(PoolConfig::default().mode, Mode::Process);
        assert_eq!(PoolConfig::from_pairs([(EXECUTION_MODE, "THREAD")]).unwrap().mode, Mode::Thread);
        assert_eq!(PoolConfig::from_pairs([(EXECUTION_MODE, "SubInterpreter")]).unwrap().mode, Mode::Subinterpreter);
    }

    #[test]
    fn bad_mode_lists_the_valid_ones() {
        let e = PoolConfig::from_pairs([(EXECUTION_MODE, "fork")]).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid value \"fork\" for python.execution-mode: expected one of: process, thread, subinterpreter (case-insensitive)"
        );
    }

    #[test]
    fn unknown_udfpool_keys_are_rejected_but_job_parameters_pass() {
        assert!(matches!(PoolConfig::from_pairs([("udfpool.spin", "3")]), Err(ConfigError::UnknownKey { .. })));
        let c = PoolConfig::from_pairs([("model.path", "/tmp/m")]).unwrap();
        assert_eq!(c.raw["model.path"], "/tmp/m");
        let typo = PoolConfig::from_pairs([("execution.checkpointing.intervall", "1 s")]);
        assert!(matches!(typo, Err(ConfigError::UnknownKey { .. })));
    }

    #[test]
    fn the_stream_runtime_is_native_or_python() {
        assert!(!PoolConfig::default().python_stream_runtime);
        assert!(PoolConfig::from_pairs([(STREAM_RUNTIME, "Python")]).unwrap().python_stream_runtime);
        assert!(!PoolConfig::from_pairs([(STREAM_RUNTIME, "native")]).unwrap().python_stream_runtime);
        let bad = PoolConfig::from_pairs([(STREAM_RUNTIME, "rust")]).unwrap_err().to_string();
        assert_eq!(bad, "invalid value \"rust\" for udfpool.stream-runtime: expected native or python");
    }

    #[test]
    fn checkpoint_intervals_are_flink_durations() {
        let interval = |v: &str| PoolConfig::from_pairs([(CHECKPOINT_INTERVAL, v)]).map(|c| c.checkpoint_interval);
        assert_eq!(interval("10 s"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(interval("10s"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(interval("500"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(interval("2 min"), Ok(Some(Duration::from_secs(120))));
        assert_eq!(interval("1.5 h"), Ok(Some(Duration::from_secs(5400))));
        assert_eq!(interval("0"), Ok(None));
        for bad in ["", "ten s", "5 fortnights", "-1 s", "1e400 s"] {
            assert!(matches!(interval(bad), Err(ConfigError::BadValue { .. })), "{bad:?} was accepted");
        }
    }
}
