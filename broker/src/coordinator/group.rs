//! One consumer group's membership state machine (Kafka's classic rebalance protocol).
//!
//! Empty → PreparingRebalance (members (re)join) → CompletingRebalance (the leader's
//! assignment is awaited) → Stable. The broker never computes assignments: it picks a
//! protocol every member supports, hands the leader everyone's metadata, and relays what
//! the leader sends back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::outcome::{JoinOutcome, JoinedMember, SyncOutcome};

/// Where a group is in the rebalance protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// Kafka's name for the state, as ListGroups and DescribeGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A group member.
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat: Instant,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// What a JoinGroup asks for, already decoded.
pub(crate) struct JoinParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ clients expect MEMBER_ID_REQUIRED on their first join (KIP-394).
    pub require_known_member_id: bool,
}

/// Either an answer now, or one that arrives when the rebalance completes.
pub(crate) enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// One consumer group.
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: IndexMap<String, Member>,
    pending: HashMap<String, Instant>,
    statics: HashMap<String, String>,
    rebalance_deadline: Option<Instant>,
    join_not_before: Option<Instant>,
    initial_delay: Duration,
    /// Wall-clock ms when the group last became empty, for offset retention.
    pub empty_since_ms: i64,
    /// Set when membership reached a state worth persisting (Stable, or Empty).
    dirty: bool,
}

/// A member as persisted in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MemberSnapshot {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
}

/// A Stable group's membership as persisted, so a broker restart does not force a rebalance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GroupSnapshot {
    protocol_type: Option<String>,
    protocol: Option<String>,
    generation: i32,
    leader: Option<String>,
    members: Vec<MemberSnapshot>,
}

impl Group {
    pub fn new(id: &str, initial_delay: Duration) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            rebalance_deadline: None,
            join_not_before: None,
            initial_delay,
            empty_since_ms: crate::util::now_ms(),
            dirty: false,
        }
    }

    /// Rebuilds a Stable group from its snapshot; members get a fresh session to reconnect in.
    pub fn restore(id: &str, snap: GroupSnapshot, initial_delay: Duration, now: Instant) -> Self {
        let mut g = Group::new(id, initial_delay);
        g.generation = snap.generation;
        g.protocol_type = snap.protocol_type;
        g.protocol = snap.protocol;
        g.leader = snap.leader;
        for m in snap.members {
            if let Some(inst) = &m.instance_id {
                g.statics.insert(inst.clone(), m.id.clone());
            }
            g.members.insert(
                m.id.clone(),
                Member {
                    id: m.id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: Duration::from_millis(m.session_timeout_ms),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms),
                    protocols: m
                        .protocols
                        .into_iter()
                        .map(|(n, b)| (n, Bytes::from(b)))
                        .collect(),
                    assignment: Bytes::from(m.assignment),
                    last_heartbeat: now,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        g
    }

    /// The membership to persist: `None` when there is nothing (the group is empty).
    pub fn snapshot(&self) -> Option<GroupSnapshot> {
        if self.state != GroupState::Stable {
            return None;
        }
        Some(GroupSnapshot {
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            generation: self.generation,
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberSnapshot {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as u64,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as u64,
                    protocols: m
                        .protocols
                        .iter()
                        .map(|(n, b)| (n.clone(), b.to_vec()))
                        .collect(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        })
    }

    /// Whether the membership changed since the last snapshot was taken.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Whether membership changed in a way worth persisting since the last call; clears it.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    fn new_member_id(client_id: &str) -> String {
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    /// Protocols every member supports, in the order of the first member's preference.
    fn common_protocols(&self) -> Vec<String> {
        let lists: Vec<Vec<&str>> = self
            .members
            .values()
            .map(|m| m.protocols.iter().map(|(n, _)| n.as_str()).collect())
            .collect();
        let Some(first) = lists.first() else {
            return Vec::new();
        };
        first
            .iter()
            .filter(|p| lists.iter().all(|l| l.contains(p)))
            .map(|p| p.to_string())
            .collect()
    }

    /// Each member votes for its most preferred common protocol; the most votes win.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.common_protocols();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let max = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == max).map(|(c, _)| c)
    }

    /// Handles JoinGroup.
    pub fn join(&mut self, p: JoinParams, now: Instant) -> Reply<JoinOutcome> {
        if p.protocol_type.is_empty() || p.protocols.is_empty() {
            return Reply::Now(JoinOutcome::failed(
                ResponseError::InconsistentGroupProtocol,
                &p.member_id,
            ));
        }
        if self.state != GroupState::Empty {
            let type_matches = self.protocol_type.as_deref() == Some(p.protocol_type.as_str());
            let others: Vec<&Member> = self
                .members
                .values()
                .filter(|m| m.id != p.member_id)
                .collect();
            let compatible = p.protocols.iter().any(|(name, _)| {
                others
                    .iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            });
            if !type_matches || !compatible {
                return Reply::Now(JoinOutcome::failed(
                    ResponseError::InconsistentGroupProtocol,
                    &p.member_id,
                ));
            }
        }

        if p.member_id.is_empty() {
            if let Some(instance) = p.instance_id.clone() {
                if let Some(old_id) = self.statics.get(&instance).cloned() {
                    return self.rejoin_static(old_id, p, now);
                }
                let id = Self::new_member_id(&p.client_id);
                self.statics.insert(instance, id.clone());
                return self.add_and_rebalance(id, p, now);
            }
            let id = Self::new_member_id(&p.client_id);
            if p.require_known_member_id {
                self.pending.insert(id.clone(), now + p.session_timeout);
                return Reply::Now(JoinOutcome::failed(ResponseError::MemberIdRequired, &id));
            }
            return self.add_and_rebalance(id, p, now);
        }

        let id = p.member_id.clone();
        if self.pending.remove(&id).is_some() {
            return self.add_and_rebalance(id, p, now);
        }
        if self.is_fenced(&id, p.instance_id.as_deref()) {
            return Reply::Now(JoinOutcome::failed(ResponseError::FencedInstanceId, &id));
        }
        if !self.members.contains_key(&id) {
            return Reply::Now(JoinOutcome::failed(ResponseError::UnknownMemberId, &id));
        }
        let unchanged = self.members[&id].protocols == p.protocols;
        let m = self.members.get_mut(&id).expect("checked");
        m.protocols = p.protocols;
        m.session_timeout = p.session_timeout;
        m.rebalance_timeout = p.rebalance_timeout;
        m.last_heartbeat = now;
        match self.state {
            GroupState::CompletingRebalance | GroupState::Stable if unchanged => {
                // Nothing changed: repeat the current generation's answer without a rebalance.
                let is_leader = self.leader.as_deref() == Some(id.as_str());
                if self.state == GroupState::Stable && is_leader {
                    // The leader rejoining in Stable asks for a new assignment.
                    let rx = self.install_join_waiter(&id);
                    self.prepare_rebalance(now);
                    self.maybe_complete_join(now);
                    return Reply::Later(rx);
                }
                Reply::Now(self.join_response(&id))
            }
            _ => {
                let rx = self.install_join_waiter(&id);
                self.prepare_rebalance(now);
                self.maybe_complete_join(now);
                Reply::Later(rx)
            }
        }
    }

    fn rejoin_static(&mut self, old_id: String, p: JoinParams, now: Instant) -> Reply<JoinOutcome> {
        let new_id = Self::new_member_id(&p.client_id);
        let Some(mut member) = self.members.shift_remove(&old_id) else {
            self.statics
                .remove(p.instance_id.as_deref().unwrap_or_default());
            return self.add_and_rebalance(new_id, p, now);
        };
        // The old incarnation is fenced: anything it still waits for fails.
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinOutcome::failed(
                ResponseError::FencedInstanceId,
                &old_id,
            ));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncOutcome::failed(ResponseError::FencedInstanceId));
        }
        let unchanged = member.protocols == p.protocols;
        member.id = new_id.clone();
        member.protocols = p.protocols;
        member.client_id = p.client_id;
        member.client_host = p.client_host;
        member.session_timeout = p.session_timeout;
        member.rebalance_timeout = p.rebalance_timeout;
        member.last_heartbeat = now;
        self.members.insert(new_id.clone(), member);
        if let Some(inst) = &p.instance_id {
            self.statics.insert(inst.clone(), new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if self.state == GroupState::Stable && unchanged && !was_leader {
            self.dirty = true;
            // A restarted static member gets its old assignment back without a rebalance.
            return Reply::Now(self.join_response(&new_id));
        }
        let rx = self.install_join_waiter(&new_id);
        self.prepare_rebalance(now);
        self.maybe_complete_join(now);
        Reply::Later(rx)
    }

    fn add_and_rebalance(&mut self, id: String, p: JoinParams, now: Instant) -> Reply<JoinOutcome> {
        if self.state == GroupState::Empty {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: p.instance_id,
                client_id: p.client_id,
                client_host: p.client_host,
                session_timeout: p.session_timeout,
                rebalance_timeout: p.rebalance_timeout,
                protocols: p.protocols,
                assignment: Bytes::new(),
                last_heartbeat: now,
                join_waiter: None,
                sync_waiter: None,
            },
        );
        let rx = self.install_join_waiter(&id);
        self.prepare_rebalance(now);
        self.maybe_complete_join(now);
        Reply::Later(rx)
    }

    fn install_join_waiter(&mut self, id: &str) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let m = self.members.get_mut(id).expect("member present");
        if let Some(old) = m.join_waiter.replace(tx) {
            let _ = old.send(JoinOutcome::failed(ResponseError::RebalanceInProgress, id));
        }
        rx
    }

    /// Moves to PreparingRebalance (no-op when already there).
    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome::failed(ResponseError::RebalanceInProgress));
            }
        }
        if self.state == GroupState::Empty {
            self.join_not_before = Some(now + self.initial_delay);
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60));
        self.rebalance_deadline = Some(now + timeout.max(self.initial_delay));
        self.state = GroupState::PreparingRebalance;
        tracing::debug!(group = %self.id, "preparing rebalance");
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let delay_over = self.join_not_before.is_none_or(|t| now >= t);
        let timed_out = self.rebalance_deadline.is_some_and(|t| now >= t);
        if (self.all_joined() && delay_over) || timed_out {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: Instant) {
        // Members that did not rejoin in time are out.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.pending.clear();
        self.join_not_before = None;
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.empty_since_ms = crate::util::now_ms();
            self.dirty = true;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let resp = self.join_response(&id);
            let m = self.members.get_mut(&id).expect("present");
            m.last_heartbeat = now;
            m.assignment = Bytes::new();
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(resp);
            }
        }
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(), protocol = ?self.protocol, "rebalance: members joined");
    }

    fn join_response(&self, id: &str) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(id);
        let members = if is_leader {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: protocol,
            leader: self.leader.clone().unwrap_or_default(),
            member_id: id.to_string(),
            members,
        }
    }

    /// Whether `instance` is now held by a member other than `id`.
    fn is_fenced(&self, id: &str, instance: Option<&str>) -> bool {
        instance
            .and_then(|inst| self.statics.get(inst))
            .is_some_and(|holder| holder != id)
    }

    /// Validates member id, instance id and generation as every group request must.
    pub fn check_member(
        &self,
        id: &str,
        instance: Option<&str>,
        generation: Option<i32>,
    ) -> Result<(), ResponseError> {
        // The instance mapping comes first, as Kafka's `isStaticMemberFenced`: a zombie whose
        // instance id now belongs to a newer member id must be fenced (fatal for it), not told
        // UNKNOWN_MEMBER_ID, which would make it rejoin and fence the live member instead.
        if self.is_fenced(id, instance) {
            return Err(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if let Some(g) = generation {
            if g != self.generation {
                return Err(ResponseError::IllegalGeneration);
            }
        }
        Ok(())
    }

    /// Handles SyncGroup.
    pub fn sync(
        &mut self,
        id: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Reply<SyncOutcome> {
        if let Err(e) = self.check_member(id, instance, Some(generation)) {
            return Reply::Now(SyncOutcome::failed(e));
        }
        self.touch(id, now);
        match self.state {
            GroupState::PreparingRebalance => {
                Reply::Now(SyncOutcome::failed(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => Reply::Now(self.sync_response(id)),
            GroupState::Empty => Reply::Now(SyncOutcome::failed(ResponseError::UnknownMemberId)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                self.members.get_mut(id).expect("checked").sync_waiter = Some(tx);
                if self.leader.as_deref() == Some(id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    self.dirty = true;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for mid in ids {
                        let resp = self.sync_response(&mid);
                        if let Some(w) = self
                            .members
                            .get_mut(&mid)
                            .and_then(|m| m.sync_waiter.take())
                        {
                            let _ = w.send(resp);
                        }
                    }
                    tracing::info!(group = %self.id, generation = self.generation, "rebalance: assignment distributed");
                }
                Reply::Later(rx)
            }
        }
    }

    fn sync_response(&self, id: &str) -> SyncOutcome {
        SyncOutcome {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    fn touch(&mut self, id: &str, now: Instant) {
        if let Some(m) = self.members.get_mut(id) {
            m.last_heartbeat = now;
        }
    }

    /// Handles Heartbeat.
    pub fn heartbeat(
        &mut self,
        id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        self.check_member(id, instance, None)?;
        self.touch(id, now);
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        match self.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Records liveness from an offset commit.
    pub fn commit_touch(&mut self, id: &str, now: Instant) {
        self.touch(id, now);
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(m) = self.members.shift_remove(id) {
            if let Some(inst) = &m.instance_id {
                if self.statics.get(inst).map(String::as_str) == Some(id) {
                    self.statics.remove(inst);
                }
            }
            if let Some(w) = m.join_waiter {
                let _ = w.send(JoinOutcome::failed(ResponseError::UnknownMemberId, id));
            }
            if let Some(w) = m.sync_waiter {
                let _ = w.send(SyncOutcome::failed(ResponseError::UnknownMemberId));
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// Handles one member of a LeaveGroup.
    pub fn leave(
        &mut self,
        id: &str,
        instance: Option<&str>,
        now: Instant,
    ) -> Result<(), ResponseError> {
        let id = match (id.is_empty(), instance) {
            (true, Some(inst)) => match self.statics.get(inst) {
                Some(mid) => mid.clone(),
                None => return Err(ResponseError::UnknownMemberId),
            },
            _ => id.to_string(),
        };
        if self.is_fenced(&id, instance) {
            return Err(ResponseError::FencedInstanceId);
        }
        if self.pending.remove(&id).is_some() {
            self.maybe_complete_join(now);
            return Ok(());
        }
        if !self.members.contains_key(&id) {
            return Err(ResponseError::UnknownMemberId);
        }
        tracing::info!(group = %self.id, member = %id, "member left");
        self.remove_member(&id);
        self.prepare_rebalance(now);
        self.maybe_complete_join(now);
        Ok(())
    }

    /// Expires members whose session lapsed and completes rebalances whose time is up.
    pub fn tick(&mut self, now: Instant) {
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && now.duration_since(m.last_heartbeat) > m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id);
            self.prepare_rebalance(now);
        }
        self.maybe_complete_join(now);
    }

    /// Whether the group can be forgotten (no members, nothing pending).
    pub fn is_empty(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests;
