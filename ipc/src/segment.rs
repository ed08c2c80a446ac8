//! One shared-memory segment per worker: a header with two doorbells and two ring headers, then the
//! request ring's bytes, then the response ring's bytes (layout in the crate docs).
//!
//! The host creates the segment exclusively (`O_CREAT | O_EXCL`, mode 0600, via `shared_memory`) under
//! an unpredictable name, writes the layout fields and then the magic number with Release. The worker
//! opens it, checks magic (Acquire), layout version and sizes before trusting any offset, and unlinks the
//! name at once: from then on nothing is left in `/dev/shm` even if both processes are SIGKILLed, and the
//! mappings stay valid until each side unmaps. The host also unlinks on drop in case no worker attached.
//!
//! One producer and one consumer per ring, by construction: [`Segment::create`] returns the host's
//! [`Endpoint`] and nothing else ever makes a host endpoint (a segment cannot be opened as the host), and
//! [`Segment::open`] returns the worker's endpoint after claiming the segment's worker side with an
//! atomic flag in the header, so a second open of the same segment fails with
//! [`SegmentOpenError::AlreadyAttached`], in this process or any other. (Usually it fails before that:
//! the first open unlinked the name.) An opener in the creating process, such as a test, just opens by
//! name. [`Segment`] is not `Clone` and exposes no raw header; an endpoint owns its segment.

use crate::endpoint::{Endpoint, Side};
use crate::ring::{valid_capacity, RingHeader};
use crate::sync::{AtomicU32, AtomicU64, Doorbell, Ordering};
use shared_memory::{Shmem, ShmemConf, ShmemError};
use std::ptr::NonNull;

/// First 8 bytes of every segment once initialized: "UDFPOOL" and a NUL.
pub const MAGIC: u64 = u64::from_le_bytes(*b"UDFPOOL\0");
/// Bumped whenever the header layout or the framing changes (2: the worker-attached flag).
pub const LAYOUT_VERSION: u32 = 3;
/// Bytes before the first ring's data: the header, rounded up to a page.
pub const DATA_OFFSET: usize = 4096;

/// The segment header. Lives at offset 0 of the mapping.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct SegmentHeader {
    /// [`MAGIC`] once the creator has initialized everything else; 0 before. Written once by the host.
    magic: AtomicU64,
    /// [`LAYOUT_VERSION`]. Written once by the host before `magic`.
    version: AtomicU32,
    /// 0 until a worker opens the segment, then 1: set once, by the one [`Segment::open`] that wins.
    worker_attached: AtomicU32,
    /// Capacity of each ring in bytes. Written once by the host before `magic`.
    ring_capacity: AtomicU64,
    /// Total mapping length the host created. Written once by the host before `magic`.
    total_len: AtomicU64,
    _pad1: [u8; 32],
    /// The host sleeps on this; the worker rings it after publishing a response frame or consuming a
    /// request frame.
    pub(crate) host_bell: Doorbell,
    /// The worker sleeps on this; the host rings it after publishing a request frame or consuming a
    /// response frame.
    pub(crate) worker_bell: Doorbell,
    /// Host -> worker ring.
    requests: RingHeader,
    /// Worker -> host ring.
    responses: RingHeader,
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<SegmentHeader>() <= DATA_OFFSET);
    assert!(std::mem::offset_of!(SegmentHeader, magic) == 0);
    assert!(std::mem::offset_of!(SegmentHeader, version) == 8);
    assert!(std::mem::offset_of!(SegmentHeader, worker_attached) == 12);
    assert!(std::mem::offset_of!(SegmentHeader, ring_capacity) == 16);
    assert!(std::mem::offset_of!(SegmentHeader, total_len) == 24);
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
    /// A worker already opened this segment: each segment has one worker endpoint.
    #[error("shared-memory segment {0} already has a worker attached")]
    AlreadyAttached(String),
}

/// The mapping, owned by the segment (and so by the endpoint that owns the segment).
struct Mapping {
    shmem: Shmem,
}

// SAFETY: `Shmem` is !Send only because it holds a raw pointer; the mapping is process-wide, has no
// thread affinity, and is unmapped exactly once, when its one owner drops it.
unsafe impl Send for Mapping {}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("name", &self.shmem.get_os_id()).field("len", &self.shmem.len()).finish()
    }
}

/// A mapped segment, seen from one side: owned by that side's [`Endpoint`] (see
/// [`Endpoint::segment`]), which is the only way to reach it.
#[derive(Debug)]
pub struct Segment {
    map: Mapping,
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

/// Removes segments that udfpool hosts no longer running left behind, and returns how many.
///
/// A host unlinks each segment's name as soon as its worker has attached, and on every way it ends
/// that runs code; killed with SIGKILL between creating a segment and its worker attaching, it cannot.
/// Such a segment is recognised by its name (`udfpool-PID-...`, PID the creator's): it is removed
/// when no process PID exists, it belongs to this user, and it is older than `min_age` — longer than a
/// worker takes to attach, so a live host elsewhere (another PID namespace sharing `/dev/shm`) keeps a
/// segment its worker is about to open.
pub fn sweep_orphans(min_age: std::time::Duration) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(dir) = std::fs::read_dir("/dev/shm") else { return 0 };
    // SAFETY: getuid(2) has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut removed = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("udfpool-")).and_then(|r| r.split_once('-')) else {
            continue;
        };
        let Ok(pid) = pid.0.parse::<libc::pid_t>() else { continue };
        if pid <= 0 || pid as u32 == std::process::id() {
            continue;
        }
        // SAFETY: kill(2) with signal 0 sends nothing: it only asks whether `pid` exists.
        let exists =
            unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age >= min_age);
        if !exists && meta.uid() == uid && old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Segment {
    /// Creates and initializes a new segment with two rings of `ring_capacity` bytes each, and returns
    /// its host endpoint: the only one there is, since a segment cannot be opened as the host. The
    /// worker endpoint comes from [`Segment::open`] with [`Segment::name`].
    pub fn create(ring_capacity: u64) -> Result<Endpoint, SegmentCreateError> {
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
        let seg = Segment { name: shmem.get_os_id().to_owned(), map: Mapping { shmem }, ring_capacity };
        let h = seg.header();
        // Relaxed: published by the Release store of `magic` below (`worker_attached` starts at 0: the
        // mapping is zero-filled).
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.ring_capacity.store(ring_capacity, Ordering::Relaxed);
        h.total_len.store(total, Ordering::Relaxed);
        // SYNC(magic): publishes the fields above (and the zeroed rings); pairs with Acquire in `attach`.
        h.magic.store(MAGIC, Ordering::Release);
        Ok(seg.into_endpoint(Side::Host))
    }

    /// Opens a segment another process (or this one) created, validates it, claims its worker side,
    /// unlinks its name and returns the worker endpoint. Fails with
    /// [`SegmentOpenError::AlreadyAttached`] if a worker already opened it. A name that is not a
    /// udfpool segment is left alone: only a segment that passed validation is unlinked.
    pub fn open(name: &str) -> Result<Endpoint, SegmentOpenError> {
        let shmem = ShmemConf::new()
            .os_id(name)
            .open()
            .map_err(|source| SegmentOpenError::Os { name: name.to_owned(), source })?;
        let endpoint = Self::attach(shmem, name)?;
        unlink(name);
        Ok(endpoint)
    }

    /// Validates an opened mapping and claims its worker side.
    fn attach(shmem: Shmem, name: &str) -> Result<Endpoint, SegmentOpenError> {
        let mapped_len = shmem.len();
        if mapped_len < DATA_OFFSET {
            return Err(SegmentOpenError::NotInitialized(name.to_owned()));
        }
        let probe = Segment { map: Mapping { shmem }, name: name.to_owned(), ring_capacity: 0 };
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
        // Relaxed: the claim publishes nothing and reads nothing else; the atomicity of the
        // read-modify-write alone lets exactly one opener, in any process, see 0 and set 1.
        if h.worker_attached.compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return Err(SegmentOpenError::AlreadyAttached(name.to_owned()));
        }
        Ok(Segment { ring_capacity, ..probe }.into_endpoint(Side::Worker))
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
    pub(crate) fn header(&self) -> &SegmentHeader {
        // SAFETY: the mapping is at least DATA_OFFSET bytes (checked or created so), page-aligned (mmap),
        // and lives as long as `self.map`; every field is an atomic, so shared access is fine.
        unsafe { self.header_ptr().as_ref() }
    }

    fn data_ptr(&self, ring: usize) -> NonNull<u8> {
        let offset = DATA_OFFSET + ring * self.ring_capacity as usize;
        // SAFETY: offset + capacity <= total length, checked in `attach` and by construction in `create`.
        unsafe { NonNull::new_unchecked(self.map.shmem.as_ptr().add(offset)) }
    }

    /// The endpoint of `side`, owning this segment. Called once per side per segment: by `create` for
    /// the host (the segment it just made) and by `attach` for the worker (after winning the claim).
    fn into_endpoint(self, side: Side) -> Endpoint {
        let h = self.header_ptr();
        // SAFETY: `h` points at a live SegmentHeader (see `header`); field projections stay in it.
        let (requests, responses) = unsafe {
            (
                NonNull::new_unchecked(std::ptr::addr_of_mut!((*h.as_ptr()).requests)),
                NonNull::new_unchecked(std::ptr::addr_of_mut!((*h.as_ptr()).responses)),
            )
        };
        let (req_data, resp_data) = (self.data_ptr(0), self.data_ptr(1));
        let cap = self.ring_capacity;
        // SAFETY: the pointers are inside the mapping, which the Endpoint keeps alive by owning `self`.
        // One endpoint per side: the host endpoint is made only by `create`, for a segment nobody else
        // can reach as the host, and the worker endpoint only by `attach` after its claim of
        // `worker_attached` succeeded, which happens once per segment across all processes. So each
        // ring has one producer and one consumer.
        unsafe { Endpoint::new(self, side, requests, req_data, responses, resp_data, cap) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_validates_and_unlinks() {
        let host = Segment::create(1024).unwrap();
        assert_eq!(host.side(), Side::Host);
        let path = format!("/dev/shm{}", host.segment().name());
        assert!(std::path::Path::new(&path).exists());
        let meta = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let worker = Segment::open(host.segment().name()).unwrap();
        assert_eq!(worker.side(), Side::Worker);
        assert_eq!(worker.segment().ring_capacity(), 1024);
        assert!(!std::path::Path::new(&path).exists(), "open unlinks the name");
    }

    #[test]
    fn a_segment_has_one_worker_endpoint() {
        let host = Segment::create(1024).unwrap();
        let name = host.segment().name().to_owned();
        // A second mapping of the name, taken before the first open unlinks it, as a second worker
        // process racing the first would have.
        let racing = ShmemConf::new().os_id(&name).open().unwrap();
        let _worker = Segment::open(&name).unwrap();
        assert!(matches!(Segment::attach(racing, &name), Err(SegmentOpenError::AlreadyAttached(n)) if n == name));
        // Opening by name again fails earlier: the first open unlinked it.
        assert!(matches!(Segment::open(&name), Err(SegmentOpenError::Os { .. })));
    }

    #[test]
    fn open_rejects_a_foreign_segment() {
        let name = fresh_name();
        let mut shmem = ShmemConf::new().size(8192).os_id(&name).create().unwrap();
        shmem.set_owner(true);
        assert!(matches!(Segment::open(&name), Err(SegmentOpenError::NotInitialized(_))));
        // Someone else's object: refused, and left where it was.
        assert!(std::path::Path::new(&format!("/dev/shm{name}")).exists(), "a foreign object was unlinked");
    }

    #[test]
    fn open_never_trusts_an_arbitrary_header() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: crate::fuzz_cases().min(512),
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
                if let Ok(worker) = Segment::open(&name) {
                    prop_assert!(DATA_OFFSET as u64 + 2 * worker.segment().ring_capacity() <= 8192);
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
