//! Checkpoints of DataStream jobs: what a job needs to go on from a point of its input — each stage's
//! position (rows seen, watermark, batches) and each worker's state (keyed state, reduce values,
//! timers, window contents, pickled by the worker) — and a directory that keeps the latest one.
//!
//! A [`crate::datastream::StreamJob`] takes a [`Checkpoint`] between batches
//! ([`StreamJob::checkpoint`](crate::datastream::StreamJob::checkpoint), or every
//! `execution.checkpointing.interval`); a dead worker's replacement then starts from it and replays
//! only the input since. [`CheckpointDir`] writes one to disk atomically with the caller's own
//! position (which input rows and output bytes it covers), and a job built anew continues from it with
//! [`StreamJob::restore`](crate::datastream::StreamJob::restore).
//!
//! On disk, Flink's layout: `DIR/chk-N/` holds `_metadata` (JSON: the job, stage positions, the
//! caller's position, each state file's length and CRC-32) and one `stage-S-worker-W` file per worker.
//! It is written as `DIR/.chk-N.tmp/`, every file synced, then renamed into place (the directory
//! synced too), and only then are older checkpoints removed: at every moment the latest complete
//! checkpoint is on disk. State files are Python pickles: trust a checkpoint directory as you trust
//! the functions' files.

use crate::error::PoolError;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The layout of `_metadata`; a checkpoint of another version is refused.
const FORMAT_VERSION: u32 = 1;
const METADATA: &str = "_metadata";

/// A job's state at a point between batches (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// 1 for a job's first checkpoint, counting on across restores.
    pub id: u64,
    /// The job it belongs to: its stages as the workers get them, and workers per stage.
    pub(crate) job: String,
    pub(crate) stages: Vec<StageCheckpoint>,
}

/// One stage's position and its workers' states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StageCheckpoint {
    /// Rows of the stage's input so far.
    pub(crate) rows: u64,
    pub(crate) watermark: i64,
    /// Connected inputs: each input's own watermark.
    #[serde(default = "no_watermarks")]
    pub(crate) side_watermarks: [i64; 2],
    pub(crate) batches: u64,
    /// Each worker's state, as its stage runtime returned it.
    #[serde(skip)]
    pub(crate) workers: Vec<Vec<u8>>,
}

fn no_watermarks() -> [i64; 2] {
    [i64::MIN; 2]
}

impl Checkpoint {
    /// Bytes of worker state it holds.
    pub fn state_bytes(&self) -> u64 {
        self.stages.iter().flat_map(|s| &s.workers).map(|w| w.len() as u64).sum()
    }
}

/// `_metadata`: everything but the state files, which it describes.
#[derive(Serialize, Deserialize)]
struct Metadata {
    format: u32,
    id: u64,
    job: String,
    stages: Vec<StageCheckpoint>,
    /// Per stage, per worker: file name, length, CRC-32.
    files: Vec<Vec<(String, u64, u32)>>,
    /// The caller's position (input read, output written), as it gave it.
    position: serde_json::Value,
}

/// A directory of checkpoints that keeps the latest complete one (see the module docs).
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    path: PathBuf,
}

fn io_error(context: impl Into<String>, e: impl std::fmt::Display) -> PoolError {
    PoolError::Checkpoint { context: context.into(), message: e.to_string() }
}

/// Writes `bytes` to `path` and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Syncs a directory, so that the names created or renamed in it are on disk.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

impl CheckpointDir {
    /// Checkpoints in `path` (created when the first is written).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete checkpoints here, by id: `chk-N` directories (temporaries excluded).
    fn ids(&self) -> Result<Vec<u64>, PoolError> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(self.path.display().to_string(), e)),
        };
        let mut ids: Vec<u64> =
            entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("chk-")?.parse().ok()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn chk(&self, id: u64) -> PathBuf {
        self.path.join(format!("chk-{id}"))
    }

    /// Writes `checkpoint` with the caller's `position` as `chk-N`, atomically, then removes older
    /// checkpoints and temporaries. Returns the new checkpoint's directory.
    pub fn save(&self, checkpoint: &Checkpoint, position: serde_json::Value) -> Result<PathBuf, PoolError> {
        let target = self.chk(checkpoint.id);
        let context = || target.display().to_string();
        std::fs::create_dir_all(&self.path).map_err(|e| io_error(self.path.display().to_string(), e))?;
        let temporary = self.path.join(format!(".chk-{}.tmp", checkpoint.id));
        let _ = std::fs::remove_dir_all(&temporary);
        std::fs::create_dir(&temporary).map_err(|e| io_error(temporary.display().to_string(), e))?;
        let mut files = Vec::with_capacity(checkpoint.stages.len());
        for (s, stage) in checkpoint.stages.iter().enumerate() {
            let mut stage_files = Vec::with_capacity(stage.workers.len());
            for (w, state) in stage.workers.iter().enumerate() {
                let name = format!("stage-{}-worker-{w}", s + 1);
                write_synced(&temporary.join(&name), state).map_err(|e| io_error(context(), e))?;
                stage_files.push((name, state.len() as u64, crc32fast::hash(state)));
            }
            files.push(stage_files);
        }
        let metadata = Metadata {
            format: FORMAT_VERSION,
            id: checkpoint.id,
            job: checkpoint.job.clone(),
            stages: checkpoint.stages.clone(),
            files,
            position,
        };
        let json = serde_json::to_vec_pretty(&metadata).map_err(|e| io_error(context(), e))?;
        write_synced(&temporary.join(METADATA), &json).map_err(|e| io_error(context(), e))?;
        sync_dir(&temporary).map_err(|e| io_error(context(), e))?;
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(&temporary, &target).map_err(|e| io_error(context(), e))?;
        sync_dir(&self.path).map_err(|e| io_error(context(), e))?;
        for id in self.ids()?.into_iter().filter(|&id| id != checkpoint.id) {
            let _ = std::fs::remove_dir_all(self.chk(id));
        }
        Ok(target)
    }

    /// The latest complete checkpoint and the position saved with it, if there is one. A checkpoint
    /// whose files do not match their metadata (length, CRC-32) is an error, not skipped: resuming
    /// from an older one would repeat output already written.
    pub fn latest(&self) -> Result<Option<(Checkpoint, serde_json::Value)>, PoolError> {
        let Some(&id) = self.ids()?.last() else { return Ok(None) };
        let dir = self.chk(id);
        let context = |what: &str| format!("{}/{what}", dir.display());
        let json = std::fs::read(dir.join(METADATA)).map_err(|e| io_error(context(METADATA), e))?;
        let metadata: Metadata = serde_json::from_slice(&json).map_err(|e| io_error(context(METADATA), e))?;
        if metadata.format != FORMAT_VERSION {
            return Err(io_error(
                context(METADATA),
                format!("format {}, this udfpool reads format {FORMAT_VERSION}", metadata.format),
            ));
        }
        if metadata.files.len() != metadata.stages.len() {
            return Err(io_error(context(METADATA), "a state file list per stage expected"));
        }
        let mut stages = metadata.stages;
        for (stage, files) in stages.iter_mut().zip(&metadata.files) {
            for (name, len, crc) in files {
                if name.contains(['/', '\0']) || name.starts_with('.') {
                    return Err(io_error(context(METADATA), format!("bad state file name {name:?}")));
                }
                let state = std::fs::read(dir.join(name)).map_err(|e| io_error(context(name), e))?;
                if state.len() as u64 != *len || crc32fast::hash(&state) != *crc {
                    return Err(io_error(
                        context(name),
                        format!(
                            "{} bytes with CRC-32 {:08x}; the metadata says {len} bytes, {crc:08x}: the checkpoint is damaged",
                            state.len(),
                            crc32fast::hash(&state)
                        ),
                    ));
                }
                stage.workers.push(state);
            }
        }
        Ok(Some((Checkpoint { id: metadata.id, job: metadata.job, stages }, metadata.position)))
    }

    /// Removes every checkpoint (the job they belong to has completed).
    pub fn clear(&self) -> Result<(), PoolError> {
        for id in self.ids()? {
            std::fs::remove_dir_all(self.chk(id)).map_err(|e| io_error(self.chk(id).display().to_string(), e))?;
        }
        // Empty now unless the caller keeps other things here; then it stays.
        let _ = std::fs::remove_dir(&self.path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(id: u64) -> Checkpoint {
        Checkpoint {
            id,
            job: "job".into(),
            stages: vec![
                StageCheckpoint {
                    rows: 10,
                    watermark: -3,
                    side_watermarks: [1, 2],
                    batches: 2,
                    workers: vec![b"a".to_vec(), vec![0, 255]],
                },
                StageCheckpoint {
                    rows: 7,
                    watermark: i64::MIN,
                    side_watermarks: no_watermarks(),
                    batches: 2,
                    workers: vec![Vec::new()],
                },
            ],
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("udfpool-checkpoint-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_latest_checkpoint_comes_back_whole_and_older_ones_go() {
        let dir = CheckpointDir::new(scratch("latest"));
        assert_eq!(dir.latest().unwrap(), None);
        dir.save(&checkpoint(1), serde_json::json!({"rows": 1})).unwrap();
        dir.save(&checkpoint(2), serde_json::json!({"rows": 2})).unwrap();
        assert_eq!(dir.latest().unwrap(), Some((checkpoint(2), serde_json::json!({"rows": 2}))));
        assert_eq!(dir.ids().unwrap(), vec![2]);
        // A temporary left by a writer that died is not a checkpoint.
        std::fs::create_dir(dir.path().join(".chk-3.tmp")).unwrap();
        assert_eq!(dir.latest().unwrap().unwrap().0.id, 2);
        dir.clear().unwrap();
        assert_eq!(dir.latest().unwrap(), None);
        let _ = std::fs::remove_dir_all(dir.path());
    }

    #[test]
    fn a_damaged_state_file_is_an_error_naming_it() {
        let dir = CheckpointDir::new(scratch("damaged"));
        let at = dir.save(&checkpoint(4), serde_json::Value::Null).unwrap();
        std::fs::write(at.join("stage-1-worker-1"), [0u8, 254]).unwrap();
        let e = dir.latest().unwrap_err().to_string();
        assert!(e.contains("stage-1-worker-1") && e.contains("damaged"), "{e}");
        std::fs::remove_file(at.join("stage-1-worker-1")).unwrap();
        let e = dir.latest().unwrap_err().to_string();
        assert!(e.contains("stage-1-worker-1"), "{e}");
        let _ = std::fs::remove_dir_all(dir.path());
    }
}
