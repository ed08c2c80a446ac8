//! One side's view of a segment: send and receive whole messages, blocking with a spin and then a
//! futex wait on its own doorbell.
//!
//! A message that fits the ring travels as one frame, which the sender can encode straight into
//! ([`Endpoint::send_with`]) and the receiver decode straight from ([`Endpoint::recv_with`]): no copy
//! of the message on either side beyond the encoding and the decoding themselves. A larger message is
//! split into frames (the last one flagged) and assembled on receipt, so any size goes through a ring
//! of any capacity, never truncated. A side blocked on sending keeps draining what the peer sends
//! into an inbox, so two sides that both send large messages cannot deadlock on two full rings.
//! Every wait has a timeout: the caller decides what a silent peer means (checks that the process is
//! alive, gives up), so no wait can hang forever on a dead peer.

use crate::ring::{Consumer, Producer, RingError, RingHeader, FLAG_LAST, FRAME_HEADER};
use crate::segment::{Segment, SegmentHeader};
use crate::spin::{SpinPolicy, Spinner};
use crate::sync::{Doorbell, Wait};
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// Which side of a segment an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Sends requests, receives responses.
    Host,
    /// Receives requests, sends responses.
    Worker,
}

/// Why a send or receive did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The peer made no progress within the timeout.
    #[error("peer made no progress for {0:?}")]
    TimedOut(Duration),
    /// The shared state is corrupt.
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// The doorbell `side` sleeps on.
fn own_bell(segment: &Segment, side: Side) -> &Doorbell {
    match side {
        Side::Host => &segment.header().host_bell,
        Side::Worker => &segment.header().worker_bell,
    }
}

/// The tag frame `n` of a direction carries in its flags, above [`FLAG_LAST`]: its sequence number
/// mixed with its payload length. The receiver recomputes it for every frame, so a frame lost,
/// repeated or reordered, or a header scribbled over by another process, is an error rather than
/// wrong data — one shift, multiply and compare per frame. (The payload itself is not checksummed:
/// the codec still refuses a malformed message, and nothing reads outside the ring.)
fn frame_tag(n: u32, len: usize) -> u32 {
    (n ^ (len as u32).wrapping_mul(0x9E37_79B1)) << 1
}

/// One side of a segment: made only by [`Segment::create`] (the host's) and [`Segment::open`] (the
/// worker's), one per side, so each ring has exactly one producer and one consumer.
#[derive(Debug)]
pub struct Endpoint {
    side: Side,
    tx: Producer,
    rx: Consumer,
    /// Frames of a message being received, not yet complete.
    partial: Vec<u8>,
    /// Complete messages received while we were blocked sending.
    inbox: VecDeque<Vec<u8>>,
    /// Buffers handed back with [`Endpoint::recycle`], reused for the next messages so that receiving
    /// a large message does not allocate (and page-fault in) fresh memory each time.
    spare: Vec<Vec<u8>>,
    /// How long a wait spins before sleeping.
    spinner: Spinner,
    /// When the wait for the next message began (None: not waiting, or the message was there).
    waiting_since: Option<Instant>,
    /// Frames sent and received so far, for the frames' tags.
    sent_frames: u32,
    received_frames: u32,
    // Keeps the mapping alive for the raw pointers inside `tx` and `rx` (declared last: dropped last).
    segment: Segment,
}

impl Endpoint {
    /// # Safety
    /// The ring pointers must lie inside `segment`'s mapping, and there must be exactly one endpoint per
    /// side for the segment, in all processes together.
    pub(crate) unsafe fn new(
        segment: Segment,
        side: Side,
        requests: NonNull<RingHeader>,
        req_data: NonNull<u8>,
        responses: NonNull<RingHeader>,
        resp_data: NonNull<u8>,
        cap: u64,
    ) -> Self {
        // SAFETY: forwarded from the caller: valid for the mapping's life (held in `segment`), one end each.
        let (tx, rx) = unsafe {
            match side {
                Side::Host => (Producer::new(requests, req_data, cap), Consumer::new(responses, resp_data, cap)),
                Side::Worker => (Producer::new(responses, resp_data, cap), Consumer::new(requests, req_data, cap)),
            }
        };
        Self {
            side,
            tx,
            rx,
            partial: Vec::new(),
            inbox: VecDeque::new(),
            spare: Vec::new(),
            spinner: Spinner::new(SpinPolicy::default()),
            waiting_since: None,
            sent_frames: 0,
            received_frames: 0,
            segment,
        }
    }

    /// How long to spin before sleeping when waiting (see [`crate::spin`]). Spinning longer than the
    /// peer's usual turnaround avoids the ~tens of µs a cross-core wake-up costs; spinning less wastes
    /// the spin.
    pub fn set_spin_policy(&mut self, policy: SpinPolicy) {
        self.spinner = Spinner::new(policy);
    }

    /// The spin the next wait would use.
    pub fn spin(&self) -> Duration {
        self.spinner.spin()
    }

    fn header(&self) -> &SegmentHeader {
        self.segment.header()
    }

    fn peer_bell(&self) -> &Doorbell {
        match self.side {
            Side::Host => &self.header().worker_bell,
            Side::Worker => &self.header().host_bell,
        }
    }

    /// The largest message that travels as one frame, written and read in place: all the ring can
    /// hold in one frame.
    pub fn frame_limit(&self) -> usize {
        self.tx.max_payload()
    }

    /// The frames a larger message is split into: half the ring, so that the peer reads one frame
    /// while the next is written.
    fn chunk_size(&self) -> usize {
        ((self.tx.capacity() / 2) as usize).saturating_sub(FRAME_HEADER).clamp(1, self.tx.max_payload())
    }

    /// Checks frame `n`'s tag (its flags above [`FLAG_LAST`]) for a payload of `len` bytes.
    fn check_tag(n: u32, len: usize, flags: u32) -> Result<(), RingError> {
        let expected = frame_tag(n, len);
        match flags & !FLAG_LAST {
            got if got == expected => Ok(()),
            got => Err(RingError::OutOfSequence { frame: n, expected, got }),
        }
    }

    /// Runs `op` on the receiving ring, then wakes the peer if it gave bytes back (the peer may be
    /// blocked sending, waiting for that room).
    fn consuming<R>(&mut self, op: impl FnOnce(&mut Self) -> R) -> R {
        let before = self.rx.position();
        let r = op(self);
        if self.rx.position() != before {
            self.peer_bell().ring();
        }
        r
    }

    /// Moves every complete frame available now out of the ring, checking each one's tag. Returns
    /// whether anything was consumed.
    fn drain(&mut self) -> Result<bool, RingError> {
        self.consuming(|e| {
            let mut consumed = false;
            loop {
                let start = e.partial.len();
                let Some(flags) = e.rx.try_pop(&mut e.partial)? else { break };
                Self::check_tag(e.received_frames, e.partial.len() - start, flags)?;
                e.received_frames = e.received_frames.wrapping_add(1);
                consumed = true;
                if flags & FLAG_LAST != 0 {
                    let next = e.spare.pop().unwrap_or_default();
                    e.inbox.push_back(std::mem::replace(&mut e.partial, next));
                }
            }
            Ok(consumed)
        })
    }

    /// Gives a received message's buffer back for reuse (keeps at most a few).
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < 4 {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Returns a complete message if one has arrived, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<Vec<u8>>, RingError> {
        if self.inbox.is_empty() {
            self.drain()?;
        }
        Ok(self.inbox.pop_front())
    }

    /// Hands the next complete message to `read` if one has arrived, without waiting: a message of
    /// one frame where it lies in the ring (its bytes go back to the peer when `read` returns), a
    /// longer one once assembled. `read` is taken out of its `Option` when called.
    fn try_recv_with<R>(&mut self, read: &mut Option<impl FnOnce(&[u8]) -> R>) -> Result<Option<R>, RingError> {
        if self.inbox.is_empty() && self.partial.is_empty() {
            let n = self.received_frames;
            let got = self.consuming(|e| {
                let partial = &mut e.partial;
                e.rx.try_read(|flags, bytes| {
                    Self::check_tag(n, bytes.len(), flags)?;
                    if flags & FLAG_LAST != 0 {
                        let read = read.take().expect("read once");
                        Ok(Some(read(bytes)))
                    } else {
                        // The first frame of several: assemble the message.
                        crate::copy::extend(partial, bytes);
                        Ok(None)
                    }
                })
            })?;
            match got {
                None => return Ok(None),
                Some(frame) => {
                    self.received_frames = self.received_frames.wrapping_add(1);
                    if let Some(r) = frame? {
                        return Ok(Some(r));
                    }
                }
            }
        }
        if self.inbox.is_empty() {
            self.drain()?;
        }
        match self.inbox.pop_front() {
            Some(message) => {
                let r = read.take().expect("read once")(&message);
                self.recycle(message);
                Ok(Some(r))
            }
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for a complete message. `Ok(None)` means none came in time.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, RingError> {
        let mut buf = self.spare.pop().unwrap_or_default();
        self.recv_with(timeout, move |bytes| {
            crate::copy::extend(&mut buf, bytes);
            buf
        })
    }

    /// Waits up to `timeout` for a complete message and hands it to `read`: a message of one frame
    /// where it lies in the ring, without a copy (its bytes go back to the peer when `read` returns),
    /// a longer one once assembled. `Ok(None)` means none came in time, and `read` was not called.
    ///
    /// A message's wait spins once: a caller that comes back after `Ok(None)` (to check that the
    /// peer lives) sleeps at once once the spin's time has passed, so a slow peer costs one spin per
    /// message, not one per check. How long the whole wait lasted teaches the adaptive spin.
    pub fn recv_with<R>(&mut self, timeout: Duration, read: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, RingError> {
        let deadline = Instant::now() + timeout;
        let mut read = Some(read);
        loop {
            if let Some(r) = self.try_recv_with(&mut read)? {
                if let Some(since) = self.waiting_since.take() {
                    self.spinner.record(since.elapsed());
                }
                return Ok(Some(r));
            }
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                return Ok(None);
            }
            // One spin's budget per message, whatever wakes the wait in between (a wrap marker, part
            // of a message); spent, the wait sleeps at once.
            let since = *self.waiting_since.get_or_insert(now);
            let spin = (since + self.spinner.spin()).saturating_duration_since(now);
            let rx = &self.rx;
            own_bell(&self.segment, self.side).wait_until(spin, left, || rx.has_data());
        }
    }

    /// Waits for room for a frame of `len` payload bytes, draining incoming messages meanwhile (see
    /// [`Endpoint::send`] for `poll` and `keep_waiting`), then lets `write` fill it in place and
    /// publishes it with `last`, if `write` succeeds.
    fn send_frame<E>(
        &mut self,
        len: usize,
        last: u32,
        poll: Duration,
        keep_waiting: &mut impl FnMut() -> bool,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Result<(), E>, TransferError> {
        let flags = last | frame_tag(self.sent_frames, len);
        let mut write = Some(write);
        loop {
            let written = self.tx.try_write(len, flags, |dst| write.take().expect("write once")(dst))?;
            match written {
                Some(Ok(())) => {
                    self.sent_frames = self.sent_frames.wrapping_add(1);
                    self.peer_bell().ring();
                    return Ok(Ok(()));
                }
                Some(Err(e)) => return Ok(Err(e)),
                None => {}
            }
            // The peer may have to skip a wrap marker just published to make the room: wake it.
            self.peer_bell().ring();
            // Wait for space, or for incoming data to drain so the peer can go on.
            if self.drain()? {
                continue;
            }
            let (tx, rx) = (&self.tx, &self.rx);
            let ready = || tx.would_progress(len) || rx.has_data();
            if own_bell(&self.segment, self.side).wait_until(self.spinner.spin(), poll, ready) == Wait::TimedOut
                && !keep_waiting()
            {
                return Err(TransferError::TimedOut(poll));
            }
        }
    }

    /// Sends one message, splitting it into frames as needed. Blocks while the ring is full, draining
    /// incoming messages meanwhile. Each time the peer makes no progress for `poll`, asks
    /// `keep_waiting` (which may check that the peer process is alive) and fails with `TimedOut` if it
    /// says no; a message is never left half-sent while waiting goes on.
    pub fn send(
        &mut self,
        message: &[u8],
        poll: Duration,
        mut keep_waiting: impl FnMut() -> bool,
    ) -> Result<(), TransferError> {
        let limit = if message.len() <= self.frame_limit() { self.frame_limit() } else { self.chunk_size() };
        let mut chunks = message.chunks(limit.max(1)).peekable();
        // An empty message is still one (empty, last) frame.
        let empty: &[u8] = &[];
        let mut next = chunks.next().or(Some(empty));
        while let Some(chunk) = next {
            let last = if chunks.peek().is_none() { FLAG_LAST } else { 0 };
            let copied = self.send_frame(chunk.len(), last, poll, &mut keep_waiting, |dst| {
                crate::copy::copy(dst, chunk);
                Ok::<(), std::convert::Infallible>(())
            })?;
            let Ok(()) = copied;
            next = chunks.next();
        }
        Ok(())
    }

    /// Sends one message of `len` bytes that `write` produces into the buffer it is given: up to
    /// [`Endpoint::frame_limit`] bytes, straight into the ring's frame (no copy of its own); a longer
    /// one into a buffer first, then sent in frames. Nothing is sent if `write` fails. Waiting as
    /// [`Endpoint::send`].
    pub fn send_with<E>(
        &mut self,
        len: usize,
        poll: Duration,
        mut keep_waiting: impl FnMut() -> bool,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Result<(), E>, TransferError> {
        if len <= self.frame_limit() {
            return self.send_frame(len, FLAG_LAST, poll, &mut keep_waiting, write);
        }
        let mut buf = vec![0u8; len];
        if let Err(e) = write(&mut buf) {
            return Ok(Err(e));
        }
        self.send(&buf, poll, keep_waiting).map(Ok)
    }

    /// The segment this endpoint belongs to (its name, ring capacity, and unlinking the name).
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Which side of the segment this endpoint is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Wakes the peer if it sleeps (e.g. after setting a flag it polls). Cheap when it does not.
    pub fn nudge_peer(&self) {
        self.peer_bell().ring();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame that is not the peer's next one — written by another process into the ring, or the
    /// peer's frame again — is an error naming the frame, never a message.
    #[test]
    fn a_frame_out_of_sequence_is_an_error_not_data() {
        let mut host = Segment::create(1024).unwrap();
        let mut worker = Segment::open(host.segment().name()).unwrap();
        host.send(b"first", Duration::from_secs(1), || false).unwrap();
        assert_eq!(worker.try_recv().unwrap().as_deref(), Some(&b"first"[..]));
        // A stranger's frame with a plausible header: tagged as frame 0 again, not frame 1.
        assert!(host.tx.try_push(b"forged", FLAG_LAST | frame_tag(0, 6)).unwrap());
        match worker.try_recv() {
            Err(RingError::OutOfSequence { frame: 1, expected, got }) => {
                assert_eq!((expected, got), (frame_tag(1, 6), frame_tag(0, 6)));
            }
            other => panic!("{other:?}"),
        }
        // Tags differ for every frame number and length nearby.
        let tags: std::collections::HashSet<u32> =
            (0..64).flat_map(|n| (0..64).map(move |l| frame_tag(n, l))).collect();
        assert_eq!(tags.len(), 64 * 64);
    }

    #[test]
    fn messages_larger_than_the_ring_stream_through_both_ways() {
        let mut host = Segment::create(64).unwrap();
        let mut worker = Segment::open(host.segment().name()).unwrap();
        let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let expect = big.clone();
        std::thread::scope(|s| {
            s.spawn(move || {
                // Echo three messages back, while the host is still sending: both rings fill up.
                for _ in 0..3 {
                    let m = worker.recv(Duration::from_secs(30)).unwrap().expect("message");
                    worker.send(&m, Duration::from_secs(30), || false).unwrap();
                }
            });
            for _ in 0..3 {
                host.send(&big, Duration::from_secs(30), || false).unwrap();
            }
            for _ in 0..3 {
                assert_eq!(host.recv(Duration::from_secs(30)).unwrap().as_deref(), Some(&expect[..]));
            }
        });
    }

    /// The worker is asleep in the futex before the host sends, so only the host's ring of the worker's
    /// bell can deliver the message before the 10 s receive timeout; a lost or misdirected wake-up
    /// leaves it asleep for the whole timeout and fails the test.
    #[test]
    fn send_wakes_a_receiver_asleep_in_the_futex() {
        let mut host = Segment::create(64).unwrap();
        let mut worker = Segment::open(host.segment().name()).unwrap();
        worker.set_spin_policy(SpinPolicy::Fixed(Duration::ZERO));
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let receiver = std::thread::spawn(move || {
            tid_tx.send(crate::sync::tests::gettid()).unwrap();
            let got = worker.recv(Duration::from_secs(10)).unwrap();
            (got, Instant::now())
        });
        crate::sync::tests::until_asleep(host.peer_bell(), tid_rx.recv().unwrap());
        let sent = Instant::now();
        host.send(b"wake up", Duration::from_secs(10), || false).unwrap();
        let (got, received) = receiver.join().unwrap();
        assert_eq!(got.as_deref(), Some(&b"wake up"[..]));
        let took = received - sent;
        assert!(took < Duration::from_secs(5), "the receiver woke after {took:?}: the wake-up was lost");
    }

    #[test]
    fn empty_message_round_trips() {
        let mut host = Segment::create(64).unwrap();
        let mut worker = Segment::open(host.segment().name()).unwrap();
        host.send(&[], Duration::from_secs(1), || false).unwrap();
        assert_eq!(worker.recv(Duration::from_secs(1)).unwrap(), Some(vec![]));
    }

    #[test]
    fn recv_times_out_without_a_sender() {
        let mut host = Segment::create(64).unwrap();
        assert_eq!(host.recv(Duration::from_millis(10)).unwrap(), None);
    }

    #[test]
    fn send_times_out_when_peer_never_reads() {
        let mut host = Segment::create(64).unwrap();
        let mut asked = 0;
        let err = host
            .send(&[0u8; 1000], Duration::from_millis(5), || {
                asked += 1;
                asked < 3
            })
            .unwrap_err();
        assert_eq!(err, TransferError::TimedOut(Duration::from_millis(5)));
        assert_eq!(asked, 3);
    }
}
