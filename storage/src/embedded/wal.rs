//! The write-ahead log: what makes the store durable with a data directory (`--data-dir`).
//!
//! Writes are applied to memory under the lock and their log [`Record`] is queued in the same
//! critical section, so the queue is in revision order. A dedicated writer thread takes every
//! queued record at once, appends them to the log file and `fdatasync`s once (group commit),
//! then makes those revisions *visible*: readers, `current_revision` and watchers only ever see
//! revisions that are on disk, and a write is acknowledged only after its record is. Nothing
//! that was shown to a client can therefore be lost by a crash, and a revision number is never
//! reused for different content.
//!
//! The log is a sequence of frames `len: u32 LE | crc32(payload): u32 LE | payload` (see
//! [`Record`] for payloads). On open the log is replayed; a torn or corrupt frame (a crash in
//! the middle of an append) and everything after it is truncated away. Compaction rewrites the
//! log as a snapshot of the retained state, headed by a [`Record::Snapshot`] that carries the
//! current and compacted revisions (so the revision never goes backwards across restarts, even
//! when compaction removed every key), via write-temp-file, fsync, rename, fsync-directory.
//!
//! Not done: the data directory is not locked against a second process opening it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use kubecache_core::storage::{Result, Revision, StorageError};
use tokio::sync::watch;

use super::Shared;
use super::mvcc::{State, Version};

/// Name of the write-ahead log inside the data directory.
const WAL_FILE: &str = "wal";
/// Name of the snapshot being written by a compaction, renamed over [`WAL_FILE`] when complete.
const WAL_TMP_FILE: &str = "wal.tmp";

/// The async side's handle on the log writer thread.
pub(super) struct LogHandle {
    /// How far the log is on disk; a write waits here until its revision is durable.
    pub(super) durable: watch::Receiver<Durability>,
    /// The writer thread, joined on drop so the log is closed once the backend is gone.
    pub(super) thread: Option<JoinHandle<()>>,
}

/// What the writer thread publishes after each fsync.
#[derive(Debug, Clone, Default)]
pub(super) struct Durability {
    /// Every revision up to this one is on disk.
    pub(super) revision: Revision,
    /// Number of the last snapshot written (compare with [`LogQueue::snapshots_requested`]),
    /// so that `compact` returns once its snapshot is on disk.
    pub(super) snapshots: u64,
    /// Set when a log write failed: the store refuses writes from then on.
    pub(super) failed: Option<String>,
}

/// Work queued for the log writer thread.
#[derive(Default)]
pub(super) struct LogQueue {
    /// Records of applied writes not yet handed to the writer, in revision order.
    pub(super) records: Vec<Record>,
    /// Number of snapshot rewrites asked for by compactions; the writer does one when this is
    /// ahead of what it last wrote (several requests collapse into one snapshot).
    pub(super) snapshots_requested: u64,
    /// Number of the last snapshot the writer took; lets it tell whether a request is pending.
    pub(super) snapshots_taken: u64,
    /// The backend is being dropped: the writer finishes queued work and exits.
    pub(super) shutdown: bool,
    /// A log write failed: further writes are refused, since they could not be made durable.
    pub(super) failed: Option<String>,
}

/// A log record (payload of one frame). Encoding, all integers little-endian:
/// - `Put`:      `1 | mod_revision: i64 | create_revision: i64 | key_len: u32 | key | value_len: u32 | value`
/// - `Delete`:   `2 | revision: i64 | key_len: u32 | key`
/// - `Snapshot`: `3 | revision: i64 | compact_revision: i64`
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    /// A key was created or updated.
    Put {
        key: String,
        value: Bytes,
        create_revision: Revision,
        mod_revision: Revision,
    },
    /// A key was deleted.
    Delete { key: String, revision: Revision },
    /// Head of a snapshot written by compaction: the store's revision and compacted revision.
    Snapshot {
        revision: Revision,
        compact_revision: Revision,
    },
}

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_SNAPSHOT: u8 = 3;
/// Frame header: payload length and crc32.
const FRAME_HEADER: usize = 8;

/// Opens (or creates) the log in `data_dir` and reads its records, truncating a torn or
/// corrupt tail; returns the file positioned at its end. Blocking: it reads the whole log.
pub(super) fn open(data_dir: &Path) -> Result<(File, Vec<Record>)> {
    let io_err = |what: &str, e: io::Error| {
        StorageError::Internal(format!("{what} {}: {e}", data_dir.display()))
    };
    fs::create_dir_all(data_dir).map_err(|e| io_err("creating data dir", e))?;
    match fs::remove_file(data_dir.join(WAL_TMP_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("removing stale snapshot in", e)),
    }
    let path = data_dir.join(WAL_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_err("opening log in", e))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| io_err("reading log in", e))?;
    let (records, valid_len) = decode_log(&data)?;
    if valid_len < data.len() {
        tracing::warn!(
            path = %path.display(),
            dropped_bytes = data.len() - valid_len,
            "truncating torn or corrupt tail of the write-ahead log"
        );
        file.set_len(valid_len as u64)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_err("truncating log in", e))?;
    }
    file.seek(SeekFrom::Start(valid_len as u64))
        .map_err(|e| io_err("seeking log in", e))?;
    // Make the log file's own creation durable.
    sync_dir(data_dir).map_err(|e| io_err("syncing", e))?;
    Ok((file, records))
}

impl LogHandle {
    /// Starts the writer thread on `file`, the log of `data_dir` positioned at its end;
    /// `revision` is the store's revision, all of it on disk.
    pub(super) fn start(
        shared: Arc<Shared>,
        data_dir: &Path,
        file: File,
        revision: Revision,
    ) -> Result<LogHandle> {
        let io_err = |what: &str, e: io::Error| {
            StorageError::Internal(format!("{what} {}: {e}", data_dir.display()))
        };
        let (durable_tx, durable_rx) = watch::channel(Durability {
            revision,
            ..Durability::default()
        });
        let writer = LogWriter {
            shared,
            dir: data_dir.to_path_buf(),
            file,
            durable: durable_tx,
        };
        let thread = std::thread::Builder::new()
            .name("kubecache-wal".into())
            .spawn(move || writer.run())
            .map_err(|e| io_err("starting log writer for", e))?;
        Ok(LogHandle {
            durable: durable_rx,
            thread: Some(thread),
        })
    }
}

impl State {
    /// Applies one record read back from the log.
    pub(super) fn replay(&mut self, record: Record) -> Result<()> {
        let (key, version) = match record {
            Record::Snapshot {
                revision,
                compact_revision,
            } => {
                self.revision = self.revision.max(revision);
                self.compact_revision = self.compact_revision.max(compact_revision);
                return Ok(());
            }
            Record::Put {
                key,
                value,
                create_revision,
                mod_revision,
            } => (
                key,
                Version {
                    mod_revision,
                    create_revision,
                    value: Some(value),
                },
            ),
            Record::Delete { key, revision } => (
                key,
                Version {
                    mod_revision: revision,
                    create_revision: 0,
                    value: None,
                },
            ),
        };
        let history = self.keys.entry(key).or_default();
        if history
            .last()
            .is_some_and(|last| last.mod_revision >= version.mod_revision)
        {
            return Err(StorageError::Internal(format!(
                "write-ahead log out of order at revision {}",
                version.mod_revision
            )));
        }
        self.revision = self.revision.max(version.mod_revision);
        history.push(version);
        Ok(())
    }
}

pub(super) fn log_failed(reason: &str) -> StorageError {
    StorageError::Internal(format!("write-ahead log failed: {reason}"))
}

/// The writer thread: owns the log file.
struct LogWriter {
    /// The state, for taking queued records and making revisions visible.
    shared: Arc<Shared>,
    /// The data directory, for snapshot rewrites.
    dir: PathBuf,
    /// The log, positioned at its end.
    file: File,
    /// Where durability progress is published to waiting writes.
    durable: watch::Sender<Durability>,
}

/// One unit of work for the writer thread.
enum Job {
    /// Append these records (all revisions up to `through`) and fsync.
    Append {
        records: Vec<Record>,
        through: Revision,
    },
    /// Rewrite the log as this state (which includes every revision up to `through`).
    Snapshot {
        keys: BTreeMap<String, Vec<Version>>,
        through: Revision,
        compact_revision: Revision,
        number: u64,
    },
}

impl LogWriter {
    fn run(mut self) {
        while let Some(job) = self.next_job() {
            let (through, snapshot) = match &job {
                Job::Append { through, .. } => (*through, None),
                Job::Snapshot {
                    through, number, ..
                } => (*through, Some(*number)),
            };
            let written = match job {
                Job::Append { records, .. } => self.append(&records),
                Job::Snapshot {
                    keys,
                    through,
                    compact_revision,
                    ..
                } => self.snapshot(&keys, through, compact_revision),
            };
            if let Err(e) = written {
                let reason = e.to_string();
                tracing::error!(error = %reason, "write-ahead log write failed; refusing writes");
                if let Some(q) = self.shared.state.lock().log.as_mut() {
                    q.failed = Some(reason.clone());
                }
                self.durable.send_modify(|d| d.failed = Some(reason));
                return;
            }
            self.shared.state.lock().make_visible(through);
            self.durable.send_modify(|d| {
                d.revision = d.revision.max(through);
                if let Some(number) = snapshot {
                    d.snapshots = d.snapshots.max(number);
                }
            });
        }
    }

    /// Waits for work; `None` on shutdown once the queue is empty.
    fn next_job(&self) -> Option<Job> {
        let mut st = self.shared.state.lock();
        loop {
            let through = st.revision;
            let compact_revision = st.compact_revision;
            let q = st.log.as_mut().expect("the writer runs only with a log");
            if q.snapshots_requested > q.snapshots_taken {
                // The snapshot covers the queued records: they are in `keys` already.
                q.snapshots_taken = q.snapshots_requested;
                q.records.clear();
                let number = q.snapshots_taken;
                return Some(Job::Snapshot {
                    keys: st.keys.clone(),
                    through,
                    compact_revision,
                    number,
                });
            }
            if !q.records.is_empty() {
                return Some(Job::Append {
                    records: std::mem::take(&mut q.records),
                    through,
                });
            }
            if q.shutdown {
                return None;
            }
            self.shared.wake_writer.wait(&mut st);
        }
    }

    fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let mut buf = Vec::new();
        for record in records {
            encode_frame(record, &mut buf);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()
    }

    /// Writes the state as a new log next to the old one, then atomically replaces it.
    fn snapshot(
        &mut self,
        keys: &BTreeMap<String, Vec<Version>>,
        revision: Revision,
        compact_revision: Revision,
    ) -> io::Result<()> {
        let tmp_path = self.dir.join(WAL_TMP_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)?;
        let mut out = BufWriter::new(file);
        let mut buf = Vec::new();
        encode_frame(
            &Record::Snapshot {
                revision,
                compact_revision,
            },
            &mut buf,
        );
        for (key, history) in keys {
            for version in history {
                let record = match &version.value {
                    Some(value) => Record::Put {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: version.create_revision,
                        mod_revision: version.mod_revision,
                    },
                    None => Record::Delete {
                        key: key.clone(),
                        revision: version.mod_revision,
                    },
                };
                encode_frame(&record, &mut buf);
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp_path, self.dir.join(WAL_FILE))?;
        sync_dir(&self.dir)?;
        // The renamed file is the log now, positioned at its end.
        self.file = file;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Appends `record` as one frame.
fn encode_frame(record: &Record, out: &mut Vec<u8>) {
    let header_at = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    let payload_at = out.len();
    let put_str = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    };
    match record {
        Record::Put {
            key,
            value,
            create_revision,
            mod_revision,
        } => {
            out.push(OP_PUT);
            out.extend_from_slice(&mod_revision.to_le_bytes());
            out.extend_from_slice(&create_revision.to_le_bytes());
            put_str(out, key.as_bytes());
            put_str(out, value);
        }
        Record::Delete { key, revision } => {
            out.push(OP_DELETE);
            out.extend_from_slice(&revision.to_le_bytes());
            put_str(out, key.as_bytes());
        }
        Record::Snapshot {
            revision,
            compact_revision,
        } => {
            out.push(OP_SNAPSHOT);
            out.extend_from_slice(&revision.to_le_bytes());
            out.extend_from_slice(&compact_revision.to_le_bytes());
        }
    }
    let len = (out.len() - payload_at) as u32;
    let crc = crc32fast::hash(&out[payload_at..]);
    out[header_at..header_at + 4].copy_from_slice(&len.to_le_bytes());
    out[header_at + 4..payload_at].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the log's records and returns them with the length of the valid prefix of `data`.
/// Decoding stops at the first frame that is incomplete or fails its checksum (a torn write);
/// a frame whose checksum holds but whose payload is malformed is an error, not a torn tail.
fn decode_log(data: &[u8]) -> Result<(Vec<Record>, usize)> {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = data.get(at..at + FRAME_HEADER) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let start = at + FRAME_HEADER;
        // An empty payload never occurs (and a zero-filled tail would pass the crc).
        let Some(payload) = data.get(start..start + len).filter(|_| len > 0) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let record = decode_record(payload).ok_or_else(|| {
            StorageError::Internal(format!("malformed write-ahead log record at offset {at}"))
        })?;
        records.push(record);
        at = start + len;
    }
    Ok((records, at))
}

fn decode_record(payload: &[u8]) -> Option<Record> {
    let mut r = Reader(payload);
    let record = match r.u8()? {
        OP_PUT => {
            let mod_revision = r.i64()?;
            let create_revision = r.i64()?;
            let key = r.string()?;
            let value = Bytes::copy_from_slice(r.sized()?);
            Record::Put {
                key,
                value,
                create_revision,
                mod_revision,
            }
        }
        OP_DELETE => {
            let revision = r.i64()?;
            Record::Delete {
                key: r.string()?,
                revision,
            }
        }
        OP_SNAPSHOT => Record::Snapshot {
            revision: r.i64()?,
            compact_revision: r.i64()?,
        },
        _ => return None,
    };
    r.0.is_empty().then_some(record)
}

/// A cursor over a record payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn sized(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(len)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.sized()?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use kubecache_core::storage::{Backend, ListOptions, StorageEvent};

    use crate::embedded::EmbeddedBackend;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn wal_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join(WAL_FILE)
    }

    #[test]
    fn records_round_trip() {
        let records = vec![
            Record::Snapshot {
                revision: 7,
                compact_revision: 3,
            },
            Record::Put {
                key: "/a".into(),
                value: b("one"),
                create_revision: 4,
                mod_revision: 8,
            },
            Record::Delete {
                key: "/a".into(),
                revision: 9,
            },
        ];
        let mut buf = Vec::new();
        for r in &records {
            encode_frame(r, &mut buf);
        }
        assert_eq!(decode_log(&buf).unwrap(), (records, buf.len()));
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let mut buf = Vec::new();
        encode_frame(
            &Record::Delete {
                key: "/a".into(),
                revision: 1,
            },
            &mut buf,
        );
        let good = buf.len();
        buf.extend_from_slice(&[0; 64]);
        let (records, valid) = decode_log(&buf).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(valid, good);
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedBackend::open(dir.path()).unwrap();
            for k in ["/k/1", "/k/2", "/k/3"] {
                store.create(k, b(k)).await.unwrap();
            }
        }
        // Cut the last record in half, as a crash during its append would.
        let len = fs::metadata(wal_path(&dir)).unwrap().len();
        let file = OpenOptions::new().write(true).open(wal_path(&dir)).unwrap();
        file.set_len(len - 5).unwrap();
        drop(file);

        let store = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), 2);
        assert_eq!(store.get("/k/1").await.unwrap().unwrap().value, b("/k/1"));
        assert_eq!(store.get("/k/2").await.unwrap().unwrap().mod_revision, 2);
        assert_eq!(store.get("/k/3").await.unwrap(), None);
        // The torn bytes are gone, so new records follow the good ones.
        let kv = store.create("/k/4", b("4")).await.unwrap();
        assert_eq!(kv.mod_revision, 3);
        drop(store);

        // Garbage appended after good records is dropped as well.
        let mut file = OpenOptions::new()
            .append(true)
            .open(wal_path(&dir))
            .unwrap();
        file.write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7])
            .unwrap();
        drop(file);
        let store = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), 3);
        assert_eq!(store.get("/k/4").await.unwrap().unwrap().value, b("4"));
        drop(store);
        let (records, valid) = decode_log(&fs::read(wal_path(&dir)).unwrap()).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(valid as u64, fs::metadata(wal_path(&dir)).unwrap().len());
    }

    #[tokio::test]
    async fn reopen_after_compaction_keeps_revision_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, last) = {
            let store = EmbeddedBackend::open(dir.path()).unwrap();
            let mut kv = store.create("/c/kept", b("v0")).await.unwrap();
            for i in 1..50 {
                kv = store
                    .update("/c/kept", b(&format!("v{i}")), kv.mod_revision)
                    .await
                    .unwrap();
            }
            store.create("/c/gone", b("x")).await.unwrap();
            let gone = store.delete("/c/gone", None).await.unwrap();
            let size_before = fs::metadata(wal_path(&dir)).unwrap().len();
            store.compact(gone.revision).await.unwrap();
            assert!(fs::metadata(wal_path(&dir)).unwrap().len() < size_before);
            // Writes after the compaction are appended to the snapshot.
            store.create("/c/after", b("a")).await.unwrap();
            let deleted = store.delete("/c/after", None).await.unwrap();
            (kv, deleted.revision)
        };

        let store = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), last);
        assert_eq!(store.get("/c/kept").await.unwrap(), Some(kept.clone()));
        assert_eq!(store.get("/c/gone").await.unwrap(), None);
        assert_eq!(store.get("/c/after").await.unwrap(), None);
        let old = ListOptions {
            prefix: "/c/".into(),
            revision: Some(kept.mod_revision),
            ..ListOptions::default()
        };
        assert!(matches!(
            store.list(old).await,
            Err(StorageError::Compacted { .. })
        ));
        // The history after the compaction survived too: the delete of /c/after replays.
        let mut watch = store.watch("/c/after", last).await.unwrap();
        let event = watch.next().await.unwrap().unwrap();
        assert!(
            matches!(event, StorageEvent::Delete { revision, prev: Some(_), .. } if revision == last)
        );
        assert_eq!(
            store.create("/c/new", b("n")).await.unwrap().mod_revision,
            last + 1
        );
        drop(watch);
        drop(store);

        // Compacting away every key still keeps the revision.
        let store = EmbeddedBackend::open(dir.path()).unwrap();
        store.delete("/c/kept", None).await.unwrap();
        let gone = store.delete("/c/new", None).await.unwrap();
        store.compact(gone.revision).await.unwrap();
        drop(store);
        let store = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), gone.revision);
        let page = store.list(ListOptions::default()).await.unwrap();
        assert_eq!(page.count, 0);
        assert_eq!(
            store.create("/c/x", b("x")).await.unwrap().create_revision,
            gone.revision + 1
        );
    }

    #[tokio::test]
    async fn group_commit_acknowledges_concurrent_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedBackend::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.create(&format!("/g/{i:02}"), b("v")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(store.current_revision().await.unwrap(), 64);
        drop(store);
        let store = EmbeddedBackend::open(dir.path()).unwrap();
        let page = store
            .list(ListOptions {
                prefix: "/g/".into(),
                ..ListOptions::default()
            })
            .await
            .unwrap();
        assert_eq!(page.count, 64);
    }
}
