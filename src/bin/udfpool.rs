//! `udfpool`: apply Python UDFs to files of records (see `udfpool --help`).

fn main() -> std::process::ExitCode {
    match udfpool::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udfpool: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
