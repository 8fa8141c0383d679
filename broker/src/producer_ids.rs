//! Allocation of idempotent producer ids, unique across broker restarts.
//!
//! Ids are handed out from blocks; the end of the current block is persisted before any id in
//! it is used, so a restart (clean or not) continues after it and never reuses an id.

use std::fs;
use std::io;
use std::path::PathBuf;

use parking_lot::Mutex;

use crate::util::write_atomically;

const BLOCK: i64 = 1000;

/// Hands out producer ids.
pub(crate) struct ProducerIds {
    path: PathBuf,
    /// (next id, end of the persisted block)
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let start = match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIds {
            path,
            state: Mutex::new((start, start)),
        })
    }

    /// A fresh producer id.
    pub fn allocate(&self) -> io::Result<i64> {
        let mut s = self.state.lock();
        if s.0 >= s.1 {
            let end = s.0 + BLOCK;
            write_atomically(&self.path, end.to_string().as_bytes())?;
            s.1 = end;
        }
        let id = s.0;
        s.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_not_reused_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids");
        let a = ProducerIds::open(path.clone()).unwrap();
        let first = a.allocate().unwrap();
        let second = a.allocate().unwrap();
        assert!(second > first);
        drop(a);
        let b = ProducerIds::open(path).unwrap();
        assert!(b.allocate().unwrap() > second);
    }
}
