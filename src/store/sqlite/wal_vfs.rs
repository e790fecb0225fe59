//! The VFS wfm opens its database through: SQLite's own "unix" one, except that the frames
//! a transaction appends to the WAL reach the kernel in one write, at the transaction's
//! sync, instead of two writes per page (each frame's 24-byte header, then its page). A
//! one-step execution's commit made eight `pwrite` calls before its `fsync`; a busy commit
//! of ~20 executions, over thirty, all on the path every caller waits for.
//!
//! Nothing is at risk that was not before: a frame is part of the database only once SQLite
//! has synced the WAL and then published the frame in the WAL index, and the sync writes
//! what is held first. That needs `synchronous = FULL` on every connection that writes (a
//! weaker setting publishes frames without a sync). Every other file (the database, the
//! index) is SQLite's own, untouched. At most MAX_PENDING bytes are held per open WAL.

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use rusqlite::ffi;

/// The VFS's name, for `Connection::open_with_flags_and_vfs`.
pub const NAME: &str = "wfm-unix";
const NAME_C: &CStr = c"wfm-unix";

/// Most bytes held before they are written anyway.
const MAX_PENDING: usize = 4 << 20;

/// Most bytes handed to the "unix" VFS in one write: it writes at most 128 KiB - 1 per call
/// (its pages are 64 KiB at most) and calls a shorter write a full disk.
const MAX_WRITE: usize = 0x1f000;

/// The "unix" VFS this one hands everything to.
static INNER: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// A WAL file as SQLite holds it: this header, then the "unix" VFS's file right after it.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    /// Where in the file `pending` goes.
    pending_start: i64,
    /// Consecutive bytes SQLite wrote that are not in the file yet.
    pending: Vec<u8>,
}

/// Registers the VFS once per process; every later call returns the first one's result.
pub fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: sqlite3_vfs_find and sqlite3_vfs_register are thread-safe; the VFS
            // registered is leaked, so it lives as long as the process, as SQLite requires.
            unsafe {
                let unix = ffi::sqlite3_vfs_find(c"unix".as_ptr());
                if unix.is_null() {
                    return Err("SQLite has no \"unix\" VFS".into());
                }
                INNER.store(unix, Ordering::Release);
                let mut vfs = *unix;
                vfs.pNext = ptr::null_mut();
                vfs.zName = NAME_C.as_ptr();
                vfs.szOsFile = (*unix).szOsFile + std::mem::size_of::<WalFile>() as c_int;
                vfs.xOpen = Some(open);
                let rc = ffi::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 0);
                if rc != ffi::SQLITE_OK {
                    return Err(format!(
                        "cannot register the {NAME} VFS (SQLite error {rc})"
                    ));
                }
            }
            Ok(())
        })
        .clone()
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// The "unix" VFS's file behind a WAL file.
unsafe fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: a WalFile is followed by the inner file (szOsFile counts both), and its size
    // is a multiple of 8, the inner file's alignment.
    unsafe { file.cast::<u8>().add(std::mem::size_of::<WalFile>()).cast() }
}

unsafe fn methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: an open file's methods are static in the "unix" VFS.
    unsafe { &*(*file).pMethods }
}

/// Any file but a WAL is the "unix" VFS's own, at the same address; a WAL is wrapped.
unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: INNER is set before this VFS is registered; SQLite gives `file` szOsFile bytes.
    unsafe {
        let unix = INNER.load(Ordering::Acquire);
        let unix_open = (*unix).xOpen.expect("the unix VFS opens files");
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return unix_open(unix, name, file, flags, out_flags);
        }
        let wrapped = inner(file);
        let rc = unix_open(unix, name, wrapped, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            if !(*wrapped).pMethods.is_null() {
                methods(wrapped).xClose.expect("xClose")(wrapped);
            }
            (*file).pMethods = ptr::null();
            return rc;
        }
        ptr::write(
            file.cast::<WalFile>(),
            WalFile {
                base: ffi::sqlite3_file {
                    pMethods: &WAL_METHODS,
                },
                pending_start: 0,
                pending: Vec::new(),
            },
        );
        ffi::SQLITE_OK
    }
}

impl WalFile {
    /// Writes what is held, in as few writes as the "unix" VFS takes.
    unsafe fn flush(&mut self) -> c_int {
        // SAFETY: a WalFile is only ever SQLite's memory for a WAL opened by `open`.
        unsafe {
            let inner = inner((self as *mut WalFile).cast());
            let write = methods(inner).xWrite.expect("xWrite");
            let mut offset = self.pending_start;
            let mut rc = ffi::SQLITE_OK;
            for chunk in self.pending.chunks(MAX_WRITE) {
                rc = write(inner, chunk.as_ptr().cast(), chunk.len() as c_int, offset);
                if rc != ffi::SQLITE_OK {
                    break;
                }
                offset += chunk.len() as i64;
            }
            self.pending.clear();
            rc
        }
    }
}

/// The WalFile SQLite hands to WAL_METHODS.
unsafe fn wal<'f>(file: *mut ffi::sqlite3_file) -> &'f mut WalFile {
    // SAFETY: only WAL_METHODS call this, with a file `open` initialised as a WalFile.
    unsafe { &mut *file.cast::<WalFile>() }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file once; the WalFile is not used after this.
    unsafe {
        let flushed = wal(file).flush();
        ptr::drop_in_place(&mut wal(file).pending);
        let inner = inner(file);
        let closed = methods(inner).xClose.expect("xClose")(inner);
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: SQLite passes `amount` readable bytes at `data`.
    unsafe {
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), amount.max(0) as usize);
        let wal = wal(file);
        let end = wal.pending_start + wal.pending.len() as i64;
        if wal.pending.is_empty() || offset != end || wal.pending.len() + bytes.len() > MAX_PENDING
        {
            let rc = wal.flush();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            wal.pending_start = offset;
        }
        wal.pending.extend_from_slice(bytes);
        ffi::SQLITE_OK
    }
}

/// Calls the "unix" VFS's method on the file behind a WAL, once what is held is written
/// (`flush_first`) or as it is.
unsafe fn forward(
    file: *mut ffi::sqlite3_file,
    flush_first: bool,
    call: impl FnOnce(*mut ffi::sqlite3_file, &ffi::sqlite3_io_methods) -> c_int,
) -> c_int {
    // SAFETY: only WAL_METHODS call this, with the file SQLite opened through `open`.
    unsafe {
        if flush_first {
            let rc = wal(file).flush();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        let inner = inner(file);
        call(inner, methods(inner))
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: forwarded as SQLite gave them, after what is held is in the file.
    unsafe {
        forward(file, true, |f, m| {
            m.xRead.expect("xRead")(f, data, amount, offset)
        })
    }
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: as `read`.
    unsafe { forward(file, true, |f, m| m.xTruncate.expect("xTruncate")(f, size)) }
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: as `read`.
    unsafe { forward(file, true, |f, m| m.xSync.expect("xSync")(f, flags)) }
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: as `read`.
    unsafe { forward(file, true, |f, m| m.xFileSize.expect("xFileSize")(f, size)) }
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: forwarded as SQLite gave them.
    unsafe { forward(file, false, |f, m| m.xLock.expect("xLock")(f, level)) }
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: as `lock`.
    unsafe { forward(file, false, |f, m| m.xUnlock.expect("xUnlock")(f, level)) }
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: as `lock`.
    unsafe {
        forward(file, false, |f, m| {
            m.xCheckReservedLock.expect("xCheckReservedLock")(f, out)
        })
    }
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: as `lock`.
    unsafe {
        forward(file, false, |f, m| {
            m.xFileControl.expect("xFileControl")(f, op, arg)
        })
    }
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as `lock`.
    unsafe { forward(file, false, |f, m| m.xSectorSize.expect("xSectorSize")(f)) }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as `lock`.
    unsafe {
        forward(file, false, |f, m| {
            m.xDeviceCharacteristics.expect("xDeviceCharacteristics")(f)
        })
    }
}
