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
//! property tests and a shared mapping backs the real thing. Everything read from the header is
//! bounds-checked: the peer may be another, buggy or hostile, process.

use crate::sync::{AtomicU64, CacheLine, Ordering};
use std::ptr::NonNull;

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
}

/// Raw view of one ring: header and data region. Shared by [`Producer`] and [`Consumer`].
#[derive(Debug, Clone, Copy)]
struct RawRing {
    header: NonNull<RingHeader>,
    data: NonNull<u8>,
    capacity: u64,
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
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data.as_ptr().add(start), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.data.as_ptr(), src.len() - first);
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
            std::ptr::copy_nonoverlapping(self.data.as_ptr().add(start), dst, first);
            std::ptr::copy_nonoverlapping(self.data.as_ptr(), dst.add(first), len - first);
        }
    }
}

/// The writing end of a ring. Exactly one may exist per ring.
#[derive(Debug)]
pub struct Producer {
    ring: RawRing,
    /// Own copy of `head`; only this side writes it.
    head: u64,
}

/// The reading end of a ring. Exactly one may exist per ring.
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
    /// Creates the producing end of the ring at `header` + `data`.
    ///
    /// # Safety
    /// `header` and `data[..capacity]` must stay valid (mapped, aligned) for the life of the returned
    /// value, and no other `Producer` may exist for this ring.
    pub unsafe fn new(header: NonNull<RingHeader>, data: NonNull<u8>, capacity: u64) -> Result<Self, RingError> {
        assert!(valid_capacity(capacity), "invalid ring capacity {capacity}");
        let ring = RawRing { header, data, capacity };
        // Acquire: pairs with nothing yet; reading our own previous value (0 for a new ring).
        let head = ring.header().head.0.load(Ordering::Acquire);
        Ok(Self { ring, head })
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
    /// Creates the consuming end of the ring at `header` + `data`.
    ///
    /// # Safety
    /// As for [`Producer::new`], with no other `Consumer` for this ring.
    pub unsafe fn new(header: NonNull<RingHeader>, data: NonNull<u8>, capacity: u64) -> Result<Self, RingError> {
        assert!(valid_capacity(capacity), "invalid ring capacity {capacity}");
        let ring = RawRing { header, data, capacity };
        // Acquire: reads our own previous value (0 for a new ring).
        let tail = ring.header().tail.0.load(Ordering::Acquire);
        Ok(Self { ring, tail })
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

/// A ring in ordinary heap memory, for tests and benchmarks within one process.
#[derive(Debug)]
pub struct HeapRing {
    header: Box<RingHeader>,
    data: Box<[u8]>,
}

impl HeapRing {
    /// Allocates a ring of `capacity` bytes (see [`valid_capacity`]).
    pub fn new(capacity: u64) -> Self {
        assert!(valid_capacity(capacity), "invalid ring capacity {capacity}");
        Self { header: Box::default(), data: vec![0u8; capacity as usize].into_boxed_slice() }
    }

    /// Splits into its two ends. The `HeapRing` must outlive both (kept alive by the caller).
    ///
    /// # Safety
    /// Call at most once per ring, and keep `self` alive and unmoved-in-place (the boxes do not move)
    /// while the ends are used.
    pub unsafe fn split(&mut self) -> (Producer, Consumer) {
        let header = NonNull::from(&mut *self.header);
        let data = NonNull::new(self.data.as_mut_ptr()).expect("boxed slice is non-null");
        let cap = self.data.len() as u64;
        // SAFETY: the boxes stay allocated while `self` lives (caller's promise), one end of each kind.
        unsafe { (Producer::new(header, data, cap).expect("fresh"), Consumer::new(header, data, cap).expect("fresh")) }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn ring(cap: u64) -> (HeapRing, Producer, Consumer) {
        let mut r = HeapRing::new(cap);
        // SAFETY: split once; `r` is returned alongside the ends and outlives them in each test.
        let (p, c) = unsafe { r.split() };
        (r, p, c)
    }

    #[test]
    fn empty_ring_pops_nothing() {
        let (_r, _p, mut c) = ring(64);
        assert_eq!(c.try_pop(&mut Vec::new()).unwrap(), None);
        assert!(!c.has_data());
    }

    #[test]
    fn push_fails_when_full_and_succeeds_after_pop() {
        let (_r, mut p, mut c) = ring(32);
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
        let (_r, mut p, mut c) = ring(40);
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
        let (_r, mut p, mut c) = ring(16);
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
        let (r, _p, mut c) = ring(64);
        r.header.head.0.store(1000, Ordering::Release);
        assert!(matches!(c.try_pop(&mut Vec::new()), Err(RingError::BadPositions { .. })));
        r.header.head.0.store(16, Ordering::Release);
        // Zeroed data: a header of length 0 is fine; then a header claiming more than is published.
        let mut out = Vec::new();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
        assert!(matches!(c.try_pop(&mut out), Ok(Some(0))));
        r.header.head.0.store(20, Ordering::Release);
        assert!(matches!(c.try_pop(&mut out), Err(RingError::BadFrame { .. })));
    }

    #[test]
    fn two_threads_stream_frames_in_order() {
        let mut r = HeapRing::new(256);
        // SAFETY: split once; `r` outlives the scope that uses both ends.
        let (mut p, mut c) = unsafe { r.split() };
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

    /// Cases for the fuzz-style properties: `UDFPOOL_FUZZ_CASES` (CI sets a larger bounded number).
    pub(crate) fn fuzz_cases() -> u32 {
        std::env::var("UDFPOOL_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
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
            let mut r = HeapRing::new(cap);
            r.data.copy_from_slice(&data[..cap as usize]);
            // SAFETY: split once; `r` outlives both ends within this case.
            let (_p, mut c) = unsafe { r.split() };
            for head in heads {
                r.header.head.0.store(head, Ordering::Release);
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
            let (r, mut p, _c) = ring(cap);
            r.header.tail.0.store(tail, Ordering::Release);
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
            let (_r, mut p, mut c) = ring(cap);
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
