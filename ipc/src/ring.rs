//! A single-producer single-consumer byte ring carrying length-prefixed frames.
//!
//! Positions are byte counts since creation (`u64`, never wrapping in practice); the slot of position
//! `p` is `p % capacity`. The ring is empty when `head == tail` and full when `head - tail == capacity`.
//! A frame is an 8-byte header (`u32` payload length, `u32` flags) followed by its payload; both may
//! wrap around the end of the data region, and are then copied in two pieces. A frame is published
//! only once it is completely written (head stored with Release after the copy), so a consumer never
//! sees a torn frame. A message larger than one frame is split by [`crate::endpoint`].
//!
//! The ring is written against `&RingHeader` plus a raw byte region, so heap memory backs the unit and
//! property tests ([`heap`]) and a shared mapping backs the real thing ([`crate::segment`]). The two ends
//! come into existence together and only together, one [`Producer`] and one [`Consumer`] per ring, which
//! is what makes the unsynchronized copies of frame bytes sound. Everything read from the header is
//! bounds-checked: the peer may be another, buggy or hostile, process.
//!
//! Under `--cfg loom` the atomics are loom's and each data byte is a loom cell, so the models in
//! `loom_tests` check the very code below: that `head` and `tail` hand every byte over with a
//! happens-before edge (a missing Release or Acquire shows up as a data race on a cell).

use crate::sync::{AtomicU64, CacheLine, Ordering};
use std::ptr::NonNull;

/// One byte of a ring's data region: plain memory, or under loom a cell whose accesses loom checks for
/// races.
#[cfg(not(loom))]
pub(crate) type Byte = u8;
/// One byte of a ring's data region: plain memory, or under loom a cell whose accesses loom checks for
/// races.
#[cfg(loom)]
pub(crate) type Byte = loom::cell::UnsafeCell<u8>;

/// Copies `src` into ring memory at `dst`.
///
/// # Safety
/// `dst` must be valid for `src.len()` bytes of writes, and no one else may access them meanwhile.
#[cfg(not(loom))]
unsafe fn copy_in(src: &[u8], dst: *mut Byte) {
    // SAFETY: forwarded from the caller; `src` is ordinary memory, never inside the ring.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) }
}

/// Copies `len` bytes of ring memory at `src` to `dst`.
///
/// # Safety
/// `src` must be valid for `len` bytes of reads that no one writes meanwhile, `dst` for `len` bytes of
/// writes outside the ring.
#[cfg(not(loom))]
unsafe fn copy_out(src: *const Byte, dst: *mut u8, len: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
}

/// Loom's version of [`copy_in`]: one tracked cell write per byte.
///
/// # Safety
/// As for the plain version.
#[cfg(loom)]
unsafe fn copy_in(src: &[u8], dst: *mut Byte) {
    for (i, &b) in src.iter().enumerate() {
        // SAFETY: `dst + i` is a live cell (caller's promise); loom checks the exclusive access.
        unsafe { (*dst.add(i)).with_mut(|p| *p = b) };
    }
}

/// Loom's version of [`copy_out`]: one tracked cell read per byte.
///
/// # Safety
/// As for the plain version.
#[cfg(loom)]
unsafe fn copy_out(src: *const Byte, dst: *mut u8, len: usize) {
    for i in 0..len {
        // SAFETY: `src + i` is a live cell and `dst + i` writable (caller's promise); loom checks that
        // no write to the cell races with this read.
        unsafe { dst.add(i).write((*src.add(i)).with(|p| *p)) };
    }
}

/// Size of a frame header in bytes.
pub const FRAME_HEADER: usize = 8;
/// Flag: this frame ends a message.
pub const FLAG_LAST: u32 = 1;

/// The shared part of one ring: the two positions, on separate cache lines.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct RingHeader {
    /// Producer's next write position, in `tail..=tail + capacity`. Written only by the producer.
    head: CacheLine<AtomicU64>,
    /// Consumer's next read position, in `head - capacity..=head`. Written only by the consumer.
    tail: CacheLine<AtomicU64>,
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<RingHeader>() == 128);
    assert!(std::mem::offset_of!(RingHeader, head) == 0);
    assert!(std::mem::offset_of!(RingHeader, tail) == 64);
};

/// The ring's shared state was found inconsistent: the peer is buggy, hostile or the memory corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// A position read from shared memory is outside what the protocol allows.
    #[error("ring positions are inconsistent: head {head}, tail {tail}, capacity {capacity}")]
    BadPositions {
        /// The head position read.
        head: u64,
        /// The tail position read.
        tail: u64,
        /// The ring's capacity.
        capacity: u64,
    },
    /// A frame header announces more bytes than the ring holds.
    #[error("frame header announces {len} payload bytes but only {available} are published")]
    BadFrame {
        /// Announced payload length.
        len: u64,
        /// Bytes published after the header.
        available: u64,
    },
    /// A frame's tag (its sequence number and length, see `crate::endpoint`) is not the next one's:
    /// a frame was lost, repeated, or written by something other than the peer.
    #[error("frame {frame} carries tag {got:#x}, expected {expected:#x}: the ring was not written by its peer alone")]
    OutOfSequence {
        /// The frame's number in this direction.
        frame: u32,
        /// The tag it should carry.
        expected: u32,
        /// The tag it carries.
        got: u32,
    },
}

/// Raw view of one ring: header and data region. Shared by [`Producer`] and [`Consumer`].
#[derive(Debug, Clone)]
struct RawRing {
    header: NonNull<RingHeader>,
    data: NonNull<Byte>,
    capacity: u64,
    /// The heap memory `header` and `data` point into, for rings made by [`heap`]; `None` when the
    /// memory is a segment's mapping, which the [`crate::Endpoint`] holding both ends keeps alive.
    _heap: Option<crate::sync::Arc<HeapMem>>,
}

// SAFETY: a RawRing is a pair of pointers into memory that the owner of the Producer/Consumer keeps
// mapped (see `Producer::new`); the header is only touched through atomics and each data byte is
// accessed by one side at a time, as the head/tail protocol hands it over. Nothing is thread-local.
unsafe impl Send for RawRing {}

impl RawRing {
    fn header(&self) -> &RingHeader {
        // SAFETY: `new`'s caller guarantees the header stays valid and aligned while this ring lives.
        unsafe { self.header.as_ref() }
    }

    /// Copies `src` into the data region starting at position `pos`, wrapping around the end.
    ///
    /// # Safety
    /// `[pos, pos + src.len())` must be free space owned by the producer (`head <= pos` and
    /// `pos + src.len() <= tail + capacity`), so the consumer does not read it concurrently.
    unsafe fn write_at(&self, pos: u64, src: &[u8]) {
        let cap = self.capacity as usize;
        let start = (pos % self.capacity) as usize;
        let first = src.len().min(cap - start);
        // SAFETY: `start + first <= cap` and the rest `src.len() - first <= cap` (src fits in the free
        // space, which is at most `cap`), so both copies stay inside the region; the caller guarantees no
        // concurrent access; `src` is ordinary memory that cannot overlap the mapping's free space.
        unsafe {
            copy_in(&src[..first], self.data.as_ptr().add(start));
            copy_in(&src[first..], self.data.as_ptr());
        }
    }

    /// Copies `len` bytes starting at position `pos` to `dst`, wrapping around the end.
    ///
    /// # Safety
    /// `[pos, pos + len)` must be published data owned by the consumer (`tail <= pos` and
    /// `pos + len <= head` for a head loaded with Acquire), and `dst` valid for `len` bytes of writes,
    /// outside the mapping.
    unsafe fn read_at(&self, pos: u64, dst: *mut u8, len: usize) {
        let cap = self.capacity as usize;
        let start = (pos % self.capacity) as usize;
        let first = len.min(cap - start);
        // SAFETY: as in `write_at`, with the roles swapped: the range is published and not written by
        // the producer until the consumer advances `tail` past it; `dst` is valid for `len` bytes.
        unsafe {
            copy_out(self.data.as_ptr().add(start), dst, first);
            copy_out(self.data.as_ptr(), dst.add(first), len - first);
        }
    }
}

/// The writing end of a ring. Exactly one exists per ring: it is made together with the ring's one
/// [`Consumer`], by [`heap`] or by a segment's [`crate::Endpoint`].
#[derive(Debug)]
pub struct Producer {
    ring: RawRing,
    /// Own copy of `head`; only this side writes it.
    head: u64,
}

/// The reading end of a ring. Exactly one exists per ring (see [`Producer`]).
#[derive(Debug)]
pub struct Consumer {
    ring: RawRing,
    /// Own copy of `tail`; only this side writes it.
    tail: u64,
}

/// Checks a capacity usable for a ring: a non-zero multiple of 8 that holds at least one frame header
/// and one payload byte.
pub fn valid_capacity(capacity: u64) -> bool {
    capacity >= 2 * FRAME_HEADER as u64 && capacity.is_multiple_of(8)
}

impl Producer {
    /// Creates the producing end of the ring at `header` + `data`. Panics on an invalid capacity (the
    /// callers have checked it).
    ///
    /// # Safety
    /// `header` and `data[..capacity]` must stay valid (mapped, aligned) for the life of the returned
    /// value, and no other `Producer` may exist for this ring.
    #[cfg_attr(loom, allow(dead_code))] // only segments call it, and loom builds leave them out
    pub(crate) unsafe fn new(header: NonNull<RingHeader>, data: NonNull<Byte>, capacity: u64) -> Self {
        Self::with_heap(RawRing { header, data, capacity, _heap: None })
    }

    fn with_heap(ring: RawRing) -> Self {
        assert!(valid_capacity(ring.capacity), "invalid ring capacity {}", ring.capacity);
        // Relaxed: our own index, which only this end writes (0 for a new ring); the memory itself was
        // published to this thread with the segment (its magic number) or the ring's allocation.
        let head = ring.header().head.0.load(Ordering::Relaxed);
        Self { ring, head }
    }

    /// Capacity of the data region in bytes.
    pub fn capacity(&self) -> u64 {
        self.ring.capacity
    }

    /// The largest payload one frame can carry.
    pub fn max_payload(&self) -> usize {
        self.ring.capacity as usize - FRAME_HEADER
    }

    /// Free bytes right now (header included in what a frame needs).
    pub fn free(&self) -> Result<u64, RingError> {
        // SYNC(tail): the consumer is done with everything before `tail`; pairs with the Release store
        // in `Consumer::try_pop`.
        let tail = self.ring.header().tail.0.load(Ordering::Acquire);
        let cap = self.ring.capacity;
        if tail > self.head || self.head - tail > cap {
            return Err(RingError::BadPositions { head: self.head, tail, capacity: cap });
        }
        Ok(cap - (self.head - tail))
    }

    /// Writes one frame if it fits now. `payload.len()` must be at most [`Self::max_payload`].
    pub fn try_push(&mut self, payload: &[u8], flags: u32) -> Result<bool, RingError> {
        debug_assert!(payload.len() <= self.max_payload());
        let need = (FRAME_HEADER + payload.len()) as u64;
        if self.free()? < need {
            return Ok(false);
        }
        let mut hdr = [0u8; FRAME_HEADER];
        hdr[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        hdr[4..].copy_from_slice(&flags.to_le_bytes());
        // SAFETY: `free()` showed `need` bytes from `head` are free; only this producer writes there.
        unsafe {
            self.ring.write_at(self.head, &hdr);
            self.ring.write_at(self.head + FRAME_HEADER as u64, payload);
        }
        self.head += need;
        // SYNC(head): publishes the frame written above; pairs with the Acquire load in `Consumer::try_pop`.
        self.ring.header().head.0.store(self.head, Ordering::Release);
        Ok(true)
    }
}

impl Consumer {
    /// Creates the consuming end of the ring at `header` + `data`. Panics on an invalid capacity.
    ///
    /// # Safety
    /// As for [`Producer::new`], with no other `Consumer` for this ring.
    #[cfg_attr(loom, allow(dead_code))] // as for `Producer::new`
    pub(crate) unsafe fn new(header: NonNull<RingHeader>, data: NonNull<Byte>, capacity: u64) -> Self {
        Self::with_heap(RawRing { header, data, capacity, _heap: None })
    }

    fn with_heap(ring: RawRing) -> Self {
        assert!(valid_capacity(ring.capacity), "invalid ring capacity {}", ring.capacity);
        // Relaxed: our own index, which only this end writes (see `Producer::with_heap`).
        let tail = ring.header().tail.0.load(Ordering::Relaxed);
        Self { ring, tail }
    }

    /// Whether a frame is published and not yet consumed. Cheap: one Acquire load.
    pub fn has_data(&self) -> bool {
        // SYNC(head): see `try_pop`.
        self.ring.header().head.0.load(Ordering::Acquire) != self.tail
    }

    /// Reads one frame if one is published: appends its payload to `out` and returns its flags.
    pub fn try_pop(&mut self, out: &mut Vec<u8>) -> Result<Option<u32>, RingError> {
        // SYNC(head): every frame byte before `head` is visible after this load; pairs with the Release
        // store in `Producer::try_push`.
        let head = self.ring.header().head.0.load(Ordering::Acquire);
        let cap = self.ring.capacity;
        if head < self.tail || head - self.tail > cap {
            return Err(RingError::BadPositions { head, tail: self.tail, capacity: cap });
        }
        let available = head - self.tail;
        if available == 0 {
            return Ok(None);
        }
        if available < FRAME_HEADER as u64 {
            return Err(RingError::BadFrame { len: 0, available });
        }
        let mut hdr = [0u8; FRAME_HEADER];
        // SAFETY: the 8 bytes at `tail` are published (available >= 8) and owned by the consumer; `hdr`
        // is 8 writable bytes on the stack.
        unsafe { self.ring.read_at(self.tail, hdr.as_mut_ptr(), FRAME_HEADER) };
        let len = u32::from_le_bytes(hdr[..4].try_into().expect("4 bytes")) as u64;
        let flags = u32::from_le_bytes(hdr[4..].try_into().expect("4 bytes"));
        if len > available - FRAME_HEADER as u64 {
            return Err(RingError::BadFrame { len, available: available - FRAME_HEADER as u64 });
        }
        let (old_len, len) = (out.len(), len as usize);
        out.reserve(len);
        // SAFETY: `len` bytes after the header are published (checked just above); `reserve` made room
        // for `len` more bytes after `old_len`, which the copy initializes before `set_len` exposes them.
        // No zero-fill first: the payload is copied exactly once.
        unsafe {
            self.ring.read_at(self.tail + FRAME_HEADER as u64, out.as_mut_ptr().add(old_len), len);
            out.set_len(old_len + len);
        }
        self.tail += (FRAME_HEADER + len) as u64;
        // SYNC(tail): hands the bytes just read back to the producer; pairs with the Acquire load in
        // `Producer::free`.
        self.ring.header().tail.0.store(self.tail, Ordering::Release);
        Ok(Some(flags))
    }
}

/// Allocates a ring of `capacity` bytes (see [`valid_capacity`]; panics on an invalid one) in ordinary
/// heap memory and returns its two ends, for tests and benchmarks within one process. The memory is
/// freed when both ends are dropped.
pub fn heap(capacity: u64) -> (Producer, Consumer) {
    assert!(valid_capacity(capacity), "invalid ring capacity {capacity}");
    let mem = crate::sync::Arc::new(HeapMem::new(capacity as usize));
    let ring = RawRing { header: mem.header, data: mem.data, capacity, _heap: Some(mem) };
    (Producer::with_heap(ring.clone()), Consumer::with_heap(ring))
}

/// A heap ring's header and data, allocated once and freed on drop; only ever reached through the
/// pointers, so that both ends may use them at once.
#[derive(Debug)]
struct HeapMem {
    header: NonNull<RingHeader>,
    data: NonNull<Byte>,
    len: usize,
}

// SAFETY: HeapMem owns two heap allocations with no thread affinity; it frees them once, in `drop`,
// after both ends (which hold the `Arc`) are gone. Accesses go through the ring protocol (see RawRing).
unsafe impl Send for HeapMem {}
// SAFETY: shared access (the `Arc`) only ever reads the two pointers and the length.
unsafe impl Sync for HeapMem {}

impl HeapMem {
    fn new(len: usize) -> Self {
        let header = NonNull::from(Box::leak(Box::<RingHeader>::default()));
        let bytes: Box<[Byte]> = (0..len).map(|_| Byte::from(0)).collect();
        let data = NonNull::from(Box::leak(bytes)).cast::<Byte>();
        Self { header, data, len }
    }
}

impl Drop for HeapMem {
    fn drop(&mut self) {
        // SAFETY: both pointers come from `Box::leak` in `new`, with these types and this length, and
        // are freed only here, once; the ends that used them are gone (they held the last `Arc`).
        unsafe {
            drop(Box::from_raw(self.header.as_ptr()));
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.data.as_ptr(), self.len)));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::fuzz_cases;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn ring(cap: u64) -> (Producer, Consumer) {
        heap(cap)
    }

    /// The shared header, to play a corrupt or hostile peer.
    fn shared(c: &Consumer) -> &RingHeader {
        c.ring.header()
    }

    #[test]
    fn empty_ring_pops_nothing() {
        let (_p, mut c) = ring(64);
        assert_eq!(c.try_pop(&mut Vec::new()).unwrap(), None);
        assert!(!c.has_data());
    }

    #[test]
    fn push_fails_when_full_and_succeeds_after_pop() {
        let (mut p, mut c) = ring(32);
        assert!(p.try_push(&[1; 8], 0).unwrap()); // 16 bytes
        assert!(p.try_push(&[2; 8], 0).unwrap()); // 32: exactly full
        assert_eq!(p.free().unwrap(), 0);
        assert!(!p.try_push(&[], 0).unwrap());
        let mut out = Vec::new();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
        assert_eq!(out, [1; 8]);
        assert!(p.try_push(&[3; 8], FLAG_LAST).unwrap());
        out.clear();
        c.try_pop(&mut out).unwrap();
        out.clear();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(FLAG_LAST));
        assert_eq!(out, [3; 8]);
    }

    #[test]
    fn frame_wraps_around_the_end() {
        let (mut p, mut c) = ring(40);
        let mut out = Vec::new();
        assert!(p.try_push(&[9; 20], 0).unwrap()); // 28 bytes, head at 28
        c.try_pop(&mut out).unwrap();
        // Header at 28..36, payload 36..40 then 0..16: both pieces of a split copy.
        let payload: Vec<u8> = (0..20).collect();
        assert!(p.try_push(&payload, 0).unwrap());
        out.clear();
        c.try_pop(&mut out).unwrap();
        assert_eq!(out, payload);
        // Header itself split: head is at 56 = 16 mod 40; push 16 payload bytes to reach 80 = 0 mod 40,
        // then one frame whose header starts at 36.
        assert!(p.try_push(&[1; 12], 0).unwrap()); // 56 -> 76 (36 mod 40)
        out.clear();
        c.try_pop(&mut out).unwrap();
        assert!(p.try_push(&[7; 5], 0).unwrap());
        out.clear();
        c.try_pop(&mut out).unwrap();
        assert_eq!(out, [7; 5]);
    }

    #[test]
    fn frame_exactly_filling_the_ring_round_trips() {
        let (mut p, mut c) = ring(16);
        assert_eq!(p.max_payload(), 8);
        for i in 0..5u8 {
            assert!(p.try_push(&[i; 8], 0).unwrap());
            let mut out = Vec::new();
            c.try_pop(&mut out).unwrap();
            assert_eq!(out, [i; 8]);
        }
    }

    #[test]
    fn corrupt_positions_are_an_error_not_ub() {
        let (_p, mut c) = ring(64);
        shared(&c).head.0.store(1000, Ordering::Release);
        assert!(matches!(c.try_pop(&mut Vec::new()), Err(RingError::BadPositions { .. })));
        shared(&c).head.0.store(16, Ordering::Release);
        // Zeroed data: a header of length 0 is fine; then a header claiming more than is published.
        let mut out = Vec::new();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
        assert!(matches!(c.try_pop(&mut out), Ok(Some(0))));
        shared(&c).head.0.store(20, Ordering::Release);
        assert!(matches!(c.try_pop(&mut out), Err(RingError::BadFrame { .. })));
    }

    #[test]
    fn two_threads_stream_frames_in_order() {
        let (mut p, mut c) = ring(256);
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..20_000u32 {
                    let frame = vec![(i % 251) as u8; (i % 200) as usize];
                    while !p.try_push(&frame, i).unwrap() {
                        std::hint::spin_loop();
                    }
                }
            });
            let mut out = Vec::new();
            for i in 0..20_000u32 {
                out.clear();
                let flags = loop {
                    if let Some(f) = c.try_pop(&mut out).unwrap() {
                        break f;
                    }
                    std::hint::spin_loop();
                };
                assert_eq!(flags, i);
                assert_eq!(out, vec![(i % 251) as u8; (i % 200) as usize]);
            }
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(fuzz_cases()))]

        /// A hostile or corrupt peer controls the data bytes and the index it publishes: the reader
        /// returns frames or errors, never panics, never reads outside the region, never loops.
        #[test]
        fn consumer_survives_arbitrary_shared_state(
            cap in (2u64..64).prop_map(|c| c * 8),
            data in proptest::collection::vec(any::<u8>(), 512),
            heads in proptest::collection::vec(prop_oneof![any::<u64>(), 0u64..1024], 1..8),
        ) {
            let (_p, mut c) = ring(cap);
            // SAFETY: the region is `cap` bytes and nothing else touches it during this single-threaded
            // case (the producer end is never used).
            unsafe { copy_in(&data[..cap as usize], c.ring.data.as_ptr()) };
            for head in heads {
                shared(&c).head.0.store(head, Ordering::Release);
                let mut out = Vec::new();
                for _ in 0..(cap as usize) {
                    match c.try_pop(&mut out) {
                        Ok(Some(_)) => prop_assert!(out.len() as u64 <= cap),
                        Ok(None) | Err(_) => break,
                    }
                    out.clear();
                }
            }
        }

        /// The same for the producer, whose peer publishes `tail`.
        #[test]
        fn producer_survives_arbitrary_tail(cap in (2u64..64).prop_map(|c| c * 8), tail in any::<u64>(), len in 0usize..600) {
            let (mut p, c) = ring(cap);
            shared(&c).tail.0.store(tail, Ordering::Release);
            let frame = vec![7u8; len.min(p.max_payload())];
            let _ = p.try_push(&frame, 0);
            let _ = p.free();
        }
    }

    proptest! {
        #[test]
        fn random_push_pop_matches_a_queue_model(
            cap in (2u64..40).prop_map(|c| c * 8),
            ops in proptest::collection::vec(prop_oneof![(0usize..300).prop_map(Some), Just(None)], 1..200),
        ) {
            let (mut p, mut c) = ring(cap);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut used = 0u64;
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Some(len) => {
                        let len = len.min(p.max_payload());
                        let frame = vec![n as u8; len];
                        let fits = used + 8 + len as u64 <= cap;
                        prop_assert_eq!(p.try_push(&frame, n as u32).unwrap(), fits);
                        if fits { used += 8 + len as u64; model.push_back(frame); }
                    }
                    None => {
                        let mut out = Vec::new();
                        let got = c.try_pop(&mut out).unwrap();
                        match model.pop_front() {
                            Some(f) => { prop_assert!(got.is_some()); used -= 8 + f.len() as u64; prop_assert_eq!(out, f); }
                            None => prop_assert!(got.is_none()),
                        }
                    }
                }
            }
        }
    }
}

/// Loom models of the ring: the real `Producer` and `Consumer` over loom atomics and one loom cell per
/// data byte, so a byte handed over without a happens-before edge (a `head` or `tail` published or
/// loaded too weakly) is reported as a race on its cell. Frames of 11 and 13 bytes in a 16-byte ring:
/// the second waits for the first to be consumed, reuses its bytes and wraps around the end.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::{Arc, Doorbell, Wait};
    use loom::thread;
    use std::time::Duration;

    const FRAMES: [&[u8]; 2] = [&[1, 2, 3], &[4, 5, 6, 7, 8]];

    /// Both ends poll (yielding to the other): positions and data alone. Exhaustive.
    #[test]
    fn loom_ring_hands_frames_over_in_order() {
        crate::loom_model(None, || {
            let (mut p, mut c) = heap(16);
            let producer = thread::spawn(move || {
                for (i, frame) in FRAMES.iter().enumerate() {
                    while !p.try_push(frame, i as u32).unwrap() {
                        thread::yield_now();
                    }
                }
            });
            for (i, frame) in FRAMES.iter().enumerate() {
                let mut out = Vec::new();
                let flags = loop {
                    match c.try_pop(&mut out).unwrap() {
                        Some(f) => break f,
                        None => thread::yield_now(),
                    }
                };
                assert_eq!((flags, &out[..]), (i as u32, *frame));
            }
            producer.join().unwrap();
        });
    }

    /// Both ends sleep on doorbells as endpoints do: the producer on its own bell until there is room,
    /// the consumer on its own until there is data, each ringing the other's after its move. A lost
    /// wake-up is a deadlock. Up to 5 preemptions (~6 s).
    #[test]
    fn loom_ring_with_doorbells_never_sleeps_through_a_move() {
        crate::loom_model(Some(5), || {
            let (mut p, mut c) = heap(16);
            let bells = Arc::new([Doorbell::default(), Doorbell::default()]);
            let (producer_bell, consumer_bell) = (0, 1);
            let producer = {
                let bells = bells.clone();
                thread::spawn(move || {
                    for (i, frame) in FRAMES.iter().enumerate() {
                        let need = (FRAME_HEADER + frame.len()) as u64;
                        while !p.try_push(frame, i as u32).unwrap() {
                            let room = || p.free().unwrap() >= need;
                            let w = bells[producer_bell].wait_until(Duration::ZERO, Duration::MAX, room);
                            assert_eq!(w, Wait::Ready);
                        }
                        bells[consumer_bell].ring();
                    }
                })
            };
            for (i, frame) in FRAMES.iter().enumerate() {
                let mut out = Vec::new();
                let flags = loop {
                    if let Some(f) = c.try_pop(&mut out).unwrap() {
                        break f;
                    }
                    let w = bells[consumer_bell].wait_until(Duration::ZERO, Duration::MAX, || c.has_data());
                    assert_eq!(w, Wait::Ready);
                };
                bells[producer_bell].ring();
                assert_eq!((flags, &out[..]), (i as u32, *frame));
            }
            producer.join().unwrap();
        });
    }
}
