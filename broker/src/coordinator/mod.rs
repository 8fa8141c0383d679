//! The group coordinator: consumer group membership and committed offsets.

mod group;
mod offsets;
mod outcome;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;

use crate::config::GroupSettings;
use crate::topics::TopicManager;
use crate::util::now_ms;
use group::Group;
pub(crate) use group::{GroupState, JoinParams, Reply};
use offsets::{persist, OffsetStore, OffsetsTopic};
pub(crate) use offsets::{Committed, OFFSETS_TOPIC};
pub(crate) use outcome::{DescribedMember, GroupDescription, JoinOutcome, SyncOutcome};

/// One partition's commit in a write: topic, partition, and the offset (`None` deletes).
type OffsetEntry = (String, i32, Option<Committed>);

/// Coordinates every consumer group of the broker.
pub(crate) struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    offsets: Mutex<OffsetStore>,
    initial_delay: Duration,
    min_session_ms: i64,
    max_session_ms: i64,
    offsets_topic: OffsetsTopic,
    offsets_retention_ms: i64,
    retention_check: Duration,
    last_retention_check: Mutex<Instant>,
}

impl Coordinator {
    /// Creates the coordinator, replaying committed offsets from `__consumer_offsets`.
    pub fn open(topics: &TopicManager, config: &GroupSettings) -> Self {
        let mut offsets = OffsetStore::load(topics);
        let initial_delay = config.initial_rebalance_delay;
        let now = Instant::now();
        let groups: HashMap<String, Group> = offsets
            .take_snapshots()
            .into_iter()
            .map(|(id, snap)| {
                let g = Group::restore(&id, snap, initial_delay, now);
                (id, g)
            })
            .collect();
        if !groups.is_empty() {
            tracing::info!(groups = groups.len(), "restored group membership");
        }
        Coordinator {
            groups: Mutex::new(groups),
            offsets: Mutex::new(offsets),
            initial_delay,
            min_session_ms: config.min_session_ms,
            max_session_ms: config.max_session_ms,
            offsets_topic: OffsetsTopic {
                partitions: config.offsets_topic_partitions,
                segment_bytes: config.offsets_topic_segment_bytes,
            },
            offsets_retention_ms: config.offsets_retention_ms,
            retention_check: config.offsets_retention_check_interval,
            last_retention_check: Mutex::new(Instant::now()),
        }
    }

    /// Persists the membership of every group that changed in a way worth keeping across
    /// restarts. Only the ticker (and shutdown) calls this, one call at a time, so a group's
    /// snapshots reach the log in the order they were taken; the groups lock is released
    /// before anything is written.
    pub fn persist_memberships(&self, topics: &TopicManager) {
        let dirty: Vec<_> = {
            let mut groups = self.groups.lock();
            groups
                .values_mut()
                .filter_map(|g| g.take_dirty().then(|| (g.id.clone(), g.snapshot())))
                .collect()
        };
        for (id, snap) in dirty {
            let result = self
                .offsets_topic
                .membership(topics, &id, snap.as_ref())
                .and_then(|w| persist(w, &self.offsets));
            if let Err(e) = result {
                // Membership is rebuilt by rebalancing if lost; offsets are what must not be.
                tracing::warn!(group = %id, "cannot persist group membership: {e}");
            }
        }
    }

    /// Stores commits (`None` deletes) of one group and applies them; the error is logged.
    fn write_offsets(
        &self,
        topics: &TopicManager,
        group_id: &str,
        entries: &[OffsetEntry],
        what: &str,
    ) -> Result<(), String> {
        let result = match self.offsets_topic.offsets(topics, group_id, entries) {
            Ok(Some(w)) => persist(w, &self.offsets),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::error!(group = group_id, "cannot {what}: {e}");
        }
        result
    }

    /// JoinGroup; the reply may arrive only when the rebalance completes.
    pub fn join(&self, group_id: &str, p: JoinParams) -> Reply<JoinOutcome> {
        let err = |e: ResponseError| Reply::Now(JoinOutcome::failed(e, &p.member_id));
        if group_id.is_empty() {
            return err(ResponseError::InvalidGroupId);
        }
        let session = p.session_timeout.as_millis() as i64;
        if session < self.min_session_ms || session > self.max_session_ms {
            return err(ResponseError::InvalidSessionTimeout);
        }
        let mut groups = self.groups.lock();
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, self.initial_delay));
        group.join(p, Instant::now())
    }

    /// SyncGroup.
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Reply<SyncOutcome> {
        let mut groups = self.groups.lock();
        match groups.get_mut(group_id) {
            Some(g) => g.sync(member_id, instance, generation, assignments, Instant::now()),
            None => Reply::Now(SyncOutcome::failed(ResponseError::UnknownMemberId)),
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let mut groups = self.groups.lock();
        match groups.get_mut(group_id) {
            Some(g) => g.heartbeat(member_id, instance, generation, Instant::now()),
            None => Err(ResponseError::UnknownMemberId),
        }
    }

    /// LeaveGroup for each (member id, instance id); returns one result per member.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), ResponseError>> {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group_id) else {
            return vec![Err(ResponseError::UnknownMemberId); members.len()];
        };
        let now = Instant::now();
        members
            .iter()
            .map(|(id, inst)| g.leave(id, inst.as_deref(), now))
            .collect()
    }

    /// OffsetCommit: checks membership and generation, then persists. One result for all.
    pub fn commit(
        &self,
        topics: &TopicManager,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        entries: Vec<(String, i32, Option<Committed>)>,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        {
            let mut groups = self.groups.lock();
            match groups.get_mut(group_id) {
                // A "simple" commit (no generation) is only for groups nobody is a member of.
                Some(g)
                    if generation < 0 && member_id.is_empty() && g.state != GroupState::Empty =>
                {
                    return Err(ResponseError::UnknownMemberId);
                }
                Some(_) if generation < 0 && member_id.is_empty() => {}
                Some(g) => {
                    g.check_member(member_id, instance, Some(generation))?;
                    if g.state == GroupState::CompletingRebalance {
                        return Err(ResponseError::RebalanceInProgress);
                    }
                    g.commit_touch(member_id, Instant::now());
                }
                None if generation >= 0 => return Err(ResponseError::IllegalGeneration),
                None => {}
            }
        }
        self.write_offsets(topics, group_id, &entries, "persist offsets")
            // Retriable: the client commits again rather than giving up on its offsets.
            .map_err(|_| ResponseError::CoordinatorNotAvailable)
    }

    /// Committed offset of one partition.
    pub fn committed(&self, group_id: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.offsets.lock().get(group_id, topic, partition).cloned()
    }

    /// Every committed offset of a group.
    pub fn all_committed(&self, group_id: &str) -> Vec<(String, i32, Committed)> {
        self.offsets.lock().all(group_id)
    }

    /// Groups with their protocol type and state, including groups known only by their offsets.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        let groups = self.groups.lock();
        let mut out: Vec<(String, String, &'static str)> = groups
            .values()
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                )
            })
            .collect();
        for id in self.offsets.lock().group_ids() {
            if !groups.contains_key(&id) {
                out.push((id, "consumer".into(), GroupState::Empty.name()));
            }
        }
        out.sort();
        out
    }

    /// DescribeGroups entry for one group.
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let groups = self.groups.lock();
        let Some(g) = groups.get(group_id) else {
            // A group known only by its committed offsets exists, with no members.
            let state = if self.offsets.lock().has_group(group_id) {
                GroupState::Empty.name()
            } else {
                "Dead"
            };
            return GroupDescription {
                group_id: group_id.to_string(),
                state,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m| DescribedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect();
        GroupDescription {
            group_id: group_id.to_string(),
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol,
            members,
        }
    }

    /// OffsetDelete (KIP-496): forgets committed offsets of a group that
    /// has no members. A group with members answers GROUP_SUBSCRIBED_TO_TOPIC
    /// for every partition (Brook does not decode member subscriptions, so it
    /// treats every topic as subscribed). Returns the group-level error, or
    /// one result per entry.
    pub fn delete_offsets(
        &self,
        topics: &TopicManager,
        group_id: &str,
        entries: &[(String, i32)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let active = {
            let groups = self.groups.lock();
            match groups.get(group_id) {
                Some(g) => !g.is_empty(),
                None if self.offsets.lock().has_group(group_id) => false,
                None => return Err(ResponseError::GroupIdNotFound),
            }
        };
        if active {
            return Ok(vec![
                Err(ResponseError::GroupSubscribedToTopic);
                entries.len()
            ]);
        }
        let results: Vec<Result<(), ResponseError>> = entries
            .iter()
            .map(|(t, p)| match topics.partition(t, *p) {
                Some(_) => Ok(()),
                None => Err(ResponseError::UnknownTopicOrPartition),
            })
            .collect();
        let tombstones: Vec<_> = {
            let offsets = self.offsets.lock();
            entries
                .iter()
                .zip(&results)
                .filter(|((t, p), r)| r.is_ok() && offsets.get(group_id, t, *p).is_some())
                .map(|((t, p), _)| (t.clone(), *p, None))
                .collect()
        };
        self.write_offsets(topics, group_id, &tombstones, "delete offsets")
            // Retriable: nothing was forgotten, so the client can simply ask again.
            .map(|()| results)
            .map_err(|_| ResponseError::CoordinatorNotAvailable)
    }

    /// DeleteGroups for one group: only empty groups; their offsets are tombstoned.
    pub fn delete(&self, topics: &TopicManager, group_id: &str) -> Result<(), ResponseError> {
        {
            let mut groups = self.groups.lock();
            let known_offsets = self.offsets.lock().has_group(group_id);
            match groups.get(group_id) {
                Some(g) if !g.is_empty() => return Err(ResponseError::NonEmptyGroup),
                None if !known_offsets => return Err(ResponseError::GroupIdNotFound),
                _ => {}
            }
            groups.remove(group_id);
        }
        let membership = self
            .offsets_topic
            .membership(topics, group_id, None)
            .and_then(|w| persist(w, &self.offsets));
        if let Err(e) = membership {
            tracing::warn!(group = group_id, "cannot delete group membership: {e}");
        }
        let tombstones: Vec<_> = self
            .offsets
            .lock()
            .all(group_id)
            .into_iter()
            .map(|(t, p, _)| (t, p, None))
            .collect();
        self.write_offsets(topics, group_id, &tombstones, "delete offsets")
            // Retriable: the group is gone from memory but its offsets are not yet tombstoned.
            .map_err(|_| ResponseError::CoordinatorNotAvailable)
    }

    /// Expires sessions and completes timed-out rebalances; forgets empty groups without
    /// offsets; every `offsets.retention.check.interval.ms`, expires old committed offsets.
    pub fn tick(&self, topics: &TopicManager) {
        let now = Instant::now();
        {
            let mut groups = self.groups.lock();
            for g in groups.values_mut() {
                g.tick(now);
            }
        }
        self.persist_memberships(topics);
        {
            let mut groups = self.groups.lock();
            let offsets = self.offsets.lock();
            // Dirty groups wait for their snapshot (an emptied group writes `None`).
            groups.retain(|id, g| !g.is_empty() || g.is_dirty() || offsets.has_group(id));
        }
        let due = {
            let mut last = self.last_retention_check.lock();
            let due = now.duration_since(*last) >= self.retention_check;
            if due {
                *last = now;
            }
            due
        };
        if due {
            self.expire_offsets(topics, now_ms());
        }
    }

    /// Deletes the offsets of groups that have had no members for `offsets.retention.minutes`
    /// (KIP-211), measured from when the group emptied or, for groups without members since
    /// the broker started, from their last commit.
    pub fn expire_offsets(&self, topics: &TopicManager, now_ms: i64) -> usize {
        let due: Vec<(String, Vec<OffsetEntry>)> = {
            let groups = self.groups.lock();
            let offsets = self.offsets.lock();
            offsets
                .group_ids()
                .into_iter()
                .filter_map(|id| {
                    let empty_since = match groups.get(&id) {
                        Some(g) if !g.is_empty() => return None,
                        Some(g) => g.empty_since_ms,
                        None => 0,
                    };
                    let all = offsets.all(&id);
                    let last_commit = all
                        .iter()
                        .map(|(_, _, c)| c.commit_timestamp)
                        .max()
                        .unwrap_or(0);
                    if now_ms - last_commit.max(empty_since) <= self.offsets_retention_ms {
                        return None;
                    }
                    Some((id, all.into_iter().map(|(t, p, _)| (t, p, None)).collect()))
                })
                .collect()
        };
        let mut expired = 0;
        for (id, tombstones) in due {
            if self
                .write_offsets(topics, &id, &tombstones, "expire offsets")
                .is_ok()
            {
                tracing::info!(group = %id, "expired committed offsets (offsets.retention.minutes)");
                expired += 1;
            }
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// Config (no initial rebalance delay, 2 offsets partitions) and topics
    /// of a broker in `dir`.
    fn no_delay_broker(dir: &std::path::Path) -> (Arc<BrokerConfig>, TopicManager) {
        let mut o = BTreeMap::new();
        o.insert(
            "group.initial.rebalance.delay.ms".to_string(),
            "0".to_string(),
        );
        o.insert("offsets.topic.num.partitions".to_string(), "2".to_string());
        let config = Arc::new(BrokerConfig::from_overrides(o).unwrap());
        let topics = TopicManager::open(dir, Arc::clone(&config), true).unwrap();
        (config, topics)
    }

    /// A consumer joining with a new member id.
    fn join_params() -> JoinParams {
        JoinParams {
            member_id: String::new(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            require_known_member_id: false,
        }
    }

    #[test]
    fn stable_membership_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (config, topics) = no_delay_broker(dir.path());
        let c = Coordinator::open(&topics, &config.settings().group);
        let params = join_params();
        let Reply::Later(mut rx) = c.join("g", params) else {
            panic!("join should wait for the rebalance")
        };
        let joined = rx.try_recv().unwrap();
        let (member, generation) = (joined.member_id.to_string(), joined.generation_id);
        let assignment = vec![(member.clone(), Bytes::from_static(b"A"))];
        let Reply::Later(mut rx) = c.sync("g", &member, None, generation, assignment) else {
            panic!("the leader's sync completes through its waiter")
        };
        assert_eq!(rx.try_recv().unwrap().assignment.as_ref(), b"A");
        // Membership is written by the ticker (or at shutdown), off the request path.
        c.persist_memberships(&topics);

        // A restarted coordinator knows the member, its generation and its assignment.
        let c2 = Coordinator::open(&topics, &config.settings().group);
        assert_eq!(c2.heartbeat("g", &member, None, generation), Ok(()));
        match c2.sync("g", &member, None, generation, vec![]) {
            Reply::Now(r) => assert_eq!(r.assignment.as_ref(), b"A"),
            Reply::Later(_) => panic!("a Stable group answers SyncGroup at once"),
        }
        // Once the group empties, a restart does not bring the member back.
        assert_eq!(c2.leave("g", &[(member.clone(), None)]), vec![Ok(())]);
        c2.tick(&topics);
        let c3 = Coordinator::open(&topics, &config.settings().group);
        assert_eq!(
            c3.heartbeat("g", &member, None, generation),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn offsets_of_empty_groups_expire_after_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = BTreeMap::new();
        o.insert("offsets.retention.minutes".to_string(), "1".to_string());
        o.insert("offsets.topic.num.partitions".to_string(), "2".to_string());
        let config = Arc::new(BrokerConfig::from_overrides(o).unwrap());
        let topics = TopicManager::open(dir.path(), Arc::clone(&config), true).unwrap();
        topics.create("t", 1, 1, BTreeMap::new(), false).unwrap();
        let c = Coordinator::open(&topics, &config.settings().group);
        let commit = |g: &str| {
            let entry = Committed {
                offset: 5,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp: now_ms(),
            };
            assert_eq!(
                c.commit(&topics, g, -1, "", None, vec![("t".into(), 0, Some(entry))]),
                Ok(())
            );
        };
        commit("old");
        assert_eq!(c.expire_offsets(&topics, now_ms() + 30_000), 0);
        assert!(c.committed("old", "t", 0).is_some());
        assert_eq!(c.expire_offsets(&topics, now_ms() + 61_000), 1);
        assert!(c.committed("old", "t", 0).is_none());
        // The deletion is durable: a restarted coordinator does not bring the offsets back.
        let again = Coordinator::open(&topics, &config.settings().group);
        assert!(again.committed("old", "t", 0).is_none());
    }

    #[test]
    fn offset_delete_forgets_offsets_of_an_empty_group_only() {
        let dir = tempfile::tempdir().unwrap();
        let (config, topics) = no_delay_broker(dir.path());
        topics.create("t", 2, 1, BTreeMap::new(), false).unwrap();
        let c = Coordinator::open(&topics, &config.settings().group);
        let entry = Committed {
            offset: 5,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: now_ms(),
        };
        let both = vec![
            ("t".into(), 0, Some(entry.clone())),
            ("t".into(), 1, Some(entry)),
        ];
        assert_eq!(c.commit(&topics, "g", -1, "", None, both), Ok(()));
        assert_eq!(
            c.delete_offsets(&topics, "nobody", &[("t".into(), 0)]),
            Err(ResponseError::GroupIdNotFound)
        );
        // Partition 0 is forgotten (durably), 1 kept; an unknown partition is named.
        assert_eq!(
            c.delete_offsets(&topics, "g", &[("t".into(), 0), ("t".into(), 7)]),
            Ok(vec![Ok(()), Err(ResponseError::UnknownTopicOrPartition)])
        );
        let again = Coordinator::open(&topics, &config.settings().group);
        assert!(again.committed("g", "t", 0).is_none());
        assert!(again.committed("g", "t", 1).is_some());

        // A group with a member keeps its offsets.
        let params = join_params();
        let _ = c.join("g", params);
        assert_eq!(
            c.delete_offsets(&topics, "g", &[("t".into(), 1)]),
            Ok(vec![Err(ResponseError::GroupSubscribedToTopic)])
        );
        assert!(c.committed("g", "t", 1).is_some());
    }
}
