//! [`PoolSettings`]: what every pool a registered function starts is given — the keys of
//! `udfpool run --config` and the number of workers.

use host::{Pool, PoolBuilder};

/// The settings of the pools a function starts: `python.execution-mode`, `udfpool.*` and job
/// parameters as `config` pairs (the keys of `udfpool run --config`), and the number of workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PoolSettings {
    /// `key=value` settings, in order.
    pub config: Vec<(String, String)>,
    /// Workers per pool (default: the number of cores).
    pub workers: Option<usize>,
    /// The `udfpool-worker` executable (default: beside the current one).
    pub worker_exe: Option<std::path::PathBuf>,
}

impl PoolSettings {
    /// One more setting.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// Workers per pool.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// The worker executable.
    pub fn worker_exe(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.worker_exe = Some(path.into());
        self
    }

    pub(crate) fn builder(&self, udf: &str, input: ipc::batch::Schema) -> PoolBuilder {
        let mut b = Pool::builder(udf, input);
        for (k, v) in &self.config {
            b = b.config(k, v);
        }
        if let Some(n) = self.workers {
            b = b.workers(n);
        }
        if let Some(exe) = &self.worker_exe {
            b = b.worker_exe(exe);
        }
        b
    }
}
