//! The stage breakdown: where each batch's time goes, summed per pool (`udfpool.trace-stages=true`).
//!
//! PROCESS mode splits a batch into the stages of its round trip, from timestamps both processes take
//! on the shared monotonic clock (see [`ipc::trace`]); THREAD mode into the waits and phases of the
//! in-process call. Stages are sequential for one batch, so with one batch in flight
//! (`udfpool.max-in-flight=1`) they add up to the batch's latency; with more in flight, `queued` and
//! `result waiting` show the overlap instead of hiding it in another stage.
//!
//! Off (the default), no request is traced and nothing here runs. On, each batch costs about a dozen
//! clock reads and the worker runs its three phases one after another instead of interleaved per row.

use ipc::trace::{ApplyTimes, WorkerTimes};
use serde::Serialize;

/// One part of a batch's trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// DataStream stages: the host splits a batch into the workers' parts (keys, watermarks, order).
    Route,
    /// PROCESS: the host encodes the argument columns.
    HostEncode,
    /// PROCESS: the host waits for room for the request's frame in the ring.
    RingWrite,
    /// PROCESS: the request waits in the ring while the worker finishes earlier batches.
    Queued,
    /// PROCESS: from the request being complete in the ring (or the worker turning to it) until the
    /// worker holds all of it: publishing it, ringing the doorbell and the wake-up of a sleeping worker.
    WakeUp,
    /// PROCESS: the worker decodes the request.
    Decode,
    /// THREAD: waiting to hold the GIL.
    GilWait,
    /// Both: argument values to Python objects.
    ToPython,
    /// Both: the UDF's own calls.
    UdfCalls,
    /// Both: Python results checked and built into the result column.
    FromPython,
    /// PROCESS: the worker encodes the result column.
    ResultEncode,
    /// PROCESS: from the worker writing the response until the host holds all of it (the host's
    /// wake-up included).
    RingBack,
    /// PROCESS: the finished response waits while the host is busy elsewhere (submitting, consuming).
    ResultWaiting,
    /// PROCESS: the host decodes the response.
    HostDecode,
    /// DataStream stages: the host merges the workers' outputs in order (main and side outputs).
    Merge,
}

impl Stage {
    /// PROCESS mode's stages, in the order a batch passes them.
    pub const PROCESS: [Stage; 12] = [
        Stage::HostEncode,
        Stage::RingWrite,
        Stage::Queued,
        Stage::WakeUp,
        Stage::Decode,
        Stage::ToPython,
        Stage::UdfCalls,
        Stage::FromPython,
        Stage::ResultEncode,
        Stage::RingBack,
        Stage::ResultWaiting,
        Stage::HostDecode,
    ];
    /// THREAD mode's stages, in order.
    pub const THREAD: [Stage; 4] = [Stage::GilWait, Stage::ToPython, Stage::UdfCalls, Stage::FromPython];
    /// What a DataStream stage's host adds around its workers' stages: before them, after them.
    pub const STREAM_HOST: [Stage; 2] = [Stage::Route, Stage::Merge];

    /// Every stage.
    pub const ALL: [Stage; STAGES] = [
        Stage::Route,
        Stage::HostEncode,
        Stage::RingWrite,
        Stage::Queued,
        Stage::WakeUp,
        Stage::Decode,
        Stage::GilWait,
        Stage::ToPython,
        Stage::UdfCalls,
        Stage::FromPython,
        Stage::ResultEncode,
        Stage::RingBack,
        Stage::ResultWaiting,
        Stage::HostDecode,
        Stage::Merge,
    ];

    /// The name used in reports and `results.json`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::HostEncode => "host_encode",
            Stage::RingWrite => "ring_write",
            Stage::Queued => "queued",
            Stage::WakeUp => "wake_up",
            Stage::Decode => "decode",
            Stage::GilWait => "gil_wait",
            Stage::ToPython => "to_python",
            Stage::UdfCalls => "udf_calls",
            Stage::FromPython => "from_python",
            Stage::ResultEncode => "result_encode",
            Stage::RingBack => "ring_back",
            Stage::ResultWaiting => "result_waiting",
            Stage::HostDecode => "host_decode",
            Stage::Route => "route",
            Stage::Merge => "merge",
        }
    }
}

const STAGES: usize = 15;

fn slot(stage: Stage) -> usize {
    stage as usize
}

/// Nanoseconds per stage, summed over the traced batches of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageTotals {
    /// Batches traced.
    pub batches: u64,
    /// Rows in those batches.
    pub rows: u64,
    ns: [u64; STAGES],
}

impl StageTotals {
    /// Total nanoseconds spent in `stage`.
    pub fn ns(&self, stage: Stage) -> u64 {
        self.ns[slot(stage)]
    }

    /// Adds `ns` to `stage`.
    pub fn add(&mut self, stage: Stage, ns: u64) {
        self.ns[slot(stage)] += ns;
    }

    /// Adds another pool's or lane's totals.
    pub fn merge(&mut self, other: &StageTotals) {
        self.batches += other.batches;
        self.rows += other.rows;
        for (a, b) in self.ns.iter_mut().zip(other.ns) {
            *a += b;
        }
    }

    /// What was added since `earlier`, a snapshot of the same totals.
    pub fn since(&self, earlier: &StageTotals) -> StageTotals {
        let mut d =
            StageTotals { batches: self.batches - earlier.batches, rows: self.rows - earlier.rows, ns: [0; STAGES] };
        for (i, n) in d.ns.iter_mut().enumerate() {
            *n = self.ns[i] - earlier.ns[i];
        }
        d
    }

    /// The stages with time in them, in `order`, with mean nanoseconds per batch.
    pub fn per_batch(&self, order: &[Stage]) -> Vec<(Stage, f64)> {
        let n = self.batches.max(1) as f64;
        order.iter().map(|&s| (s, self.ns(s) as f64 / n)).collect()
    }

    fn add_apply(&mut self, a: &ApplyTimes) {
        self.add(Stage::ToPython, a.to_python_ns);
        self.add(Stage::UdfCalls, a.udf_ns);
        self.add(Stage::FromPython, a.from_python_ns);
    }

    /// Records one THREAD-mode batch.
    pub fn record_thread(&mut self, rows: usize, gil_wait_ns: u64, apply: &ApplyTimes) {
        self.batches += 1;
        self.rows += rows as u64;
        self.add(Stage::GilWait, gil_wait_ns);
        self.add_apply(apply);
    }

    /// Records one PROCESS-mode batch from the host's marks and the worker's timings.
    pub fn record_process(&mut self, rows: usize, host: &HostMarks, w: &WorkerTimes) {
        self.batches += 1;
        self.rows += rows as u64;
        self.add(Stage::HostEncode, host.encode_ns);
        self.add(Stage::RingWrite, host.write_ns);
        // The request is available from `sent`; the worker turns to it at `idle_since` or then,
        // whichever is later. Saturating: the two clocks are the same clock, but be robust anyway.
        let turned_to = w.idle_since.max(host.sent);
        self.add(Stage::Queued, turned_to.saturating_sub(host.sent));
        self.add(Stage::WakeUp, w.received.saturating_sub(turned_to));
        self.add(Stage::Decode, w.decode_ns);
        self.add_apply(&w.apply);
        self.add(Stage::ResultEncode, w.encode_ns);
        let host_turned_to = host.wait_start.max(w.send_start);
        self.add(Stage::ResultWaiting, host.wait_start.saturating_sub(w.send_start));
        self.add(Stage::RingBack, host.received.saturating_sub(host_turned_to));
        self.add(Stage::HostDecode, host.decode_ns);
    }
}

/// The host's timestamps (shared clock) and durations (ns) of one traced PROCESS-mode batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostMarks {
    /// Encoding the request.
    pub encode_ns: u64,
    /// Waiting for room in the ring (sizing and encoding are `encode_ns`).
    pub write_ns: u64,
    /// When the request was complete in the ring (just before it was published, for one frame).
    pub sent: u64,
    /// When the host began waiting for the response.
    pub wait_start: u64,
    /// When the whole response was out of the ring.
    pub received: u64,
    /// Decoding the response.
    pub decode_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stages_tile_the_round_trip_when_nothing_overlaps() {
        // Host: encode 0..10, write 10..15 (sent at 15), waits from 16, has the response at 90.
        let host = HostMarks { encode_ns: 10, write_ns: 5, sent: 15, wait_start: 16, received: 90, decode_ns: 4 };
        // Worker: idle since 5, has the request at 20, decode 2, apply 3+40+5, encode 6, sends at 80.
        let w = WorkerTimes {
            idle_since: 5,
            received: 20,
            decode_ns: 2,
            apply: ApplyTimes { to_python_ns: 3, udf_ns: 40, from_python_ns: 5 },
            encode_ns: 6,
            send_start: 80,
        };
        let mut t = StageTotals::default();
        t.record_process(100, &host, &w);
        assert_eq!((t.ns(Stage::Queued), t.ns(Stage::WakeUp)), (0, 5));
        assert_eq!((t.ns(Stage::ResultWaiting), t.ns(Stage::RingBack)), (0, 10));
        // Everything outside the worker's own work between `received` and `send_start` is accounted for.
        let worker_gap = (w.send_start - w.received) - (2 + 3 + 40 + 5 + 6);
        let sum: u64 = Stage::PROCESS.iter().map(|&s| t.ns(s)).sum();
        assert_eq!(sum + worker_gap, 10 + 5 + (host.received - host.sent) + 4);
    }

    #[test]
    fn a_busy_worker_shows_as_queued_and_a_busy_host_as_result_waiting() {
        let host = HostMarks { encode_ns: 1, write_ns: 1, sent: 10, wait_start: 200, received: 201, decode_ns: 1 };
        let w = WorkerTimes { idle_since: 50, received: 52, send_start: 100, ..WorkerTimes::default() };
        let mut t = StageTotals::default();
        t.record_process(1, &host, &w);
        assert_eq!((t.ns(Stage::Queued), t.ns(Stage::WakeUp)), (40, 2));
        assert_eq!((t.ns(Stage::ResultWaiting), t.ns(Stage::RingBack)), (100, 1));
    }
}
