//! Which site-packages the UDFs see: the active virtualenv's, in both modes.
//!
//! udfpool embeds the libpython it was built against (pinned by rpath), in the host for THREAD mode and
//! in every worker. A virtualenv named by `python.executable`, or the active one (`VIRTUAL_ENV`), adds
//! its site-packages directories, which we ask its own interpreter for. Its Python version must match
//! the embedded one: compiled packages for another version would not load.

use crate::error::PoolError;
use std::process::Command;

/// Major.minor of the Python udfpool was built against.
pub const EMBEDDED_VERSION: &str = env!("UDFPOOL_PYTHON_VERSION");

/// Site-packages directories to add, from `python.executable` or else `$VIRTUAL_ENV`; empty if neither.
pub fn site_dirs(python_executable: Option<&str>) -> Result<Vec<String>, PoolError> {
    let exe = match python_executable {
        Some(exe) => exe.to_owned(),
        None => match std::env::var("VIRTUAL_ENV") {
            Ok(venv) if !venv.is_empty() => format!("{venv}/bin/python"),
            _ => return Ok(Vec::new()),
        },
    };
    let script = "import sys, site; print('%d.%d' % sys.version_info[:2]); \
                  [print(p) for p in site.getsitepackages()]";
    let out = Command::new(&exe)
        .args(["-c", script])
        .output()
        .map_err(|e| PoolError::Environment(format!("cannot run {exe}: {e}")))?;
    if !out.status.success() {
        return Err(PoolError::Environment(format!(
            "{exe} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let version = lines.next().unwrap_or_default();
    if version != EMBEDDED_VERSION {
        return Err(PoolError::Environment(format!(
            "{exe} is Python {version}, but udfpool embeds Python {EMBEDDED_VERSION}; \
             use a virtualenv made with Python {EMBEDDED_VERSION}"
        )));
    }
    Ok(lines.map(str::to_owned).collect())
}
