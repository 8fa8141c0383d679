//! Window specifications, with Kafka Streams' boundaries and grace rules.

use std::time::Duration;

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Tumbling (advance = size) or hopping windows, aligned to the epoch, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    /// Window size in ms.
    pub size: i64,
    /// Distance between window starts in ms.
    pub advance: i64,
    /// How long after a window ends late records are still accepted.
    pub grace: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` accepting records up to `grace` after the end.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size = ms(size).max(1);
        TimeWindows {
            size,
            advance: size,
            grace: ms(grace),
        }
    }
    /// Tumbling windows of `size` that close as soon as stream time passes their end.
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }
    /// Makes them hopping: a new window every `advance` (must be ≤ size).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance = ms(advance).clamp(1, self.size);
        self
    }
    /// Starts of the windows containing `ts`, oldest first.
    pub(crate) fn windows_for(&self, ts: i64) -> Vec<i64> {
        let last_start = ts - ts.rem_euclid(self.advance);
        let mut out = Vec::new();
        let mut s = last_start;
        while s > ts - self.size && s >= 0 {
            out.push(s);
            s -= self.advance;
        }
        out.reverse();
        out
    }
}

/// Sliding windows for aggregation: every distinct set of records whose
/// timestamps differ by at most `time_difference`; bounds are inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    /// Maximum time difference between records of one window, in ms.
    pub time_difference: i64,
    /// Grace period in ms.
    pub grace: i64,
}

impl SlidingWindows {
    /// Sliding windows of `time_difference` with `grace`.
    pub fn of_time_difference_and_grace(time_difference: Duration, grace: Duration) -> Self {
        SlidingWindows {
            time_difference: ms(time_difference),
            grace: ms(grace),
        }
    }
    /// Sliding windows with no grace.
    pub fn of_time_difference_with_no_grace(time_difference: Duration) -> Self {
        Self::of_time_difference_and_grace(time_difference, Duration::ZERO)
    }
}

/// Session windows: records of a key closer than `gap` belong to one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    /// Inactivity gap in ms.
    pub gap: i64,
    /// Grace period in ms.
    pub grace: i64,
}

impl SessionWindows {
    /// Sessions split by `gap` of inactivity, accepting records `grace` after a session ends.
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap: ms(gap),
            grace: ms(grace),
        }
    }
    /// Sessions with no grace.
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }
}

/// Stream–stream join windows: a record at `t` joins other-side records in
/// `[t - before, t + after]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    /// How far back the other side is looked at, in ms.
    pub before: i64,
    /// How far ahead the other side is looked at, in ms.
    pub after: i64,
    /// Grace period in ms.
    pub grace: i64,
}

impl JoinWindows {
    /// Symmetric window of `diff` with `grace`.
    pub fn of_time_difference_and_grace(diff: Duration, grace: Duration) -> Self {
        JoinWindows {
            before: ms(diff),
            after: ms(diff),
            grace: ms(grace),
        }
    }
    /// Symmetric window of `diff`, no grace.
    pub fn of_time_difference_without_grace(diff: Duration) -> Self {
        Self::of_time_difference_and_grace(diff, Duration::ZERO)
    }
    /// Changes how far back the window reaches.
    pub fn before(mut self, d: Duration) -> Self {
        self.before = ms(d);
        self
    }
    /// Changes how far ahead the window reaches.
    pub fn after(mut self, d: Duration) -> Self {
        self.after = ms(d);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_window_assignment() {
        let t = TimeWindows::of_size_with_no_grace(Duration::from_millis(10));
        assert_eq!(t.windows_for(0), vec![0]);
        assert_eq!(t.windows_for(9), vec![0]);
        assert_eq!(t.windows_for(10), vec![10]);
        let h = TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
            .advance_by(Duration::from_millis(5));
        assert_eq!(h.windows_for(12), vec![5, 10]);
        assert_eq!(h.windows_for(3), vec![0]);
        assert_eq!(h.windows_for(5), vec![0, 5]);
    }
}
