//! UDFs import packages from the user's virtualenv in both modes: named by `python.executable`, or
//! the active one (`VIRTUAL_ENV`), with no PYTHONPATH set by hand.

mod common;

use common::*;
use host::Pool;
use ipc::batch::Value;
use std::path::Path;
use std::process::Command;

/// A fresh virtualenv holding a module `venv_only_probe` that exists nowhere else.
fn venv_with_probe(dir: &Path) -> std::path::PathBuf {
    let venv = dir.join("venv");
    let status = Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(&venv).status().unwrap();
    assert!(status.success(), "python3 -m venv failed");
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        .output()
        .unwrap();
    let site = String::from_utf8(out.stdout).unwrap();
    std::fs::write(Path::new(site.trim()).join("venv_only_probe.py"), "OFFSET = 1000\n").unwrap();
    std::fs::write(
        dir.join("uses_venv.py"),
        "import venv_only_probe\nfrom udfpool import udf\n\n@udf(result_type='int64')\ndef f(x):\n    return x + venv_only_probe.OFFSET\n",
    )
    .unwrap();
    venv
}

#[test]
fn both_modes_see_the_virtualenv_site_packages() {
    let dir = tempfile::tempdir().unwrap();
    let venv = venv_with_probe(dir.path());
    let schema = int_batch("x", &[]).schema().clone();
    for mode in NUMPY_MODES {
        let mut pool = Pool::builder(format!("{}:f", dir.path().join("uses_venv.py").display()), schema.clone())
            .mode(mode)
            .workers(1)
            .worker_exe(worker_exe())
            .config("python.executable", venv.join("bin/python").display().to_string())
            .build()
            .unwrap();
        let out = pool.apply(arrow(int_batch("x", &[Some(1)]))).map(native).unwrap();
        assert_eq!(out.row(0)[1], Value::Int64(1001), "{mode}");
    }
}

#[test]
fn the_active_virtualenv_is_used_by_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let venv = venv_with_probe(dir.path());
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n5\n").unwrap();
    for mode in ["process", "thread"] {
        let out = dir.path().join(format!("out-{mode}.jsonl"));
        let status = Command::new(env!("CARGO_BIN_EXE_udfpool"))
            .args(["run", "--mode", mode, "--udf"])
            .arg(format!("{}:f", dir.path().join("uses_venv.py").display()))
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&out)
            .env("VIRTUAL_ENV", &venv)
            .env_remove("PYTHONPATH")
            .status()
            .unwrap();
        assert!(status.success(), "{mode}");
        assert_eq!(std::fs::read_to_string(out).unwrap(), "{\"x\":5,\"result\":1005}\n", "{mode}");
    }
}
