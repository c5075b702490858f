//! The audit log file: JSON lines appended under a lock, rotated by size the way
//! kube-apiserver's (lumberjack) writer does — the full file is renamed to
//! `NAME-<UTC timestamp>.EXT`, and old backups are pruned by count and age.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// Where audit lines go and when files rotate.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// The file, or `-` for standard output.
    pub path: PathBuf,
    /// `--audit-log-maxsize` in megabytes; 0 means lumberjack's default, 100.
    pub max_size_mb: u64,
    /// `--audit-log-maxbackup`: old files kept; 0 keeps all.
    pub max_backups: usize,
    /// `--audit-log-maxage` in days; 0 keeps files whatever their age.
    pub max_age_days: u64,
}

enum Sink {
    Stdout,
    File { file: File, size: u64 },
}

/// An open audit log.
pub struct LogWriter {
    options: LogOptions,
    /// The open file and its size; one writer at a time so lines never interleave.
    sink: Mutex<Option<Sink>>,
}

impl LogWriter {
    pub fn open(options: LogOptions) -> std::io::Result<LogWriter> {
        let sink = if options.path.as_os_str() == "-" {
            Sink::Stdout
        } else {
            open_file(&options.path)?
        };
        Ok(LogWriter {
            options,
            sink: Mutex::new(Some(sink)),
        })
    }

    fn max_bytes(&self) -> u64 {
        let mb = if self.options.max_size_mb == 0 {
            100
        } else {
            self.options.max_size_mb
        };
        mb * 1024 * 1024
    }

    /// Appends one line (a newline is added), rotating first when it would overflow.
    pub fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let needed = line.len() as u64 + 1;
        let mut guard = self.sink.lock();
        if let Some(Sink::File { size, .. }) = guard.as_ref()
            && *size > 0
            && *size + needed > self.max_bytes()
        {
            // Drop the handle first: a failed rotation reopens on the next line.
            *guard = None;
            self.rotate()?;
        }
        if guard.is_none() {
            *guard = Some(open_file(&self.options.path)?);
        }
        match guard.as_mut() {
            None => Ok(()),
            Some(Sink::Stdout) => {
                let mut out = std::io::stdout().lock();
                out.write_all(line)?;
                out.write_all(b"\n")
            }
            Some(Sink::File { file, size }) => {
                let mut buffer = Vec::with_capacity(line.len() + 1);
                buffer.extend_from_slice(line);
                buffer.push(b'\n');
                file.write_all(&buffer)?;
                *size += needed;
                Ok(())
            }
        }
    }

    /// Renames the current file to a timestamped backup and prunes old backups.
    fn rotate(&self) -> std::io::Result<()> {
        let path = &self.options.path;
        let backup = backup_name(path, chrono::Utc::now());
        std::fs::rename(path, &backup)?;
        self.prune();
        Ok(())
    }

    fn prune(&self) {
        let mut backups = list_backups(&self.options.path);
        // Newest first (the timestamp sorts lexically).
        backups.sort_by(|a, b| b.cmp(a));
        let mut remove = Vec::new();
        if self.options.max_backups > 0 && backups.len() > self.options.max_backups {
            remove.extend(backups.split_off(self.options.max_backups));
        }
        if self.options.max_age_days > 0 {
            let max_age = Duration::from_secs(self.options.max_age_days * 24 * 3600);
            let now = SystemTime::now();
            for backup in &backups {
                let old = std::fs::metadata(backup)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|modified| now.duration_since(modified).ok())
                    .is_some_and(|age| age > max_age);
                if old {
                    remove.push(backup.clone());
                }
            }
        }
        for path in remove {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("cannot remove old audit log {}: {e}", path.display());
            }
        }
    }
}

fn open_file(path: &Path) -> std::io::Result<Sink> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok(Sink::File { file, size })
}

/// `audit.log` → `audit-2024-05-01T10-20-30.123.log`.
fn backup_name(path: &Path, now: chrono::DateTime<chrono::Utc>) -> PathBuf {
    let (stem, ext) = split_name(path);
    let stamp = now.format("%Y-%m-%dT%H-%M-%S%.3f");
    path.with_file_name(format!("{stem}-{stamp}{ext}"))
}

fn split_name(path: &Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rfind('.') {
        Some(dot) if dot > 0 => (name[..dot].to_string(), name[dot..].to_string()),
        _ => (name, String::new()),
    }
}

/// Existing backups of `path`, by name.
fn list_backups(path: &Path) -> Vec<PathBuf> {
    let (stem, ext) = split_name(path);
    let prefix = format!("{stem}-");
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| {
                n.starts_with(&prefix)
                    && n.ends_with(&ext)
                    && n.len() == prefix.len() + "2006-01-02T15-04-05.000".len() + ext.len()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let writer = LogWriter::open(LogOptions {
            path: path.clone(),
            max_size_mb: 1,
            max_backups: 2,
            max_age_days: 0,
        })
        .unwrap();
        let line = vec![b'x'; 300 * 1024];
        for _ in 0..14 {
            writer.write_line(&line).unwrap();
            // Backups are named by millisecond: keep them distinct.
            std::thread::sleep(Duration::from_millis(2));
        }
        let backups = list_backups(&path);
        assert_eq!(backups.len(), 2, "{backups:?}");
        for backup in &backups {
            let len = std::fs::metadata(backup).unwrap().len();
            assert!(len <= 1024 * 1024, "{len}");
            assert_eq!(len % (300 * 1024 + 1), 0);
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 1024 * 1024);
    }

    #[test]
    fn backup_names() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:20:30.123Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            backup_name(Path::new("/var/log/audit.log"), now),
            PathBuf::from("/var/log/audit-2024-05-01T10-20-30.123.log")
        );
    }
}
