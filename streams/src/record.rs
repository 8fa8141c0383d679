//! Records as processors see them, typed at the API and type-erased inside the graph.

use std::any::Any;
use std::sync::Arc;

/// Bounds every key and value type meets: cloneable (a record can fan out to
/// several children) and sendable (tasks run on stream threads).
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// One record header; a `None` value is a null header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header key.
    pub key: String,
    /// Header value bytes.
    pub value: Option<Vec<u8>>,
}

/// Record headers, cheap to clone (shared until modified). Most records have none, and
/// then nothing is allocated: a record's headers are created on every input record.
#[derive(Debug, Clone, Default)]
pub struct Headers(Option<Arc<Vec<Header>>>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }
    /// Appends a header.
    pub fn add(&mut self, key: impl Into<String>, value: Option<Vec<u8>>) {
        Arc::make_mut(self.0.get_or_insert_with(Default::default)).push(Header {
            key: key.into(),
            value,
        });
    }
    /// The last value of `key`, if present.
    pub fn last(&self, key: &str) -> Option<&Header> {
        self.all().iter().rev().find(|h| h.key == key)
    }
    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.all().iter()
    }
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.all().len()
    }
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.all().is_empty()
    }
    fn all(&self) -> &[Header] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.all() == other.all()
    }
}

impl Eq for Headers {}

/// A typed record: key, value, event timestamp (ms) and headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time in milliseconds since the epoch.
    pub timestamp: i64,
    /// Headers carried along.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record with no headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Headers::new(),
        }
    }
    /// Same metadata, another key and value.
    pub fn with<K2, V2>(&self, key: K2, value: V2) -> Record<K2, V2> {
        Record {
            key,
            value,
            timestamp: self.timestamp,
            headers: self.headers.clone(),
        }
    }
}

/// Where the record being processed came from (absent in punctuations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
}

/// A type-erased, cloneable value flowing between processors.
pub(crate) trait AnyData: Send {
    fn clone_box(&self) -> Box<dyn AnyData>;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Data> AnyData for T {
    fn clone_box(&self) -> Box<dyn AnyData> {
        Box::new(self.clone())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub(crate) type Val = Box<dyn AnyData>;

impl Clone for Box<dyn AnyData> {
    fn clone(&self) -> Self {
        (**self).clone_box()
    }
}

/// Takes the typed value out. The topology's types guarantee the match; a
/// mismatch is a bug in this crate, never caused by data.
pub(crate) fn take<T: 'static>(v: Val) -> T {
    match v.into_any().downcast::<T>() {
        Ok(b) => *b,
        Err(_) => panic!(
            "brook-streams internal type mismatch: expected {}",
            std::any::type_name::<T>()
        ),
    }
}

/// Borrows the typed value (see [`take`]).
pub(crate) fn peek<T: 'static>(v: &Val) -> &T {
    match (**v).as_any().downcast_ref::<T>() {
        Some(t) => t,
        None => panic!(
            "brook-streams internal type mismatch: expected {}",
            std::any::type_name::<T>()
        ),
    }
}

/// A record inside the graph.
#[derive(Clone)]
pub(crate) struct DynRecord {
    pub key: Val,
    pub value: Val,
    pub timestamp: i64,
    pub headers: Headers,
}

impl DynRecord {
    pub fn typed<K: 'static, V: 'static>(self) -> Record<K, V> {
        Record {
            key: take(self.key),
            value: take(self.value),
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
    pub fn erase<K: Data, V: Data>(r: Record<K, V>) -> Self {
        DynRecord {
            key: Box::new(r.key),
            value: Box::new(r.value),
            timestamp: r.timestamp,
            headers: r.headers,
        }
    }
}

/// A table update: the new value and the one it replaced (`None` = absent/deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct Change<V> {
    /// Value after the update.
    pub new: Option<V>,
    /// Value before the update.
    pub old: Option<V>,
}
