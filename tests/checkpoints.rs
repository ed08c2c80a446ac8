//! Checkpoints of DataStream jobs run by `udfpool run`: a host killed mid-job resumes with `--resume`
//! from its last checkpoint, and the finished output equals an undisturbed run's, every row once.

mod common;

use common::udf_file;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn udfpool(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_udfpool")).current_dir(dir).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A fresh directory with `events.csv` (2 000 rows, out-of-order timestamps, some negative values) and
/// `job.toml`: a map that may kill the host, a keyed process function with state and timers, and a
/// tumbling window reduce, two workers per stage, a side output, checkpoints every millisecond.
fn job_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("checkpoints-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from("k,ts,v\n");
    for i in 0..2000i64 {
        csv += &format!("k{},{},{}\n", i % 7, i * 3 - (i % 5) * 4, i % 11 - 2);
    }
    std::fs::write(dir.join("events.csv"), csv).unwrap();
    let (killer, stream) = (udf_file("host_killer.py"), udf_file("stream.py"));
    let job = format!(
        r#"input = "events.csv"
output = "out.jsonl"
schema = "k:STRING,ts:BIGINT,v:BIGINT"
batch_size = 50
workers = 2
event_time = {{ column = "ts", out_of_orderness = 8 }}
side_outputs = {{ negative = "k:STRING,ts:BIGINT,v:BIGINT" }}

[settings]
"execution.checkpointing.dir" = "chk"
"execution.checkpointing.interval" = "1 ms"
"kill.marker" = "killed"

[[stream]]
op = "map"
udf = "{killer}:KillHostOnce"
output = "k:STRING,ts:BIGINT,v:BIGINT"

[[stream]]
op = "key_by"
key = ["k"]

[[stream]]
op = "process"
udf = "{stream}:CountWithTimeout"
output = "k:STRING,ts:BIGINT,v:BIGINT"

[[stream]]
op = "key_by"
key = ["k"]

[[stream]]
op = "window"
window = "tumbling"
size = 30
function = "reduce"
udf = "{stream}:sum_v"
"#
    );
    std::fs::write(dir.join("job.toml"), job).unwrap();
    dir
}

/// The files a directory holds, names sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_host_killed_mid_job_resumes_from_its_last_checkpoint_with_the_undisturbed_output() {
    for mode in ["process", "thread"] {
        let dir = job_dir(mode);
        let expected = udfpool(
            &dir,
            &[
                "run",
                "--job",
                "job.toml",
                "--mode",
                mode,
                "--output",
                "calm.jsonl",
                "--config",
                "execution.checkpointing.dir=",
            ],
        );
        assert!(expected.status.success(), "{}", text(&expected));
        let calm = std::fs::read_to_string(dir.join("calm.jsonl")).unwrap();
        let calm_negative = std::fs::read_to_string(dir.join("calm.negative.jsonl")).unwrap();
        assert!(calm.lines().count() > 100 && calm_negative.lines().count() > 100);

        let killed = udfpool(&dir, &["run", "--job", "job.toml", "--mode", mode, "--config", "kill.at=3000"]);
        assert_eq!(killed.status.signal(), Some(9), "{mode}: the host was not killed: {}", text(&killed));
        assert!(!dir.join("out.jsonl").exists(), "{mode}: a killed run left a complete-looking output");
        let checkpoints = listing(&dir.join("chk"));
        assert!(checkpoints.len() == 1 && checkpoints[0].starts_with("chk-"), "{mode}: {checkpoints:?}");

        // Without --resume, a run does not silently start over beside an unfinished one.
        let refused = udfpool(&dir, &["run", "--job", "job.toml", "--mode", mode]);
        assert!(!refused.status.success() && text(&refused).contains("--resume"), "{}", text(&refused));

        let resumed =
            udfpool(&dir, &["run", "--job", "job.toml", "--mode", mode, "--resume", "--config", "kill.at=3000"]);
        assert!(resumed.status.success(), "{mode}: {}", text(&resumed));
        assert!(text(&resumed).contains("resumed from checkpoint chk-"), "{}", text(&resumed));
        assert_eq!(std::fs::read_to_string(dir.join("out.jsonl")).unwrap(), calm, "{mode}: main output");
        assert_eq!(std::fs::read_to_string(dir.join("out.negative.jsonl")).unwrap(), calm_negative, "{mode}");
        // Complete: no checkpoint and no unfinished file is left.
        assert_eq!(
            listing(&dir),
            [
                "calm.jsonl",
                "calm.negative.jsonl",
                "events.csv",
                "job.toml",
                "killed",
                "out.jsonl",
                "out.negative.jsonl"
            ],
            "{mode}"
        );
    }
}

#[test]
fn resuming_needs_a_checkpoint_directory_and_the_same_input() {
    let dir = job_dir("refusals");
    let no_dir = udfpool(&dir, &["run", "--job", "job.toml", "--resume", "--config", "execution.checkpointing.dir="]);
    assert!(!no_dir.status.success() && text(&no_dir).contains("--resume needs execution.checkpointing.dir"));
    let killed = udfpool(&dir, &["run", "--job", "job.toml", "--config", "kill.at=3000"]);
    assert_eq!(killed.status.signal(), Some(9), "{}", text(&killed));
    let mut events = std::fs::OpenOptions::new().append(true).open(dir.join("events.csv")).unwrap();
    std::io::Write::write_all(&mut events, b"k1,99999,1\n").unwrap();
    let changed = udfpool(&dir, &["run", "--job", "job.toml", "--resume"]);
    assert!(!changed.status.success() && text(&changed).contains("changed since the checkpoint"), "{}", text(&changed));
    let other_batches = udfpool(&dir, &["run", "--job", "job.toml", "--resume", "--batch-size", "70"]);
    assert!(text(&other_batches).contains("--batch-size 50") || text(&other_batches).contains("changed"));
}
