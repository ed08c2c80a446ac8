//! One shared-memory segment per worker: a header with two doorbells and two ring headers, then the
//! request ring's bytes, then the response ring's bytes (layout in the crate docs).
//!
//! The host creates the segment exclusively (`O_CREAT | O_EXCL`, mode 0600, via `shared_memory`) under
//! an unpredictable name, writes the layout fields and then the magic number with Release. The worker
//! opens it, checks magic (Acquire), layout version and sizes before trusting any offset, and unlinks the
//! name at once: from then on nothing is left in `/dev/shm` even if both processes are SIGKILLed, and the
//! mappings stay valid until each side unmaps. The host also unlinks on drop in case no worker attached.

use crate::endpoint::{Endpoint, Side};
use crate::ring::{valid_capacity, RingHeader};
use crate::sync::{AtomicU32, AtomicU64, Doorbell, Ordering};
use shared_memory::{Shmem, ShmemConf, ShmemError};
use std::ptr::NonNull;
use std::sync::Arc;

/// First 8 bytes of every segment once initialized: "UDFPOOL" and a NUL.
pub const MAGIC: u64 = u64::from_le_bytes(*b"UDFPOOL\0");
/// Bumped whenever the header layout or the framing changes.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes before the first ring's data: the header, rounded up to a page.
pub const DATA_OFFSET: usize = 4096;

/// The segment header. Lives at offset 0 of the mapping.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct SegmentHeader {
    /// [`MAGIC`] once the creator has initialized everything else; 0 before. Written once by the host.
    magic: AtomicU64,
    /// [`LAYOUT_VERSION`]. Written once by the host before `magic`.
    version: AtomicU32,
    _pad0: u32,
    /// Capacity of each ring in bytes. Written once by the host before `magic`.
    ring_capacity: AtomicU64,
    /// Total mapping length the host created. Written once by the host before `magic`.
    total_len: AtomicU64,
    _pad1: [u8; 32],
    /// The host sleeps on this; the worker rings it after publishing a response frame or consuming a
    /// request frame.
    pub host_bell: Doorbell,
    /// The worker sleeps on this; the host rings it after publishing a request frame or consuming a
    /// response frame.
    pub worker_bell: Doorbell,
    /// Host -> worker ring.
    pub requests: RingHeader,
    /// Worker -> host ring.
    pub responses: RingHeader,
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<SegmentHeader>() <= DATA_OFFSET);
    assert!(std::mem::offset_of!(SegmentHeader, magic) == 0);
    assert!(std::mem::offset_of!(SegmentHeader, host_bell) == 64);
    assert!(std::mem::offset_of!(SegmentHeader, worker_bell) == 128);
    assert!(std::mem::offset_of!(SegmentHeader, requests) == 192);
    assert!(std::mem::offset_of!(SegmentHeader, responses) == 320);
};

/// Why a segment could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SegmentCreateError {
    /// The ring capacity is not usable.
    #[error("ring capacity {0} must be a multiple of 8 and at least 16 bytes")]
    BadCapacity(u64),
    /// The operating system refused.
    #[error("cannot create shared-memory segment: {0}")]
    Os(#[from] ShmemError),
}

/// Why a segment could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SegmentOpenError {
    /// The name does not exist or cannot be mapped.
    #[error("cannot open shared-memory segment {name}: {source}")]
    Os {
        /// The name given.
        name: String,
        /// The underlying error.
        source: ShmemError,
    },
    /// The magic number is not there: the creator has not finished, or this is not a udfpool segment.
    #[error("shared-memory segment {0} is not initialized as a udfpool segment")]
    NotInitialized(String),
    /// The creator speaks another layout version.
    #[error("shared-memory segment has layout version {found}, expected {expected}")]
    LayoutMismatch {
        /// Version in the segment.
        found: u32,
        /// Version this build speaks.
        expected: u32,
    },
    /// Sizes in the header disagree with the mapping.
    #[error("shared-memory segment sizes are inconsistent: ring capacity {ring_capacity}, header length {header_len}, mapped length {mapped_len}")]
    BadSizes {
        /// Ring capacity from the header.
        ring_capacity: u64,
        /// Total length from the header.
        header_len: u64,
        /// Length actually mapped.
        mapped_len: usize,
    },
}

/// The mapping, shareable between the endpoint and whoever keeps the segment alive.
pub struct Mapping {
    shmem: Shmem,
}

// SAFETY: `Shmem` is !Send only because it holds a raw pointer; the mapping is process-wide, has no
// thread affinity, and is unmapped exactly once when the last `Arc<Mapping>` drops.
unsafe impl Send for Mapping {}
// SAFETY: shared access only reads the pointer and length; all access to the mapped bytes goes through
// atomics or the ring protocol, which gives each byte range a single owner at a time.
unsafe impl Sync for Mapping {}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("name", &self.shmem.get_os_id()).field("len", &self.shmem.len()).finish()
    }
}

/// A mapped segment, from either side.
#[derive(Debug, Clone)]
pub struct Segment {
    map: Arc<Mapping>,
    name: String,
    ring_capacity: u64,
}

/// Unlinks a shared-memory name; a name already gone is not an error.
pub fn unlink(name: &str) {
    if let Ok(c) = std::ffi::CString::new(name) {
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        unsafe { libc::shm_unlink(c.as_ptr()) };
    }
}

/// A fresh, unpredictable segment name: the pid (for humans debugging) and 128 random bits.
pub fn fresh_name() -> String {
    format!("/udfpool-{}-{:032x}", std::process::id(), rand::random::<u128>())
}

impl Segment {
    /// Creates and initializes a new segment with two rings of `ring_capacity` bytes each.
    pub fn create(ring_capacity: u64) -> Result<Self, SegmentCreateError> {
        if !valid_capacity(ring_capacity) {
            return Err(SegmentCreateError::BadCapacity(ring_capacity));
        }
        let total = DATA_OFFSET as u64 + 2 * ring_capacity;
        let shmem = loop {
            match ShmemConf::new().size(total as usize).os_id(fresh_name()).create() {
                Err(ShmemError::MappingIdExists) => continue,
                other => break other?,
            }
        };
        let seg = Segment { name: shmem.get_os_id().to_owned(), map: Arc::new(Mapping { shmem }), ring_capacity };
        let h = seg.header();
        // Relaxed: published by the Release store of `magic` below.
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.ring_capacity.store(ring_capacity, Ordering::Relaxed);
        h.total_len.store(total, Ordering::Relaxed);
        // SYNC(magic): publishes the fields above (and the zeroed rings); pairs with Acquire in `open`.
        h.magic.store(MAGIC, Ordering::Release);
        Ok(seg)
    }

    /// Opens a segment another process created, validating it, and unlinks its name.
    pub fn open(name: &str) -> Result<Self, SegmentOpenError> {
        let shmem = ShmemConf::new()
            .os_id(name)
            .open()
            .map_err(|source| SegmentOpenError::Os { name: name.to_owned(), source })?;
        unlink(name);
        let mapped_len = shmem.len();
        if mapped_len < DATA_OFFSET {
            return Err(SegmentOpenError::NotInitialized(name.to_owned()));
        }
        let map = Arc::new(Mapping { shmem });
        let probe = Segment { map, name: name.to_owned(), ring_capacity: 0 };
        let h = probe.header();
        // SYNC(magic): the layout fields are visible after this; pairs with Release in `create`.
        if h.magic.load(Ordering::Acquire) != MAGIC {
            return Err(SegmentOpenError::NotInitialized(name.to_owned()));
        }
        // Relaxed: ordered by the Acquire load of `magic`.
        let version = h.version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(SegmentOpenError::LayoutMismatch { found: version, expected: LAYOUT_VERSION });
        }
        let ring_capacity = h.ring_capacity.load(Ordering::Relaxed);
        let header_len = h.total_len.load(Ordering::Relaxed);
        let consistent = valid_capacity(ring_capacity)
            && ring_capacity.checked_mul(2).and_then(|r| r.checked_add(DATA_OFFSET as u64)) == Some(header_len)
            && header_len == mapped_len as u64;
        if !consistent {
            return Err(SegmentOpenError::BadSizes { ring_capacity, header_len, mapped_len });
        }
        Ok(Segment { ring_capacity, ..probe })
    }

    /// The name the segment was created under (unlinked once the worker attached).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Capacity of each ring.
    pub fn ring_capacity(&self) -> u64 {
        self.ring_capacity
    }

    /// Removes the name from `/dev/shm` (idempotent). The mapping stays valid.
    pub fn unlink(&self) {
        unlink(&self.name);
    }

    fn header_ptr(&self) -> NonNull<SegmentHeader> {
        NonNull::new(self.map.shmem.as_ptr().cast()).expect("mmap never returns null on success")
    }

    /// The header. Valid as long as `self` (which holds the mapping) lives.
    pub fn header(&self) -> &SegmentHeader {
        // SAFETY: the mapping is at least DATA_OFFSET bytes (checked or created so), page-aligned (mmap),
        // and lives as long as `self.map`; every field is an atomic, so shared access is fine.
        unsafe { self.header_ptr().as_ref() }
    }

    fn data_ptr(&self, ring: usize) -> NonNull<u8> {
        let offset = DATA_OFFSET + ring * self.ring_capacity as usize;
        // SAFETY: offset + capacity <= total length, checked in `open` and by construction in `create`.
        unsafe { NonNull::new_unchecked(self.map.shmem.as_ptr().add(offset)) }
    }

    /// The endpoint of one side. Each side must take its endpoint exactly once per segment.
    pub fn endpoint(&self, side: Side) -> Endpoint {
        let h = self.header_ptr();
        // SAFETY: `h` points at a live SegmentHeader (see `header`); field projections stay in it.
        let (requests, responses) = unsafe {
            (
                NonNull::new_unchecked(std::ptr::addr_of_mut!((*h.as_ptr()).requests)),
                NonNull::new_unchecked(std::ptr::addr_of_mut!((*h.as_ptr()).responses)),
            )
        };
        let (req_data, resp_data) = (self.data_ptr(0), self.data_ptr(1));
        // SAFETY: the pointers are inside the mapping, which the Endpoint keeps alive through a clone of
        // `self`; the caller takes one endpoint per side, so there is one producer and one consumer per ring.
        unsafe { Endpoint::new(self.clone(), side, requests, req_data, responses, resp_data, self.ring_capacity) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_validates_and_unlinks() {
        let seg = Segment::create(1024).unwrap();
        let path = format!("/dev/shm{}", seg.name());
        assert!(std::path::Path::new(&path).exists());
        let meta = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let other = Segment::open(seg.name()).unwrap();
        assert_eq!(other.ring_capacity(), 1024);
        assert!(!std::path::Path::new(&path).exists(), "open unlinks the name");
    }

    #[test]
    fn open_rejects_a_foreign_segment() {
        let name = fresh_name();
        let mut shmem = ShmemConf::new().size(8192).os_id(&name).create().unwrap();
        shmem.set_owner(true);
        assert!(matches!(Segment::open(&name), Err(SegmentOpenError::NotInitialized(_))));
    }

    #[test]
    fn open_never_trusts_an_arbitrary_header() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: crate::ring::tests::fuzz_cases().min(512),
            failure_persistence: None,
            ..Default::default()
        });
        let header = (proptest::collection::vec(any::<u8>(), 64), any::<u64>(), any::<bool>());
        runner
            .run(&header, |(bytes, capacity, valid_magic)| {
                let name = fresh_name();
                let mut shmem = ShmemConf::new().size(8192).os_id(&name).create().unwrap();
                shmem.set_owner(true);
                // SAFETY: a fresh 8 KiB mapping nobody else uses; writing its first 64 bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), shmem.as_ptr(), 64);
                    if valid_magic {
                        (shmem.as_ptr() as *mut u64).write(MAGIC);
                        (shmem.as_ptr().add(8) as *mut u32).write(LAYOUT_VERSION);
                        (shmem.as_ptr().add(16) as *mut u64).write(capacity % 8192);
                    }
                }
                // Whatever the header says, opening returns a value: never a panic, never a mapping
                // whose rings would extend past its end.
                if let Ok(seg) = Segment::open(&name) {
                    prop_assert!(DATA_OFFSET as u64 + 2 * seg.ring_capacity() <= 8192);
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn create_rejects_bad_capacity() {
        assert!(matches!(Segment::create(12), Err(SegmentCreateError::BadCapacity(12))));
    }
}
