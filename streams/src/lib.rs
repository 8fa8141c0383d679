//! Brook streams: the stream-processing library (see issue: brook-streams).
