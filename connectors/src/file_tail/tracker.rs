//! Follows one path across appends, rename-rotation and copy-truncate,
//! turning bytes into complete lines with the byte position after each.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many leading bytes identify a file's content.
const FINGERPRINT_LEN: usize = 64;
const CHUNK: usize = 64 * 1024;

/// Which file (and where in it) a line or a resume position refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilePosition {
    pub dev: u64,
    pub ino: u64,
    /// Up to FINGERPRINT_LEN leading bytes, hex encoded (shared by every
    /// line of the file).
    pub fingerprint: Arc<str>,
    /// Byte position just after the last complete line read.
    pub position: u64,
}

/// One complete line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// The line without its terminator (lossy UTF-8, cut at max.line.bytes).
    pub text: String,
    /// Where to resume so this line is not read again.
    pub after: FilePosition,
    /// `after` is a safe resume point for the path: the line comes from the
    /// oldest file still open. Lines of a newer file read while a rotated
    /// one is still being drained are not, or a restart would skip the rest
    /// of the rotated file.
    pub checkpoint: bool,
}

/// Where to start when there is no stored position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartAt {
    Beginning,
    End,
}

struct OpenFile {
    file: File,
    dev: u64,
    ino: u64,
    fingerprint: Vec<u8>,
    /// `fingerprint`, hex encoded (cached: every line carries it).
    fingerprint_hex: Arc<str>,
    /// Position after the last complete line handed out.
    line_end: u64,
    /// Position up to which bytes were read into `pending`.
    read_pos: u64,
    pending: Vec<u8>,
    /// The pending line exceeded max.line.bytes; the rest is dropped.
    overlong: bool,
}

/// A file renamed (or deleted) away from the path, still read: writers
/// keep appending to it until they reopen the path (logrotate's `create`
/// mode signals the application only after creating the new file).
struct Draining {
    open: OpenFile,
    /// When it last grew (or was rotated away).
    active: Instant,
}

/// Tails one path.
pub(crate) struct Tracker {
    path: PathBuf,
    max_line_bytes: usize,
    open: Option<OpenFile>,
    /// Applies to the first file opened only; later files are read whole.
    resume: Option<FilePosition>,
    start_at: StartAt,
    /// Rotated files matching this glob have trackers of their own, so
    /// they are not looked for when the resume position is stale.
    others: Option<glob::Pattern>,
    /// Rotated files, oldest first, read until idle for `rotate_wait`.
    draining: Vec<Draining>,
    rotate_wait: Duration,
}

impl Tracker {
    /// Tracks `path`, resuming at `resume` if it still describes the file there.
    pub fn new(
        path: PathBuf,
        max_line_bytes: usize,
        start_at: StartAt,
        resume: Option<FilePosition>,
    ) -> Self {
        Tracker {
            path,
            max_line_bytes: max_line_bytes.max(1),
            open: None,
            resume,
            start_at,
            others: None,
            draining: Vec::new(),
            rotate_wait: Duration::ZERO,
        }
    }

    /// Keeps reading a file rotated away from the path until it has not
    /// grown for `wait` (it is closed at once if deleted).
    pub fn rotate_wait(mut self, wait: Duration) -> Self {
        self.rotate_wait = wait;
        self
    }

    /// Leaves rotated files that match `pattern` to their own trackers.
    pub fn leaving_to_others(mut self, pattern: glob::Pattern) -> Self {
        self.others = Some(pattern);
        self
    }

    /// Gives up the file `(dev, ino)` if this tracker reads it — draining
    /// it after a rotation, or still as its current file when the rename
    /// was not noticed yet — and returns where it got to (after the last
    /// complete line). Used when a glob also matches the rotated name: the
    /// rotated file's own tracker continues from there instead of reading
    /// it again from the start.
    pub fn hand_over(&mut self, dev: u64, ino: u64) -> Option<FilePosition> {
        let position = |open: &OpenFile| FilePosition {
            dev: open.dev,
            ino: open.ino,
            fingerprint: open.fingerprint_hex.clone(),
            position: open.line_end,
        };
        if let Some(i) = self
            .draining
            .iter()
            .position(|d| (d.open.dev, d.open.ino) == (dev, ino))
        {
            return Some(position(&self.draining.remove(i).open));
        }
        if self
            .open
            .as_ref()
            .is_some_and(|o| (o.dev, o.ino) == (dev, ino))
        {
            // The file at the path is a new one (or none yet): read it whole.
            self.start_at = StartAt::Beginning;
            return self.open.take().map(|o| position(&o));
        }
        None
    }

    /// The tracked path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the complete lines available now, at most `limit` (the rest
    /// stays for the next poll): rotated files still draining first (older
    /// lines first), then the file at the path.
    pub fn poll(&mut self, limit: usize) -> io::Result<Vec<Line>> {
        let mut lines = Vec::new();
        let limit = limit.max(1);
        if !self.drain(&mut lines, limit)? {
            return Ok(lines);
        }
        if self.open.is_none() && !self.try_open()? {
            return Ok(lines);
        }
        self.check_truncation()?;
        if !self.read_current(&mut lines, limit)? {
            // Stopped at the limit: rotation is looked at once the current
            // file has been read to its end.
            return Ok(lines);
        }
        // Rename-rotation (a different file now lives at the path) or
        // deletion: the old file joins the draining ones — writers may
        // still append to it — and the file at the path is read from its
        // start, in parallel.
        let moved = match (stat(&self.path)?, self.open.as_ref()) {
            (Some(meta), Some(o)) => (o.dev, o.ino) != (meta.dev(), meta.ino()),
            (None, Some(o)) => o.file.metadata()?.nlink() == 0,
            (_, None) => false,
        };
        if moved {
            if let Some(open) = self.open.take() {
                tracing::info!(path = %self.path.display(), wait = ?self.rotate_wait,
                    "file rotated away; reading it until it is idle, and the new file meanwhile");
                self.draining.push(Draining {
                    open,
                    active: Instant::now(),
                });
            }
            self.start_at = StartAt::Beginning;
            if self.drain(&mut lines, limit)? && self.try_open()? {
                let room = limit.saturating_sub(lines.len()).max(1);
                self.read_current(&mut lines, room)?;
            }
        }
        Ok(lines)
    }

    /// Reads the draining files; closes those deleted or idle for
    /// `rotate_wait` once read to their end (an unterminated tail is then
    /// the file's last line: its writers have moved on). True when every
    /// draining file was read to its end (`limit` not reached).
    fn drain(&mut self, lines: &mut Vec<Line>, limit: usize) -> io::Result<bool> {
        let mut draining = std::mem::take(&mut self.draining);
        let result = self.drain_files(&mut draining, lines, limit);
        // Files rotated meanwhile (none: drain does not detect rotation)
        // would come after these.
        draining.append(&mut self.draining);
        self.draining = draining;
        result
    }

    fn drain_files(
        &self,
        draining: &mut Vec<Draining>,
        lines: &mut Vec<Line>,
        limit: usize,
    ) -> io::Result<bool> {
        let mut i = 0;
        while i < draining.len() {
            if lines.len() >= limit {
                return Ok(false);
            }
            let d = &mut draining[i];
            let before = (lines.len(), d.open.read_pos);
            let eof = self.read_into(&mut d.open, lines, limit)?;
            // Only the oldest open file's lines are resume points.
            for line in &mut lines[before.0..] {
                line.checkpoint = i == 0;
            }
            if d.open.read_pos != before.1 {
                d.active = Instant::now();
            }
            if !eof {
                return Ok(false);
            }
            let deleted = d.open.file.metadata()?.nlink() == 0;
            if deleted || d.active.elapsed() >= self.rotate_wait {
                let d = draining.remove(i);
                if !d.open.pending.is_empty() || d.open.overlong {
                    let mut line = self.make_line(&d.open, d.open.pending.clone(), d.open.read_pos);
                    line.checkpoint = i == 0;
                    lines.push(line);
                }
                tracing::info!(path = %self.path.display(), deleted, "finished a rotated file");
            } else {
                i += 1;
            }
        }
        Ok(true)
    }

    /// Reads the file at the path; its lines are resume points only when no
    /// rotated file is still draining.
    fn read_current(&mut self, lines: &mut Vec<Line>, limit: usize) -> io::Result<bool> {
        let before = lines.len();
        let eof = self.read_available(lines, limit)?;
        if !self.draining.is_empty() {
            for line in &mut lines[before..] {
                line.checkpoint = false;
            }
        }
        Ok(eof)
    }

    fn try_open(&mut self) -> io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let fingerprint = read_prefix(&file, FINGERPRINT_LEN)?;
        let start = match self.resume.take() {
            Some(r) if resumable(&r, meta.dev(), meta.ino(), &fingerprint, meta.len()) => {
                r.position
            }
            // The stored position describes another file: the one we were
            // reading was rotated away while we were down. Finish it first
            // (if it is still in the directory); the file now at the path is
            // new and is read whole after it.
            Some(r) => {
                self.start_at = StartAt::Beginning;
                if let Some(rotated) = self.find_rotated(&r)? {
                    self.open = Some(rotated);
                    return Ok(true);
                }
                0
            }
            None => match self.start_at {
                StartAt::Beginning => 0,
                StartAt::End => meta.len(),
            },
        };
        self.open = Some(OpenFile {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            fingerprint_hex: hex(&fingerprint),
            fingerprint,
            line_end: start,
            read_pos: start,
            pending: Vec::new(),
            overlong: false,
        });
        Ok(true)
    }

    /// The file `stored` describes, under another name in the same
    /// directory, opened at the stored position.
    fn find_rotated(&self, stored: &FilePosition) -> io::Result<Option<OpenFile>> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let candidate = entry.path();
            if candidate == self.path
                || self
                    .others
                    .as_ref()
                    .is_some_and(|p| p.matches_path(&candidate))
            {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&candidate) else {
                continue;
            };
            if !meta.is_file() || (meta.dev(), meta.ino()) != (stored.dev, stored.ino) {
                continue;
            }
            let file = File::open(&candidate)?;
            let fingerprint = read_prefix(&file, FINGERPRINT_LEN)?;
            if !resumable(stored, meta.dev(), meta.ino(), &fingerprint, meta.len()) {
                continue;
            }
            tracing::info!(path = %self.path.display(), rotated = %candidate.display(),
                "the file was rotated while stopped; finishing the rotated file first");
            return Ok(Some(OpenFile {
                file,
                dev: meta.dev(),
                ino: meta.ino(),
                fingerprint_hex: hex(&fingerprint),
                fingerprint,
                line_end: stored.position,
                read_pos: stored.position,
                pending: Vec::new(),
                overlong: false,
            }));
        }
        Ok(None)
    }

    /// Copy-truncate: the file shrank below what we read, or its first bytes
    /// changed (truncated and refilled between two polls). Start over at 0.
    fn check_truncation(&mut self) -> io::Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        let len = open.file.metadata()?.len();
        let prefix = read_prefix(&open.file, FINGERPRINT_LEN)?;
        let shrank = len < open.read_pos;
        let common = prefix.len().min(open.fingerprint.len());
        let rewritten = prefix[..common] != open.fingerprint[..common];
        if shrank || rewritten {
            tracing::info!(path = %self.path.display(), "file was truncated; reading it from the start");
            open.line_end = 0;
            open.read_pos = 0;
            open.pending.clear();
            open.overlong = false;
        }
        if open.fingerprint != prefix {
            open.fingerprint_hex = hex(&prefix);
            open.fingerprint = prefix;
        }
        Ok(())
    }

    /// Reads lines up to `limit`; true when the file was read to its end.
    fn read_available(&mut self, lines: &mut Vec<Line>, limit: usize) -> io::Result<bool> {
        let Some(mut open) = self.open.take() else {
            return Ok(true);
        };
        let result = self.read_into(&mut open, lines, limit);
        self.open = Some(open);
        result
    }

    fn read_into(
        &self,
        open: &mut OpenFile,
        lines: &mut Vec<Line>,
        limit: usize,
    ) -> io::Result<bool> {
        open.file.seek(SeekFrom::Start(open.read_pos))?;
        let mut buf = vec![0u8; CHUNK];
        let mut eof = false;
        'chunks: loop {
            if lines.len() >= limit {
                // Stop on a line boundary: `pending` is empty and read_pos
                // is where the next poll seeks to.
                break;
            }
            let n = open.file.read(&mut buf)?;
            if n == 0 {
                eof = true;
                break;
            }
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                match find_newline(rest) {
                    Some(i) => {
                        self.append(open, &rest[..i]);
                        open.read_pos += i as u64 + 1;
                        let text = std::mem::take(&mut open.pending);
                        open.overlong = false;
                        lines.push(self.make_line(open, text, open.read_pos));
                        open.line_end = open.read_pos;
                        rest = &rest[i + 1..];
                        if lines.len() >= limit && !rest.is_empty() {
                            continue 'chunks;
                        }
                    }
                    None => {
                        self.append(open, rest);
                        open.read_pos += rest.len() as u64;
                        rest = &[];
                    }
                }
            }
        }
        if open.fingerprint.len() < FINGERPRINT_LEN {
            let prefix = read_prefix(&open.file, FINGERPRINT_LEN)?;
            if prefix != open.fingerprint {
                open.fingerprint_hex = hex(&prefix);
                open.fingerprint = prefix;
            }
        }
        Ok(eof)
    }

    fn append(&self, open: &mut OpenFile, bytes: &[u8]) {
        let room = self.max_line_bytes.saturating_sub(open.pending.len());
        if bytes.len() > room {
            if !open.overlong {
                tracing::warn!(path = %self.path.display(), max = self.max_line_bytes, "line longer than max.line.bytes; truncating it");
            }
            open.overlong = true;
        }
        open.pending
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn make_line(&self, open: &OpenFile, mut text: Vec<u8>, after: u64) -> Line {
        if text.last() == Some(&b'\r') {
            text.pop();
        }
        Line {
            // Valid UTF-8 (the usual case) keeps its buffer; anything else
            // is repaired with replacement characters.
            text: String::from_utf8(text)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            after: FilePosition {
                dev: open.dev,
                ino: open.ino,
                fingerprint: open.fingerprint_hex.clone(),
                position: after,
            },
            checkpoint: true,
        }
    }
}

/// True when a stored position still describes `fingerprint`'s file: same
/// inode, or same leading bytes (a copy restored elsewhere), and not shorter.
fn resumable(stored: &FilePosition, dev: u64, ino: u64, fingerprint: &[u8], len: u64) -> bool {
    let prefix_matches = {
        let stored_fp = unhex(&stored.fingerprint);
        let common = stored_fp.len().min(fingerprint.len());
        stored_fp.len() <= fingerprint.len() && stored_fp[..common] == fingerprint[..common]
    };
    let same_inode = (stored.dev, stored.ino) == (dev, ino);
    (same_inode || !stored.fingerprint.is_empty()) && prefix_matches && stored.position <= len
}

/// Index of the first `\n`, eight bytes at a time (the scan is a visible
/// share of tailing a busy file).
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    for (n, chunk) in bytes.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Bytes equal to '\n' become zero; the lowest flagged byte is the
        // first zero (borrows only flag bytes above a real zero).
        let x = u64::from_le_bytes(word) ^ NEWLINES;
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(n * 8 + (zero.trailing_zeros() / 8) as usize);
        }
    }
    let tail = bytes.len() / 8 * 8;
    bytes[tail..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|p| tail + p)
}

fn stat(path: &Path) -> io::Result<Option<std::fs::Metadata>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_prefix(mut file: &File, len: usize) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let mut out = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut out)?;
    Ok(out)
}

fn hex(bytes: &[u8]) -> Arc<str> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out.into()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn partial_line_waits_for_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut t = Tracker::new(p.clone(), 1024, StartAt::Beginning, None);
        assert!(
            t.poll(usize::MAX).unwrap().is_empty(),
            "missing file yields nothing"
        );
        append(&p, "one\ntw");
        let lines = t.poll(usize::MAX).unwrap();
        assert_eq!(texts(&lines), ["one"]);
        assert_eq!(lines[0].after.position, 4);
        append(&p, "o\r\nthree\n");
        let lines = t.poll(usize::MAX).unwrap();
        assert_eq!(texts(&lines), ["two", "three"]);
        assert_eq!(lines[1].after.position, 15);
    }

    #[test]
    fn limit_stops_on_a_line_boundary_and_defers_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, "1\n2\n3\n4\n5");
        let mut t = Tracker::new(p.clone(), 1024, StartAt::Beginning, None);
        let lines = t.poll(2).unwrap();
        assert_eq!(texts(&lines), ["1", "2"]);
        assert_eq!(lines[1].after.position, 4);
        // Rotated while lines were left: the old file is finished first.
        std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        append(&p, "new\n");
        assert_eq!(texts(&t.poll(2).unwrap()), ["3", "4"]);
        assert_eq!(texts(&t.poll(10).unwrap()), ["5", "new"]);
        assert_eq!(&*hex(&[0x0f, 0xa0]), "0fa0");
    }

    #[test]
    fn resume_exactly_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, "a\nb\n");
        let mut t = Tracker::new(p.clone(), 1024, StartAt::Beginning, None);
        let pos = t.poll(usize::MAX).unwrap()[0].after.clone();
        append(&p, "c\n");
        let mut again = Tracker::new(p.clone(), 1024, StartAt::Beginning, Some(pos));
        assert_eq!(texts(&again.poll(usize::MAX).unwrap()), ["b", "c"]);
    }

    #[test]
    fn read_from_end_skips_existing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, "old\n");
        let mut t = Tracker::new(p.clone(), 1024, StartAt::End, None);
        assert!(t.poll(usize::MAX).unwrap().is_empty());
        append(&p, "new\n");
        assert_eq!(texts(&t.poll(usize::MAX).unwrap()), ["new"]);
    }

    #[test]
    fn rename_rotation_finishes_old_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, "1\n");
        let mut t = Tracker::new(p.clone(), 1024, StartAt::Beginning, None);
        assert_eq!(texts(&t.poll(usize::MAX).unwrap()), ["1"]);
        // The writer still appends to the old file before rotating.
        append(&p, "2\n3");
        std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        append(&p, "4\n");
        assert_eq!(texts(&t.poll(usize::MAX).unwrap()), ["2", "3", "4"]);
        append(&p, "5\n");
        assert_eq!(texts(&t.poll(usize::MAX).unwrap()), ["5"]);
    }

    #[test]
    fn a_renamed_file_is_read_until_idle_alongside_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let rotated = dir.path().join("a.log.1");
        append(&p, "1\n");
        let mut t = Tracker::new(p.clone(), 1024, StartAt::Beginning, None)
            .rotate_wait(Duration::from_millis(300));
        assert_eq!(texts(&t.poll(usize::MAX).unwrap()), ["1"]);
        // logrotate `create`: rename, new file; the writer still has the old one.
        std::fs::rename(&p, &rotated).unwrap();
        append(&p, "");
        append(&rotated, "2\n3");
        let lines = t.poll(usize::MAX).unwrap();
        assert_eq!(texts(&lines), ["2"]);
        assert!(lines[0].checkpoint);
        append(&p, "new 1\n");
        append(&rotated, "\n4\n");
        let lines = t.poll(usize::MAX).unwrap();
        assert_eq!(texts(&lines), ["3", "4", "new 1"]);
        // While the rotated file may still grow, the new file's lines are
        // no resume point (a restart must come back to the rotated file).
        assert_eq!(
            lines.iter().map(|l| l.checkpoint).collect::<Vec<_>>(),
            [true, true, false]
        );
        append(&rotated, "5");
        assert!(
            t.poll(usize::MAX).unwrap().is_empty(),
            "a line without its newline"
        );
        std::thread::sleep(Duration::from_millis(400));
        append(&p, "new 2\n");
        // Idle long enough: its unterminated tail is its last line.
        let lines = t.poll(usize::MAX).unwrap();
        assert_eq!(texts(&lines), ["5", "new 2"]);
        assert!(lines[1].checkpoint);
        append(&rotated, "6\n");
        assert!(
            t.poll(usize::MAX).unwrap().is_empty(),
            "closed files are not read"
        );
    }

    #[test]
    fn a_deleted_file_is_finished_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, "1\n");
        let mut t = Tracker::new(p.clone(), 1024, StartAt::Beginning, None)
            .rotate_wait(Duration::from_secs(60));
        assert_eq!(texts(&t.poll(usize::MAX).unwrap()), ["1"]);
        let mut writer = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        writer.write_all(b"2\n").unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(texts(&t.poll(usize::MAX).unwrap()), ["2"]);
        assert!(t.draining.is_empty() && t.open.is_none(), "still open");
        append(&p, "again\n");
        assert_eq!(texts(&t.poll(usize::MAX).unwrap()), ["again"]);
    }

    #[test]
    fn stale_position_after_rotation_reads_new_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, "old line one\nold line two\n");
        let mut t = Tracker::new(p.clone(), 1024, StartAt::Beginning, None);
        let pos = t.poll(usize::MAX).unwrap().pop().unwrap().after;
        std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        append(&p, "fresh\n");
        let mut again = Tracker::new(p.clone(), 1024, StartAt::Beginning, Some(pos));
        assert_eq!(texts(&again.poll(usize::MAX).unwrap()), ["fresh"]);
    }

    #[test]
    fn rotation_while_stopped_finishes_the_rotated_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, "one\ntwo\n");
        let mut t = Tracker::new(p.clone(), 1024, StartAt::Beginning, None);
        let pos = t.poll(usize::MAX).unwrap().pop().unwrap().after;
        drop(t);
        // While stopped: more lines, rotation, a new file.
        append(&p, "three\nfour");
        std::fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        append(&p, "five\n");
        let mut again = Tracker::new(p.clone(), 1024, StartAt::Beginning, Some(pos.clone()));
        assert_eq!(
            texts(&again.poll(usize::MAX).unwrap()),
            ["three", "four", "five"]
        );
        // A glob that matches the rotated name leaves it to its own tracker.
        let glob = glob::Pattern::new(&format!("{}/a.log*", dir.path().display())).unwrap();
        let mut other =
            Tracker::new(p.clone(), 1024, StartAt::Beginning, Some(pos)).leaving_to_others(glob);
        assert_eq!(texts(&other.poll(usize::MAX).unwrap()), ["five"]);
    }

    #[test]
    fn find_newline_matches_a_plain_scan() {
        let mut seed = 7u64;
        for len in 0..80 {
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        // Mostly '\n', '\x0b', '\t' and high bytes: the
                        // values a word-wise compare could confuse.
                        [b'\n', 0x0b, 0x09, 0x8a, 0xff, b'a'][(seed >> 33) as usize % 6]
                    })
                    .collect();
                let want = bytes.iter().position(|b| *b == b'\n');
                assert_eq!(find_newline(&bytes), want, "{bytes:?}");
            }
        }
    }

    #[test]
    fn copy_truncate_restarts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, "aaaa\nbbbb\n");
        let mut t = Tracker::new(p.clone(), 1024, StartAt::Beginning, None);
        assert_eq!(t.poll(usize::MAX).unwrap().len(), 2);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&p, "c\n");
        assert_eq!(texts(&t.poll(usize::MAX).unwrap()), ["c"]);
        // Truncated and refilled past the old position between two polls:
        // caught by the fingerprint of the first bytes.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&p, "zzzzzzzz\n");
        assert_eq!(texts(&t.poll(usize::MAX).unwrap()), ["zzzzzzzz"]);
    }

    #[test]
    fn overlong_lines_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, "abcdefgh\nxy\n");
        let mut t = Tracker::new(p.clone(), 4, StartAt::Beginning, None);
        let lines = t.poll(usize::MAX).unwrap();
        assert_eq!(texts(&lines), ["abcd", "xy"]);
        assert_eq!(lines[0].after.position, 9);
    }
}
