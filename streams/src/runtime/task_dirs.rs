//! Which thread of an instance holds which task directory.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::task::TaskId;

/// The task directories held by the threads of one instance: RocksDB locks a
/// directory per process, so a task suspended on one thread must be closed
/// there before another thread of the same instance opens it.
#[derive(Clone, Default)]
pub(crate) struct TaskDirs(Arc<parking_lot::Mutex<DirState>>);

#[derive(Default)]
struct DirState {
    holders: HashMap<TaskId, String>,
    /// Directories a thread waits for: a standby holding one gives it up.
    wanted: BTreeSet<TaskId>,
}

impl TaskDirs {
    /// Takes a directory for `thread`; false (and marked wanted) while
    /// another thread holds it.
    pub fn claim(&self, id: TaskId, thread: &str) -> bool {
        self.claim_for(id, thread, true)
    }

    /// As `claim`; a standby (`want: false`) does not make a holder give way.
    pub fn claim_for(&self, id: TaskId, thread: &str, want: bool) -> bool {
        let mut m = self.0.lock();
        match m.holders.get(&id) {
            Some(holder) if holder != thread => {
                if want {
                    m.wanted.insert(id);
                }
                false
            }
            _ => {
                m.holders.insert(id, thread.to_string());
                m.wanted.remove(&id);
                true
            }
        }
    }

    pub fn release(&self, id: TaskId, thread: &str) {
        let mut m = self.0.lock();
        if m.holders.get(&id).is_some_and(|h| h == thread) {
            m.holders.remove(&id);
        }
    }

    /// Whether another thread waits for this directory.
    pub fn wanted(&self, id: TaskId) -> bool {
        self.0.lock().wanted.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_per_directory_and_waiting_threads_are_seen() {
        let dirs = TaskDirs::default();
        let t = TaskId {
            subtopology: 0,
            partition: 1,
        };
        assert!(dirs.claim(t, "a"));
        assert!(dirs.claim(t, "a"), "the holder may claim again");
        // A standby's claim does not make the holder give way; an active one's does.
        assert!(!dirs.claim_for(t, "b", false));
        assert!(!dirs.wanted(t));
        assert!(!dirs.claim(t, "b"));
        assert!(dirs.wanted(t));
        dirs.release(t, "b");
        assert!(!dirs.claim(t, "b"), "only the holder releases");
        dirs.release(t, "a");
        assert!(dirs.claim(t, "b"));
        assert!(!dirs.wanted(t));
    }
}
