//! Offset checkpoint files in a partition directory: small text files replaced atomically.
//!
//! Kafka keeps one `log-start-offset-checkpoint` and one `recovery-point-offset-checkpoint` per
//! data directory listing every partition; Brook keeps one file per partition in the log's own
//! directory, so a partition's state moves and is deleted with it. Format: a version line `0`,
//! then the offset.

use std::fs;
use std::io;
use std::path::Path;

use crate::util::write_atomically;

/// The log start offset (moved by DeleteRecords and retention).
pub(crate) const LOG_START: &str = "log-start-offset.checkpoint";

/// The recovery point: every byte below this offset was fsynced, so an unclean start needs to
/// CRC-check only the segments at or after it.
pub(crate) const RECOVERY_POINT: &str = "recovery-point-offset.checkpoint";

/// Where the log cleaner's next dirty section starts: everything below was compacted (Kafka's
/// `cleaner-offset-checkpoint`), so a restart does not index the whole log again.
pub(crate) const CLEANER_OFFSET: &str = "cleaner-offset.checkpoint";

/// Reads the offset in `dir/name`; `None` when the file does not exist.
pub(crate) fn read(dir: &Path, name: &str) -> io::Result<Option<i64>> {
    let path = dir.join(name);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines().map(str::trim);
    match (lines.next(), lines.next().map(str::parse::<i64>)) {
        (Some("0"), Some(Ok(offset))) => Ok(Some(offset)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed {}", path.display()),
        )),
    }
}

/// Replaces `dir/name` with `offset` (fsynced, atomically).
pub(crate) fn write(dir: &Path, name: &str, offset: i64) -> io::Result<()> {
    write_atomically(&dir.join(name), format!("0\n{offset}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), RECOVERY_POINT).unwrap(), None);
        write(dir.path(), RECOVERY_POINT, 42).unwrap();
        assert_eq!(read(dir.path(), RECOVERY_POINT).unwrap(), Some(42));
        fs::write(dir.path().join(LOG_START), "1\nx\n").unwrap();
        assert!(read(dir.path(), LOG_START).is_err());
    }
}
