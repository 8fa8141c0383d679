//! Standby replicas (`num.standby.replicas`): where they go.
//!
//! Kafka Streams places standbys in its own assignor. The group here uses
//! librdkafka's `range` assignor (co-partitioning), so every thread derives
//! the same placement from the group's membership instead: it reads each
//! member's assignment (DescribeGroups), maps members to instances by their
//! `client.id` (`<application.id>-<instance>-StreamThread-<n>-consumer`, as
//! Kafka names them), and gives task T's standbys to the instances that come
//! next after T's active instance in sorted order. Within an instance, task T
//! goes to thread `(T.subtopology + T.partition) % threads`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::rebalance::Tp;
use crate::task::TaskId;

/// Decodes the partitions of a consumer-protocol assignment
/// (version, then `[topic, [partition]]`); `None` if malformed.
pub(crate) fn decode_assignment(b: &[u8]) -> Option<Vec<Tp>> {
    let mut r = Reader { b, at: 0 };
    let _version = r.i16()?;
    let topics = r.i32()?;
    if topics < 0 {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    for _ in 0..topics {
        let len = r.i16()?;
        let name = std::str::from_utf8(r.take(usize::try_from(len).ok()?)?).ok()?;
        let n = r.i32()?;
        // Bounded by the bytes that remain, whatever the count claims.
        if n < 0 || n as usize > (r.b.len() - r.at) / 4 {
            return None;
        }
        for _ in 0..n {
            out.push((name.to_string(), r.i32()?));
        }
    }
    Some(out)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// The instance part of a stream thread's consumer `client.id`.
pub(crate) fn instance_of<'a>(client_id: &'a str, app_id: &str) -> Option<&'a str> {
    let rest = client_id.strip_prefix(app_id)?.strip_prefix('-')?;
    let at = rest.find("-StreamThread-")?;
    Some(&rest[..at])
}

/// Where this thread hosts standbys.
pub(crate) struct Placement<'a> {
    pub instance: &'a str,
    pub threads: usize,
    pub thread_index: usize,
    pub replicas: usize,
}

impl Placement<'_> {
    /// The standby tasks of this thread, given each instance's active tasks.
    /// Only tasks in `stateful` (with logged stores) get standbys.
    pub fn standbys(
        &self,
        active: &BTreeMap<String, BTreeSet<TaskId>>,
        stateful: &dyn Fn(TaskId) -> bool,
    ) -> BTreeSet<TaskId> {
        let instances: Vec<&String> = active.keys().collect();
        let Some(me) = instances.iter().position(|i| i.as_str() == self.instance) else {
            return BTreeSet::new();
        };
        let mine = &active[self.instance];
        let mut out = BTreeSet::new();
        for (owner_idx, owner) in instances.iter().enumerate() {
            if owner_idx == me {
                continue;
            }
            let n = instances.len();
            // The `replicas` instances after the owner, wrapping, never the owner.
            let hosts = (1..n).map(|k| (owner_idx + k) % n).take(self.replicas);
            if !hosts.into_iter().any(|h| h == me) {
                continue;
            }
            for &t in &active[owner.as_str()] {
                let thread = (t.subtopology as usize + t.partition as usize) % self.threads.max(1);
                if !mine.contains(&t) && thread == self.thread_index && stateful(t) {
                    out.insert(t);
                }
            }
        }
        out
    }
}

/// Each instance's active tasks, from the members' client ids and assignments.
pub(crate) fn active_by_instance(
    members: &[(String, Vec<Tp>)],
    app_id: &str,
    topic_sub: &HashMap<String, u32>,
) -> BTreeMap<String, BTreeSet<TaskId>> {
    let mut out: BTreeMap<String, BTreeSet<TaskId>> = BTreeMap::new();
    for (client, parts) in members {
        let Some(instance) = instance_of(client, app_id) else {
            continue;
        };
        let tasks = out.entry(instance.to_string()).or_default();
        for (t, p) in parts {
            if let Some(&s) = topic_sub.get(t) {
                tasks.insert(TaskId {
                    subtopology: s,
                    partition: *p,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(parts: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = vec![0, 1];
        b.extend((parts.len() as i32).to_be_bytes());
        for (t, ps) in parts {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes());
        b
    }

    #[test]
    fn decodes_assignments_and_refuses_hostile_counts() {
        let b = assignment(&[("a", &[0, 2]), ("b", &[1])]);
        assert_eq!(
            decode_assignment(&b).unwrap(),
            vec![("a".into(), 0), ("a".into(), 2), ("b".into(), 1)]
        );
        let mut bad = vec![0, 1, 0, 0, 0, 1, 0, 1, b'a'];
        bad.extend(i32::MAX.to_be_bytes());
        assert!(decode_assignment(&bad).is_none());
        assert!(decode_assignment(&[0]).is_none());
    }

    #[test]
    fn standbys_go_to_the_next_instance_and_its_thread() {
        assert_eq!(
            instance_of("app-x1-StreamThread-2-consumer", "app"),
            Some("x1")
        );
        let t = |s, p| TaskId {
            subtopology: s,
            partition: p,
        };
        let topic_sub = HashMap::from([("in".to_string(), 0u32)]);
        let members = vec![
            (
                "app-a-StreamThread-1-consumer".to_string(),
                vec![("in".to_string(), 0)],
            ),
            (
                "app-b-StreamThread-1-consumer".to_string(),
                vec![("in".to_string(), 1)],
            ),
            (
                "app-c-StreamThread-1-consumer".to_string(),
                vec![("in".to_string(), 2)],
            ),
        ];
        let active = active_by_instance(&members, "app", &topic_sub);
        let place = |instance, threads, thread_index, replicas| Placement {
            instance,
            threads,
            thread_index,
            replicas,
        };
        let all = |_| true;
        // One replica: a's task on b, b's on c, c's on a.
        assert_eq!(
            place("b", 1, 0, 1).standbys(&active, &all),
            BTreeSet::from([t(0, 0)])
        );
        assert_eq!(
            place("a", 1, 0, 1).standbys(&active, &all),
            BTreeSet::from([t(0, 2)])
        );
        // Two replicas: every other instance.
        assert_eq!(
            place("a", 1, 0, 2).standbys(&active, &all),
            BTreeSet::from([t(0, 1), t(0, 2)])
        );
        // Two threads: task 0_1 goes to thread 1, 0_2 to thread 0.
        assert_eq!(
            place("a", 2, 1, 2).standbys(&active, &all),
            BTreeSet::from([t(0, 1)])
        );
        // Stateless tasks get none.
        assert!(place("a", 1, 0, 2).standbys(&active, &|_| false).is_empty());
    }
}
