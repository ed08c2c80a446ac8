//! Build script shared by every package that links libpython (root, worker, host).
//!
//! pyo3 links the libpython of the interpreter it found at build time, but the dynamic loader searches
//! the default library path first, where Debian ships another libpython 3.11 with other site-packages.
//! An rpath (DT_RUNPATH) to the build interpreter's library directory makes every binary, test and
//! bench load the very library it was built against, without LD_LIBRARY_PATH.

fn main() {
    let config = pyo3_build_config::get();
    if let Some(lib_dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        println!("cargo:rustc-env=UDFPOOL_PYTHON_LIBDIR={lib_dir}");
    } else {
        println!("cargo:rustc-env=UDFPOOL_PYTHON_LIBDIR=");
    }
    let version = config.version();
    println!("cargo:rustc-env=UDFPOOL_PYTHON_VERSION={}.{}", version.major, version.minor);
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
