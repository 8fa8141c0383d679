//! Shared shapes of user functions held by operators.

use std::sync::Arc;

/// A predicate over key and value.
pub(crate) type Pred<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;
/// Folds a value into an aggregate.
pub(crate) type Adder<K, V, A> = Arc<dyn Fn(&K, V, A) -> A + Send + Sync>;
/// Combines two aggregates (session merges).
pub(crate) type Merger<K, A> = Arc<dyn Fn(&K, A, A) -> A + Send + Sync>;
/// The initial aggregate.
pub(crate) type Init<A> = Arc<dyn Fn() -> A + Send + Sync>;
/// Maps a value, seeing the key.
pub(crate) type ValueMapper<K, V, V2> = Arc<dyn Fn(&K, V) -> V2 + Send + Sync>;
/// Maps a row to a new key and value.
pub(crate) type KeyValueMapper<K, V, K2, V2> = Arc<dyn Fn(&K, &V) -> (K2, V2) + Send + Sync>;
/// Event time from key, value and Kafka timestamp.
pub(crate) type TsExtractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> i64 + Send + Sync>;
/// Joins a stream value with an optional table value.
pub(crate) type LookupJoiner<K, V, VT, VO> = Arc<dyn Fn(&K, V, Option<VT>) -> VO + Send + Sync>;
/// Joins two optional sides.
pub(crate) type Joiner<K, VL, VR, VO> = Arc<dyn Fn(&K, Option<VL>, Option<VR>) -> VO + Send + Sync>;
