//! Opening a partition's segments after a clean or an unclean stop.
//!
//! After a clean shutdown every segment was fsynced: a closed segment's indexes are trusted
//! (only the headers after its last index entry are read, for its end) unless producer state
//! must be replayed from its batches (they are past the newest producer snapshot), then its
//! headers are walked; only the active segment's tail is CRC-checked. After an unclean stop,
//! segments wholly below the recovery point — the offset below which everything was fsynced —
//! are opened the same way, and every segment at or past it is read whole and CRC-checked, as
//! Kafka's `LogLoader` recovers unflushed segments; the first damaged batch ends the log, and
//! later segments are deleted, since their offsets would no longer follow on.

use std::collections::BTreeMap;
use std::path::Path;

use super::batch::BatchHeader;
use super::segment::{Recovery, Segment};
use std::io;

/// How a stop left the log.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    Clean,
    /// Unclean, with the recovery point last checkpointed (0 when none was).
    Unclean {
        recovery_point: i64,
    },
}

/// Opens the segments with these base offsets (sorted), recovering as `stop` requires.
/// `on_batch` must see every batch at or after `replay_from` (the newest producer snapshot).
pub(crate) fn open_segments(
    dir: &Path,
    bases: &[i64],
    stop: Stop,
    replay_from: i64,
    index_interval: u32,
    now_ms: i64,
    on_batch: &mut dyn FnMut(&BatchHeader),
) -> io::Result<BTreeMap<i64, Segment>> {
    let mut segments = BTreeMap::new();
    let mut damaged_at: Option<i64> = None;
    for (i, base) in bases.iter().enumerate() {
        if let Some(at) = damaged_at {
            tracing::warn!(log = %dir.display(), base, damaged_at = at, "deleting a segment after a damaged one");
            let (seg, _) = Segment::open(
                dir,
                *base,
                Recovery::Headers,
                index_interval,
                now_ms,
                &mut |_| {},
            )?;
            seg.delete()?;
            continue;
        }
        let next_base = bases.get(i + 1).copied();
        // A closed segment none of whose batches producer state needs.
        let settled = if next_base.is_some_and(|n| n <= replay_from) {
            Recovery::Indexed
        } else {
            Recovery::Headers
        };
        let recovery = match stop {
            Stop::Clean if next_base.is_none() => Recovery::Tail,
            Stop::Clean => settled,
            // Wholly below the recovery point: fsynced before the stop.
            Stop::Unclean { recovery_point } if next_base.is_some_and(|n| n <= recovery_point) => {
                settled
            }
            Stop::Unclean { .. } => Recovery::Full,
        };
        let (mut seg, truncated) =
            Segment::open(dir, *base, recovery, index_interval, now_ms, on_batch)?;
        if recovery == Recovery::Full {
            // What the stopped process wrote may still be only in the page cache: sync it now,
            // so the whole recovered log is below the new recovery point.
            seg.flush(true)?;
        }
        if truncated && next_base.is_some() {
            damaged_at = Some(seg.next_offset);
        }
        segments.insert(*base, seg);
    }
    Ok(segments)
}
