//! What the engine's tests share: the checkout, the worker executable, a CSV table, a virtualenv.

#![allow(dead_code)] // each test binary uses its part

use std::path::PathBuf;

pub const MODES: [&str; 2] = ["process", "thread"];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The worker executable beside this test's target directory, built first if `cargo test -p` of this
/// crate alone did not build it.
pub fn worker_exe() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let exe = deps.join("..").join("udfpool-worker");
    if !exe.is_file() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "udfpool", "--bin", "udfpool-worker"])
            .current_dir(root())
            .status()
            .unwrap();
        assert!(status.success(), "building udfpool-worker failed");
    }
    exe
}

/// `examples/data.csv`'s id, x and name columns (its JSON column's quoted quotes trip DataFusion's
/// line splitting), in a CSV file of `dir`.
pub fn data(dir: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("examples/data.csv")).unwrap();
    let mut out = String::from("id,x,name\n");
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.splitn(5, ',').collect();
        out += &format!("{},{},{}\n", f[0], f[1], f[3]);
    }
    let path = dir.join("data.csv");
    std::fs::write(&path, out).unwrap();
    path
}

/// A python with `packages` (pip names that are also module names), in a virtualenv under the target
/// directory that the workspace's tests share; made and filled on first use.
pub fn venv_python(packages: &[&str]) -> String {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("py-vector");
    let python = venv.join("bin").join("python");
    let ok = |c: &mut std::process::Command| c.status().is_ok_and(|s| s.success());
    let imports = format!("import {}", packages.join(", "));
    if !ok(std::process::Command::new(&python).args(["-c", &imports])) {
        if !python.exists() {
            assert!(
                ok(std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv)),
                "python3 -m venv failed"
            );
        }
        let pip = std::process::Command::new(&python).args(["-m", "pip", "install", "-q"]).args(packages).status();
        assert!(pip.is_ok_and(|s| s.success()), "pip install {} failed (is PyPI reachable?)", packages.join(" "));
    }
    python.display().to_string()
}
