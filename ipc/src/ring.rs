//! A single-producer single-consumer byte ring carrying length-prefixed frames, each contiguous in
//! memory so that either end can work on it in place.
//!
//! Positions are byte counts since creation (`u64`, never wrapping in practice); the slot of position
//! `p` is `p % capacity`. The ring is empty when `head == tail` and full when `head - tail == capacity`.
//! A frame is an 8-byte header (`u32` payload length, `u32` flags) followed by its payload, padded to a
//! multiple of 8 bytes, so every position is 8-aligned. A frame never wraps around the end of the data
//! region: one that does not fit before the end is preceded by a wrap marker (a header whose length is
//! [`WRAP`]) that skips the rest of the region, and starts at the front. So the producer can encode
//! straight into a frame ([`Producer::try_write`]) and the consumer decode straight from it
//! ([`Consumer::try_read`]), with no copy into or out of a buffer of their own.
//!
//! A frame written into an empty ring at least [`RESTART_AFTER`] bytes past the front starts again at
//! the front (behind a wrap marker) when it fits there: a pool with one batch in flight then cycles
//! through the first tens of KiB, which stay in both cores' caches and TLBs, instead of the whole
//! region, whose lines had left them a lap later. On the Intel reference machine this took the four
//! copies of an 8 KiB batch's round trip (host encode, worker decode, result encode, host decode)
//! from ~30 µs to ~5 µs in a 1 MiB ring (`udfpool bench`'s stage breakdown; see docs/design.md).
//!
//! A frame is published only once it is completely written (head stored with Release after the
//! writes), so a consumer never sees a torn frame; its bytes go back to the producer only when the
//! consumer is done with them (tail stored with Release after the reads). A message larger than one
//! frame is split by [`crate::endpoint`].
//!
//! The ring is written against `&RingHeader` plus a raw byte region, so heap memory backs the unit and
//! property tests ([`heap`]) and a shared mapping backs the real thing ([`crate::segment`]). The two ends
//! come into existence together and only together, one [`Producer`] and one [`Consumer`] per ring, which
//! is what makes the unsynchronized accesses to frame bytes sound. Everything read from the header is
//! bounds-checked: the peer may be another, buggy or hostile, process.
//!
//! Under `--cfg loom` the atomics are loom's and each data byte is a loom cell, so the models in
//! `loom_tests` check the very code below: that `head` and `tail` hand every byte over with a
//! happens-before edge (a missing Release or Acquire shows up as a data race on a cell). There the
//! in-place accesses go through a copy, one tracked cell access per byte.

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

/// Copies `src` into ring cells at `dst`, one tracked cell write per byte (loom's stand-in for writing
/// a frame in place).
///
/// # Safety
/// `dst` must be valid for `src.len()` cells that no one else accesses meanwhile.
#[cfg(loom)]
unsafe fn copy_in(src: &[u8], dst: *mut Byte) {
    for (i, &b) in src.iter().enumerate() {
        // SAFETY: `dst + i` is a live cell (caller's promise); loom checks the exclusive access.
        unsafe { (*dst.add(i)).with_mut(|p| *p = b) };
    }
}

/// Copies `len` ring cells at `src` to `dst`, one tracked cell read per byte (loom's stand-in for
/// reading a frame in place).
///
/// # Safety
/// `src` must be valid for `len` cells that no one writes meanwhile, `dst` for `len` bytes of writes.
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
/// The length field of a wrap marker: the rest of the data region after it is skipped, and the next
/// frame starts at the front. Never a payload length (a payload is at most the capacity, which is at
/// most 2^32 - 8 as `u32` payload lengths allow).
pub const WRAP: u32 = u32::MAX;

/// How far past the front of the region a frame into an empty ring must start for it to go to the
/// front instead (see the module docs): far enough that the wrap marker this costs is rare for small
/// frames, near enough that their memory stays in cache.
pub const RESTART_AFTER: u64 = 64 << 10;

/// The bytes a frame of `len` payload bytes takes: header, payload, padding to 8.
fn stride(len: usize) -> u64 {
    (FRAME_HEADER + len).next_multiple_of(8) as u64
}

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
    /// A frame header announces more bytes than are published, or a frame that would cross the end
    /// of the data region.
    #[error("frame header announces {len} payload bytes but only {available} are published before the end")]
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

/// Where the next frame goes (see [`Producer::plan`]).
#[derive(Debug, Clone, Copy)]
enum Place {
    /// At `head`: it fits before the end of the region (`fits`: and the space is free now).
    Here {
        /// The space is free now.
        fits: bool,
    },
    /// At the front, after a wrap marker skipping the `skip` bytes left before the end.
    Front {
        /// Bytes the marker skips.
        skip: u64,
        /// Those bytes are free now, so the marker can be written.
        marker_fits: bool,
        /// And the frame fits at the front after it.
        frame_fits: bool,
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

    /// The data region's byte at slot `slot`.
    ///
    /// # Safety
    /// `slot <= capacity` (one past the end is allowed, for empty ranges).
    unsafe fn at(&self, slot: u64) -> *mut Byte {
        // SAFETY: forwarded from the caller: within the region or one past its end.
        unsafe { self.data.as_ptr().add(slot as usize) }
    }

    /// Runs `f` over `len` bytes at `slot` as a mutable slice (under loom: over a copy, written back).
    ///
    /// # Safety
    /// `[slot, slot + len)` must lie inside the region and be free space owned by the producer, which
    /// no one else accesses meanwhile.
    unsafe fn with_mut<R>(&self, slot: u64, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        #[cfg(not(loom))]
        {
            // SAFETY: inside the region (caller), initialized (the mapping and the heap region start
            // zeroed, and only bytes are ever written), and exclusively ours until `head` publishes it.
            let bytes = unsafe { std::slice::from_raw_parts_mut(self.at(slot), len) };
            f(bytes)
        }
        #[cfg(loom)]
        {
            let mut copy = vec![0u8; len];
            let r = f(&mut copy);
            // SAFETY: forwarded from the caller.
            unsafe { copy_in(&copy, self.at(slot)) };
            r
        }
    }

    /// Runs `f` over `len` published bytes at `slot` (under loom: over a copy).
    ///
    /// # Safety
    /// `[slot, slot + len)` must lie inside the region and be published data owned by the consumer
    /// (`tail <= pos` and `pos + len <= head` for a head loaded with Acquire), which the producer does
    /// not write until the consumer advances `tail` past it.
    unsafe fn with_ref<R>(&self, slot: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        #[cfg(not(loom))]
        {
            // SAFETY: inside the region and initialized (as in `with_mut`); published to us by the
            // Acquire load of `head` and left alone by the producer until `tail` moves past it.
            let bytes = unsafe { std::slice::from_raw_parts(self.at(slot).cast_const(), len) };
            f(bytes)
        }
        #[cfg(loom)]
        {
            let mut copy = vec![0u8; len];
            // SAFETY: forwarded from the caller; `copy` is `len` writable bytes.
            unsafe { copy_out(self.at(slot), copy.as_mut_ptr(), len) };
            f(&copy)
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
/// and one payload byte, and whose payloads fit a frame header's `u32` length.
pub fn valid_capacity(capacity: u64) -> bool {
    capacity >= 2 * FRAME_HEADER as u64 && capacity.is_multiple_of(8) && capacity <= u64::from(WRAP - 7)
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

    /// Free bytes right now (a frame needs its header and padding too).
    pub fn free(&self) -> Result<u64, RingError> {
        // SYNC(tail): the consumer is done with everything before `tail`; pairs with the Release store
        // in `Consumer::try_read`.
        let tail = self.ring.header().tail.0.load(Ordering::Acquire);
        let cap = self.ring.capacity;
        if tail > self.head || self.head - tail > cap || !tail.is_multiple_of(8) {
            return Err(RingError::BadPositions { head: self.head, tail, capacity: cap });
        }
        Ok(cap - (self.head - tail))
    }

    /// Where a frame of `len` payload bytes would go now.
    fn plan(&self, len: usize) -> Result<Place, RingError> {
        debug_assert!(len <= self.max_payload());
        let need = stride(len);
        let cap = self.ring.capacity;
        let free = self.free()?;
        let slot = self.head % cap;
        let to_end = cap - slot;
        // Empty and far from the front, with room for the frame there: back to the front.
        let restart = free == cap && slot >= RESTART_AFTER && need <= slot;
        Ok(if need <= to_end && !restart {
            Place::Here { fits: need <= free }
        } else {
            // The marker skips the rest of the region, which must be free before it is written.
            Place::Front {
                skip: to_end,
                marker_fits: to_end <= free,
                frame_fits: to_end <= free && need <= free - to_end,
            }
        })
    }

    /// Whether [`Producer::try_write`] for `len` payload bytes would make progress now (write the
    /// frame, or the wrap marker before it); what a blocked writer waits for. An inconsistent ring
    /// says yes, so that the writer retries and meets the error.
    pub fn would_progress(&self, len: usize) -> bool {
        match self.plan(len) {
            Ok(Place::Here { fits }) => fits,
            Ok(Place::Front { marker_fits, .. }) => marker_fits,
            Err(_) => true,
        }
    }

    /// Whether a frame of `len` payload bytes fits now, contiguous. On the way, when the frame must
    /// start at the front (it does not fit before the end), publishes a wrap marker over the rest of
    /// the region if that is free.
    fn make_room(&mut self, len: usize) -> Result<bool, RingError> {
        let (skip, frame_fits) = match self.plan(len)? {
            Place::Here { fits } => return Ok(fits),
            Place::Front { marker_fits: false, .. } => return Ok(false),
            Place::Front { skip, frame_fits, .. } => (skip, frame_fits),
        };
        let mut marker = [0u8; FRAME_HEADER];
        marker[..4].copy_from_slice(&WRAP.to_le_bytes());
        let slot = self.head % self.ring.capacity;
        // SAFETY: `skip >= 8` (positions are 8-aligned and `slot < cap`), and the `skip` bytes from
        // `head` are free (the plan checked) and only this producer writes there.
        unsafe { self.ring.with_mut(slot, FRAME_HEADER, |b| b.copy_from_slice(&marker)) };
        self.head += skip;
        // SYNC(head): publishes the marker; pairs with the Acquire load in `Consumer::next_frame`.
        self.ring.header().head.0.store(self.head, Ordering::Release);
        Ok(frame_fits)
    }

    /// Writes one frame of `len` payload bytes in place if it fits now: `write` fills the payload
    /// (its bytes hold whatever an earlier frame left), and the frame is published with `flags` only
    /// if it returns `Ok`. `Ok(None)`: no room yet, `write` not called. `len` must be at most
    /// [`Self::max_payload`].
    pub fn try_write<E>(
        &mut self,
        len: usize,
        flags: u32,
        write: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Option<Result<(), E>>, RingError> {
        if !self.make_room(len)? {
            return Ok(None);
        }
        let slot = self.head % self.ring.capacity;
        let mut hdr = [0u8; FRAME_HEADER];
        hdr[..4].copy_from_slice(&(len as u32).to_le_bytes());
        hdr[4..].copy_from_slice(&flags.to_le_bytes());
        // SAFETY: `make_room` showed the frame's stride from `head` is free and before the end of the
        // region; only this producer writes there until `head` is published past it.
        let written = unsafe {
            match self.ring.with_mut(slot + FRAME_HEADER as u64, len, write) {
                Ok(()) => {
                    self.ring.with_mut(slot, FRAME_HEADER, |b| b.copy_from_slice(&hdr));
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        if written.is_ok() {
            self.head += stride(len);
            // SYNC(head): publishes the frame written above; pairs with the Acquire load in
            // `Consumer::next_frame`.
            self.ring.header().head.0.store(self.head, Ordering::Release);
        }
        Ok(Some(written))
    }

    /// Copies one frame in if it fits now. `payload.len()` must be at most [`Self::max_payload`].
    pub fn try_push(&mut self, payload: &[u8], flags: u32) -> Result<bool, RingError> {
        let written = self.try_write(payload.len(), flags, |dst| {
            crate::copy::copy(dst, payload);
            Ok::<(), std::convert::Infallible>(())
        })?;
        Ok(written.is_some())
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

    /// Whether a frame (or wrap marker) is published and not yet consumed. Cheap: one Acquire load.
    pub fn has_data(&self) -> bool {
        // SYNC(head): see `next_frame`.
        self.ring.header().head.0.load(Ordering::Acquire) != self.tail
    }

    /// The consumer's position: it moves whenever bytes go back to the producer.
    pub fn position(&self) -> u64 {
        self.tail
    }

    /// Gives everything before `tail` back to the producer.
    fn release(&mut self, tail: u64) {
        self.tail = tail;
        // SYNC(tail): hands the bytes read back to the producer; pairs with the Acquire load in
        // `Producer::free`.
        self.ring.header().tail.0.store(self.tail, Ordering::Release);
    }

    /// The next published frame's payload slot, length and flags, skipping wrap markers; checks
    /// everything the peer wrote. Each marker moves `tail` forward, so this ends.
    fn next_frame(&mut self) -> Result<Option<(u64, usize, u32)>, RingError> {
        let cap = self.ring.capacity;
        loop {
            // SYNC(head): every frame byte before `head` is visible after this load; pairs with the
            // Release stores in `Producer::try_write` and `Producer::make_room`.
            let head = self.ring.header().head.0.load(Ordering::Acquire);
            if head < self.tail || head - self.tail > cap || !head.is_multiple_of(8) {
                return Err(RingError::BadPositions { head, tail: self.tail, capacity: cap });
            }
            let available = head - self.tail;
            if available == 0 {
                return Ok(None);
            }
            // `available` is a non-zero multiple of 8 (both positions are), so it covers a header.
            let slot = self.tail % cap;
            let to_end = cap - slot;
            // SAFETY: the 8 bytes at `slot` are published (available >= 8) and inside the region
            // (`slot <= cap - 8`: 8-aligned and below `cap`).
            let hdr: [u8; FRAME_HEADER] =
                unsafe { self.ring.with_ref(slot, FRAME_HEADER, |b| b.try_into().expect("8 bytes")) };
            let len = u32::from_le_bytes(hdr[..4].try_into().expect("4 bytes"));
            let flags = u32::from_le_bytes(hdr[4..].try_into().expect("4 bytes"));
            if len == WRAP {
                if to_end > available {
                    return Err(RingError::BadFrame { len: to_end, available });
                }
                self.release(self.tail + to_end);
                continue;
            }
            let room = available.min(to_end) - FRAME_HEADER as u64;
            if u64::from(len) > room {
                return Err(RingError::BadFrame { len: len.into(), available: room });
            }
            return Ok(Some((slot + FRAME_HEADER as u64, len as usize, flags)));
        }
    }

    /// Reads one frame in place if one is published: `read` gets its flags and payload, and the
    /// frame's bytes go back to the producer once it returns. `Ok(None)`: nothing published.
    ///
    /// The payload is the peer's memory: a peer that breaks the protocol may change it while `read`
    /// runs, so `read` must check what it takes from it (the codec does: lengths against the slice,
    /// strings after copying them out).
    pub fn try_read<R>(&mut self, read: impl FnOnce(u32, &[u8]) -> R) -> Result<Option<R>, RingError> {
        let Some((slot, len, flags)) = self.next_frame()? else { return Ok(None) };
        // SAFETY: `next_frame` checked that `len` bytes at `slot` are published and inside the region.
        let r = unsafe { self.ring.with_ref(slot, len, |bytes| read(flags, bytes)) };
        self.release(self.tail + stride(len));
        Ok(Some(r))
    }

    /// Reads one frame if one is published: appends its payload to `out` and returns its flags.
    pub fn try_pop(&mut self, out: &mut Vec<u8>) -> Result<Option<u32>, RingError> {
        self.try_read(|flags, bytes| {
            crate::copy::extend(out, bytes);
            flags
        })
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
    fn a_frame_into_an_empty_ring_far_from_the_front_starts_at_the_front() {
        let cap = 4 * RESTART_AFTER;
        let (mut p, mut c) = ring(cap);
        let frame = [7u8; 1000];
        let mut out = Vec::new();
        // One frame at a time, as a pool with one batch in flight sends them.
        let mut slots = Vec::new();
        for i in 0..200u8 {
            assert!(p.try_push(&[i; 1000], 0).unwrap());
            let before = c.position();
            out.clear();
            assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
            assert_eq!(out, [i; 1000]);
            slots.push((c.position() - stride(frame.len())) % cap);
            assert!(c.position() > before);
        }
        // Frames follow one another up to RESTART_AFTER, then go back to the front: the ring's
        // memory in use stays within RESTART_AFTER plus a frame.
        assert!(slots.iter().all(|&s| s < RESTART_AFTER + stride(frame.len())), "{slots:?}");
        let per_lap = RESTART_AFTER.div_ceil(stride(frame.len()));
        assert_eq!(slots.iter().filter(|&&s| s == 0).count() as u64, 200u64.div_ceil(per_lap));
        // Not while the consumer is behind: a frame then follows the unread ones.
        while p.head % cap < RESTART_AFTER {
            assert!(p.try_push(&frame, 0).unwrap());
            assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
        }
        assert!(p.try_push(&frame, 0).unwrap());
        let unread = p.head;
        assert!(p.try_push(&frame, 0).unwrap());
        assert_eq!(p.head, unread + stride(frame.len()));
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
    fn a_frame_that_does_not_fit_before_the_end_starts_at_the_front_after_a_marker() {
        let (mut p, mut c) = ring(64);
        let mut out = Vec::new();
        assert!(p.try_push(&[9; 20], 0).unwrap()); // 8 + 20, padded: 0..32
        assert!(p.try_push(&[8; 4], 0).unwrap()); // 32..48
        c.try_pop(&mut out).unwrap();
        // 16 bytes to the end, free 48: a 20-byte frame goes to the front, after a marker at 48.
        let payload: Vec<u8> = (0..20).collect();
        assert!(p.try_push(&payload, 7).unwrap());
        assert_eq!(p.head, 64 + 32);
        out.clear();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
        assert_eq!(out, [8; 4]);
        out.clear();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(7), "the marker is skipped, not a frame");
        assert_eq!(out, payload);
        // Read in place: the payload is one contiguous slice of the region.
        assert!(p.try_push(&[5; 12], 1).unwrap());
        let seen = c.try_read(|flags, bytes| (flags, bytes.to_vec())).unwrap();
        assert_eq!(seen, Some((1, vec![5; 12])));
    }

    #[test]
    fn a_marker_waits_for_the_rest_of_the_region_to_be_free() {
        let (mut p, mut c) = ring(64);
        assert!(p.try_push(&[1; 40], 0).unwrap()); // 0..48
                                                   // 16 left before the end: a 24-byte frame must go to the front, which the first still holds.
        assert!(!p.try_push(&[2; 24], 0).unwrap());
        assert!(!p.would_progress(24));
        c.try_pop(&mut Vec::new()).unwrap();
        assert!(p.would_progress(24));
        assert!(p.try_push(&[2; 24], 0).unwrap());
        let mut out = Vec::new();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
        assert_eq!(out, [2; 24]);
    }

    #[test]
    fn a_failed_write_publishes_nothing() {
        let (mut p, mut c) = ring(64);
        let r = p.try_write(8, 0, |dst| {
            dst.fill(1);
            Err("no")
        });
        assert_eq!(r.unwrap(), Some(Err("no")));
        assert!(!c.has_data());
        assert_eq!(
            p.try_write(3, 5, |dst| {
                dst.copy_from_slice(b"abc");
                Ok::<(), ()>(())
            })
            .unwrap(),
            Some(Ok(()))
        );
        assert_eq!(c.try_read(|f, b| (f, b.to_vec())).unwrap(), Some((5, b"abc".to_vec())));
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
        shared(&c).head.0.store(12, Ordering::Release);
        assert!(matches!(c.try_pop(&mut Vec::new()), Err(RingError::BadPositions { .. })), "not 8-aligned");
        shared(&c).head.0.store(16, Ordering::Release);
        // Zeroed data: a header of length 0 is fine; then a header claiming more than is published.
        let mut out = Vec::new();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
        assert!(matches!(c.try_pop(&mut out), Ok(Some(0))));
        shared(&c).head.0.store(24, Ordering::Release);
        // SAFETY: single-threaded test; slot 16 is inside the 64-byte region and nothing else uses it.
        unsafe { *c.ring.data.as_ptr().add(16) = 9 };
        assert!(matches!(c.try_pop(&mut out), Err(RingError::BadFrame { .. })));
        // A wrap marker claiming to skip more than is published.
        let (_p, mut c) = ring(64);
        // SAFETY: as above, the first four bytes of the region.
        unsafe { std::ptr::copy_nonoverlapping(WRAP.to_le_bytes().as_ptr(), c.ring.data.as_ptr(), 4) };
        shared(&c).head.0.store(8, Ordering::Release);
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
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), c.ring.data.as_ptr(), cap as usize) };
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
                // Decoding in place, as the endpoints do: whatever the frame holds, an error at worst.
                let decoded = c.try_read(|_, bytes| {
                    let _ = crate::codec::decode::<crate::protocol::Request>(bytes);
                    bytes.len()
                });
                if let Ok(Some(len)) = decoded {
                    prop_assert!(len as u64 <= cap);
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
            // The model: frames in order, each at a start offset, never crossing the end of the region.
            let (mut p, mut c) = ring(cap);
            let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Some(len) => {
                        let len = len.min(p.max_payload());
                        let frame = vec![n as u8; len];
                        let pushed = p.try_push(&frame, n as u32).unwrap();
                        if pushed {
                            let end = p.head % cap;
                            let start = (if end == 0 { cap } else { end }) - stride(len);
                            // Contiguous, and not over any frame still unread.
                            for (s, f) in &model {
                                let (a, b) = (*s, *s + stride(f.len()));
                                prop_assert!(start + stride(len) <= a || b <= start, "overlap");
                            }
                            model.push_back((start, frame));
                        } else {
                            // Only a ring holding something refuses a frame: a frame, or a wrap marker
                            // the consumer has yet to skip.
                            prop_assert!(!model.is_empty() || c.has_data());
                        }
                    }
                    None => {
                        let got = c.try_read(|_, bytes| bytes.to_vec()).unwrap();
                        match model.pop_front() {
                            Some((_, f)) => prop_assert_eq!(got, Some(f)),
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
/// loaded too weakly) is reported as a race on its cell. Frames of 16 bytes each (header, payload,
/// padding) in a 24-byte ring: the second does not fit before the end, so it waits for the first to
/// be consumed, writes a wrap marker and reuses the first one's bytes at the front.
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
            let (mut p, mut c) = heap(24);
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
            let (mut p, mut c) = heap(24);
            let bells = Arc::new([Doorbell::default(), Doorbell::default()]);
            let (producer_bell, consumer_bell) = (0, 1);
            let producer = {
                let bells = bells.clone();
                thread::spawn(move || {
                    for (i, frame) in FRAMES.iter().enumerate() {
                        while !p.try_push(frame, i as u32).unwrap() {
                            let room = || p.would_progress(frame.len());
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
