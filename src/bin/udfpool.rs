//! `udfpool`: apply Python UDFs to files of records (see `udfpool --help`).

fn main() -> std::process::ExitCode {
    let outcome = udfpool::cli::main();
    // SUBINTERPRETER mode keeps closed pools' interpreters for the next pool; end them before exiting.
    host::end_idle_interpreters();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udfpool: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
