//! Partition counts of repartition topics and task counts of sub-topologies, as Kafka's
//! `RepartitionTopics` and `CopartitionedTopicsEnforcer` work them out:
//!
//! - a repartition topic with an explicit count (`Repartitioned::with_number_of_partitions`)
//!   keeps it;
//! - otherwise it gets as many partitions as the sub-topologies writing it have tasks (the
//!   largest source topic of a writer);
//! - then every co-partition group (a join's inputs) is made equal: user topics must already
//!   agree, explicit counts must agree with them, and the other repartition topics of the group
//!   take the group's count (the user topics', an explicit one, or else the largest derived);
//! - a sub-topology has as many tasks as its largest source topic.
//!
//! So `orders(3).select_key(..).join(customers(6))` gives the repartition topic 6 partitions.

use std::collections::BTreeMap;

use super::{TopicRef, Topology};
use crate::error::StreamsError;

/// What [`Topology::size`] works out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sizing {
    /// Partitions of every source topic, user and internal.
    pub topics: BTreeMap<TopicRef, i32>,
    /// Tasks of every sub-topology, by id.
    pub tasks: BTreeMap<u32, i32>,
}

impl Topology {
    /// Sizes internal topics and sub-topologies from the partition counts of the user source
    /// topics (every one of them must be in `user`).
    pub(crate) fn size(
        &self,
        user: &BTreeMap<TopicRef, i32>,
        app_id: &str,
    ) -> Result<Sizing, StreamsError> {
        // Counts nothing here may change: user topics and explicit repartition counts.
        let mut fixed = user.clone();
        for (name, n) in &self.repartition_partitions {
            fixed.insert(TopicRef::Internal(name.clone()), *n);
        }
        let group_counts = self
            .copartition_groups
            .iter()
            .map(|g| self.fixed_group_count(g, &fixed, app_id))
            .collect::<Result<Vec<_>, _>>()?;
        // Derived counts flow down chains of repartitions and across co-partition groups; the
        // sub-topology graph is acyclic, so this settles within one round per sub-topology.
        let mut counts = fixed.clone();
        for _ in 0..=self.subtopologies.len() + 1 {
            let mut next = fixed.clone();
            for name in &self.repartition_topics {
                let t = TopicRef::Internal(name.clone());
                if fixed.contains_key(&t) {
                    continue;
                }
                let n = self
                    .writers_of(&t)
                    .into_iter()
                    .filter_map(|id| self.tasks_of(id, &counts))
                    .max();
                if let Some(n) = n {
                    next.insert(t, n);
                }
            }
            for (group, fixed_n) in self.copartition_groups.iter().zip(&group_counts) {
                let n = fixed_n.or_else(|| group.iter().filter_map(|t| next.get(t)).max().copied());
                if let Some(n) = n {
                    for t in group.iter().filter(|t| !fixed.contains_key(t)) {
                        next.insert(t.clone(), n);
                    }
                }
            }
            if next == counts {
                break;
            }
            counts = next;
        }
        let mut tasks = BTreeMap::new();
        for sub in &self.subtopologies {
            let n = self.tasks_of(sub.id, &counts).ok_or_else(|| {
                let unknown: Vec<String> = sub
                    .source_topics
                    .iter()
                    .filter(|t| !counts.contains_key(t))
                    .map(|t| t.resolve(app_id))
                    .collect();
                StreamsError::Topology(format!(
                    "cannot size sub-topology {}: no partition count for {unknown:?}",
                    sub.id
                ))
            })?;
            tasks.insert(sub.id, n);
        }
        Ok(Sizing {
            topics: counts,
            tasks,
        })
    }

    /// Tasks of a sub-topology: its largest source topic, once every source is sized.
    fn tasks_of(&self, id: u32, counts: &BTreeMap<TopicRef, i32>) -> Option<i32> {
        let sub = self.subtopologies.iter().find(|s| s.id == id)?;
        sub.source_topics
            .iter()
            .map(|t| counts.get(t).copied())
            .collect::<Option<Vec<i32>>>()?
            .into_iter()
            .max()
    }

    /// The count a co-partition group is pinned to by its user topics and explicit repartition
    /// counts (`None` when only derived counts are involved); an error when those disagree.
    fn fixed_group_count(
        &self,
        group: &std::collections::BTreeSet<TopicRef>,
        fixed: &BTreeMap<TopicRef, i32>,
        app_id: &str,
    ) -> Result<Option<i32>, StreamsError> {
        let users: Vec<(&TopicRef, i32)> = group
            .iter()
            .filter(|t| matches!(t, TopicRef::User(_)))
            .filter_map(|t| fixed.get(t).map(|n| (t, *n)))
            .collect();
        if users.windows(2).any(|w| w[0].1 != w[1].1) {
            return Err(StreamsError::CoPartitioning {
                topics: users.iter().map(|(t, _)| t.resolve(app_id)).collect(),
                counts: users.iter().map(|(_, n)| *n).collect(),
            });
        }
        let mut pinned = users.first().map(|(t, n)| ((*t).clone(), *n));
        for t in group.iter().filter(|t| matches!(t, TopicRef::Internal(_))) {
            let Some(&n) = fixed.get(t) else { continue };
            match pinned.clone() {
                Some((other, m)) if m != n => {
                    return Err(StreamsError::Topology(format!(
                        "number of partitions [{n}] of repartition topic [{}] does not match number of partitions [{m}] of [{}], which it must be co-partitioned with",
                        t.resolve(app_id),
                        other.resolve(app_id)
                    )))
                }
                Some(_) => {}
                None => pinned = Some((t.clone(), n)),
            }
        }
        Ok(pinned.map(|(_, n)| n))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{JoinWindows, Repartitioned, Serdes, StreamsBuilder};

    fn user(counts: &[(&str, i32)]) -> BTreeMap<TopicRef, i32> {
        counts
            .iter()
            .map(|(t, n)| (TopicRef::User(t.to_string()), *n))
            .collect()
    }

    fn internal_counts(s: &Sizing) -> Vec<(String, i32)> {
        s.topics
            .iter()
            .filter_map(|(t, n)| match t {
                TopicRef::Internal(name) => Some((name.clone(), *n)),
                TopicRef::User(_) => None,
            })
            .collect()
    }

    fn window() -> JoinWindows {
        JoinWindows::of_time_difference_without_grace(Duration::from_secs(1))
    }

    /// `orders.select_key(..)` joined with `customers`, the re-keyed side optionally with an
    /// explicit repartition count.
    fn rekeyed_join(partitions: Option<i32>) -> Topology {
        let b = StreamsBuilder::new();
        let mut orders = b
            .stream::<String, String>("orders")
            .select_key(|_, v| v.clone());
        if let Some(n) = partitions {
            orders = orders.repartition_with(
                Repartitioned::with(Serdes::string(), Serdes::string())
                    .named("by-customer")
                    .with_number_of_partitions(n),
            );
        }
        let customers = b.stream::<String, String>("customers");
        orders
            .join(&customers, |o, c| format!("{o}/{c}"), window())
            .to("out");
        b.build().unwrap()
    }

    #[test]
    fn a_repartition_topic_takes_the_count_of_its_copartition_group() {
        let t = rekeyed_join(None);
        let s = t
            .size(&user(&[("orders", 3), ("customers", 6)]), "app")
            .unwrap();
        let internal = internal_counts(&s);
        assert_eq!(internal.len(), 1, "{internal:?}");
        assert_eq!(internal[0].1, 6, "{internal:?}");
        // The sub-topology reading orders has 3 tasks, the join's has 6.
        let mut tasks: Vec<i32> = s.tasks.values().copied().collect();
        tasks.sort();
        assert_eq!(tasks, vec![3, 6]);
    }

    #[test]
    fn an_explicit_count_must_match_the_group() {
        let t = rekeyed_join(Some(6));
        let s = t
            .size(&user(&[("orders", 3), ("customers", 6)]), "app")
            .unwrap();
        assert_eq!(
            internal_counts(&s),
            vec![("by-customer-repartition".into(), 6)]
        );
        let t = rekeyed_join(Some(4));
        let e = t
            .size(&user(&[("orders", 3), ("customers", 6)]), "app")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("app-by-customer-repartition")
                && e.contains("[4]")
                && e.contains("[6]")
                && e.contains("customers"),
            "{e}"
        );
    }

    #[test]
    fn user_topics_of_a_join_must_agree() {
        let b = StreamsBuilder::new();
        let l = b.stream::<String, String>("left");
        let r = b.stream::<String, String>("right");
        l.join(&r, |a, b| a + &b, window()).to("out");
        let t = b.build().unwrap();
        match t.size(&user(&[("left", 2), ("right", 3)]), "app") {
            Err(StreamsError::CoPartitioning { topics, counts }) => {
                assert_eq!(topics, vec!["left", "right"]);
                assert_eq!(counts, vec![2, 3]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unrelated_inputs_of_one_subtopology_need_not_agree_and_chains_resolve() {
        // A merge into an aggregation is not a join: 2 and 5 partitions are fine (5 tasks).
        // The aggregation's output re-keyed and joined with both re-keyed sides of another
        // join: derived counts flow down the chain.
        let b = StreamsBuilder::new();
        let a = b.stream::<String, String>("a");
        let c = b.stream::<String, String>("c");
        let counts = a.merge(&c).group_by(|_, v| v.clone()).count();
        let rekeyed = counts
            .to_stream()
            .select_key(|k, _| k.clone())
            .map_values(|v| v.unwrap_or(0).to_string());
        let other = b.stream::<String, String>("d").select_key(|_, v| v.clone());
        rekeyed
            .join(&other, |x, y| format!("{x}{y}"), window())
            .to("out");
        let t = b.build().unwrap();
        let s = t
            .size(&user(&[("a", 2), ("c", 5), ("d", 1)]), "app")
            .unwrap();
        let internal = internal_counts(&s);
        // The aggregation's repartition: 5 (from its writer); both join inputs: the larger
        // derived count of the group, 5.
        assert_eq!(internal.len(), 3, "{internal:?}");
        assert!(internal.iter().all(|(_, n)| *n == 5), "{internal:?}");
    }

    #[test]
    fn explicit_counts_also_size_groups_of_repartition_topics_only() {
        let b = StreamsBuilder::new();
        let l = b
            .stream::<String, String>("l")
            .select_key(|_, v| v.clone())
            .repartition_with(
                Repartitioned::with(Serdes::string(), Serdes::string())
                    .named("l-by")
                    .with_number_of_partitions(8),
            );
        let r = b.stream::<String, String>("r").select_key(|_, v| v.clone());
        l.join(&r, |a, b| a + &b, window()).to("out");
        let t = b.build().unwrap();
        let s = t.size(&user(&[("l", 2), ("r", 3)]), "app").unwrap();
        let internal = internal_counts(&s);
        assert!(internal.iter().all(|(_, n)| *n == 8), "{internal:?}");
        assert_eq!(s.tasks.values().max(), Some(&8));
    }
}
