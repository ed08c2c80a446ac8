//! Build script shared by every package that links libpython (root, worker, host).
//!
//! pyo3 links the libpython of the interpreter it found at build time, but the dynamic loader searches
//! the default library path first, where Debian ships another libpython 3.11 with other site-packages.
//! An rpath (DT_RUNPATH) to the build interpreter's library directory makes every binary, test and
//! bench load the very library it was built against, without LD_LIBRARY_PATH.

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    // `udfpool_subinterpreters`: built against CPython >= 3.12, whose isolated subinterpreters (PEP 684)
    // SUBINTERPRETER mode runs on.
    println!("cargo:rustc-check-cfg=cfg(udfpool_subinterpreters)");
    // The host built without THREAD mode links no libpython (its workers do): it only needs to know
    // which Python version the workers embed, to check a virtualenv against it, and asks the build
    // interpreter, the one pyo3 would pick.
    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("udfpool-host")
        && std::env::var_os("CARGO_FEATURE_THREAD").is_none()
    {
        let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = std::process::Command::new(&python)
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python} to learn the Python version: {e}"));
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        println!("cargo:rustc-env=UDFPOOL_PYTHON_VERSION={version}");
        println!("cargo:rustc-env=UDFPOOL_PYTHON_LIBDIR=");
        return;
    }
    let config = pyo3_build_config::get();
    if let Some(lib_dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        println!("cargo:rustc-env=UDFPOOL_PYTHON_LIBDIR={lib_dir}");
    } else {
        println!("cargo:rustc-env=UDFPOOL_PYTHON_LIBDIR=");
    }
    if let Some(executable) = config.executable() {
        println!("cargo:rustc-env=UDFPOOL_PYTHON_EXECUTABLE={executable}");
    }
    let version = config.version();
    println!("cargo:rustc-env=UDFPOOL_PYTHON_VERSION={}.{}", version.major, version.minor);
    if (version.major, version.minor) >= (3, 12) {
        println!("cargo:rustc-cfg=udfpool_subinterpreters");
    }
}
