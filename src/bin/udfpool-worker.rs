//! `udfpool-worker`: one PROCESS-mode worker, started by the pool (not by hand).

fn main() -> std::process::ExitCode {
    worker::process::main()
}
