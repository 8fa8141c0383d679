use super::*;

fn params(member: &str, instance: Option<&str>) -> JoinParams {
    JoinParams {
        member_id: member.to_string(),
        instance_id: instance.map(String::from),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"m")),
            ("roundrobin".into(), Bytes::new()),
        ],
        require_known_member_id: true,
    }
}

fn now_reply<T>(r: Reply<T>) -> T {
    match r {
        Reply::Now(t) => t,
        Reply::Later(_) => panic!("expected an immediate reply"),
    }
}

fn later<T>(r: Reply<T>) -> oneshot::Receiver<T> {
    match r {
        Reply::Later(rx) => rx,
        Reply::Now(_) => panic!("expected a deferred reply"),
    }
}

/// Two-step join (KIP-394): returns the member id and the pending reply.
fn join_new(g: &mut Group, now: Instant) -> (String, oneshot::Receiver<JoinOutcome>) {
    let first = now_reply(g.join(params("", None), now));
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    let id = first.member_id.clone();
    (id.clone(), later(g.join(params(&id, None), now)))
}

#[test]
fn two_members_join_sync_and_heartbeat() {
    let now = Instant::now();
    let mut g = Group::new("g", Duration::ZERO);
    let (a, mut ra) = join_new(&mut g, now);
    // The first member completes alone, then a second member forces a new generation.
    let ja = ra.try_recv().unwrap();
    assert_eq!(ja.generation_id, 1);
    assert_eq!(ja.leader.as_str(), a);
    let (b, mut rb) = join_new(&mut g, now);
    assert!(rb.try_recv().is_err(), "b waits until a rejoins");
    assert_eq!(
        g.heartbeat(&a, None, 1, now),
        Err(ResponseError::RebalanceInProgress)
    );
    let mut ra = later(g.join(params(&a, None), now));
    let (ja, jb) = (ra.try_recv().unwrap(), rb.try_recv().unwrap());
    assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
    assert_eq!(ja.protocol_name, "range");
    assert_eq!(ja.members.len(), 2, "the leader sees every member");
    assert!(jb.members.is_empty());
    let mut sb_rx = later(g.sync(&b, None, 2, vec![], now));
    assert!(sb_rx.try_recv().is_err(), "followers wait for the leader");
    let mut sa_rx = later(g.sync(
        &a,
        None,
        2,
        vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ],
        now,
    ));
    assert_eq!(sa_rx.try_recv().unwrap().assignment.as_ref(), b"A");
    assert_eq!(sb_rx.try_recv().unwrap().assignment.as_ref(), b"B");
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(g.heartbeat(&b, None, 2, now), Ok(()));
    assert_eq!(
        g.heartbeat(&b, None, 1, now),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        g.heartbeat("nobody", None, 2, now),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn leave_and_session_expiry_trigger_rebalances() {
    let now = Instant::now();
    let mut g = Group::new("g", Duration::ZERO);
    let (a, mut ra) = join_new(&mut g, now);
    ra.try_recv().unwrap();
    let (b, _rb) = join_new(&mut g, now);
    let mut ra = later(g.join(params(&a, None), now));
    ra.try_recv().unwrap();
    assert_eq!(g.leave(&b, None, now), Ok(()));
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let mut ra = later(g.join(params(&a, None), now));
    assert_eq!(ra.try_recv().unwrap().generation_id, 3);
    drop(later(g.sync(&a, None, 3, vec![], now)));
    // a stops heartbeating: after its session timeout the group empties.
    g.tick(now + Duration::from_secs(11));
    assert!(g.members.is_empty());
    assert_eq!(g.state, GroupState::Empty);
}

#[test]
fn rebalance_times_out_members_that_do_not_rejoin() {
    let now = Instant::now();
    let mut g = Group::new("g", Duration::ZERO);
    let (a, mut ra) = join_new(&mut g, now);
    ra.try_recv().unwrap();
    let (_b, mut rb) = join_new(&mut g, now);
    g.tick(now + Duration::from_secs(31));
    let jb = rb.try_recv().unwrap();
    assert_eq!(jb.error, None);
    assert!(!g.members.contains_key(&a));
    assert_eq!(g.members.len(), 1);
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let now = Instant::now();
    let mut g = Group::new("g", Duration::ZERO);
    let mut r1 = later(g.join(params("", Some("i1")), now));
    let leader = r1.try_recv().unwrap().member_id;
    let mut r2 = later(g.join(params("", Some("i2")), now));
    let mut r1 = later(g.join(params(&leader, Some("i1")), now));
    let (j1, j2) = (r1.try_recv().unwrap(), r2.try_recv().unwrap());
    let follower = j2.member_id.clone();
    drop(later(g.sync(
        &follower,
        Some("i2"),
        j1.generation_id,
        vec![],
        now,
    )));
    drop(later(g.sync(
        &leader,
        Some("i1"),
        j1.generation_id,
        vec![(follower.clone(), Bytes::from_static(b"P"))],
        now,
    )));
    let generation = g.generation;
    // i2 restarts: a new member id, same generation, same assignment.
    let j = now_reply(g.join(params("", Some("i2")), now));
    assert_eq!(j.error, None);
    assert_eq!(j.generation_id, generation);
    let new_id = j.member_id.clone();
    assert_ne!(new_id, follower);
    let s = now_reply(g.sync(&new_id, Some("i2"), generation, vec![], now));
    assert_eq!(s.assignment.as_ref(), b"P");
    // The old incarnation is fenced (not UNKNOWN_MEMBER_ID, which would make it rejoin and
    // fence the live member), on every request it can still send.
    let fenced = ResponseError::FencedInstanceId;
    assert_eq!(
        g.heartbeat(&follower, Some("i2"), generation, now),
        Err(fenced)
    );
    assert_eq!(
        now_reply(g.sync(&follower, Some("i2"), generation, vec![], now)).error,
        Some(fenced)
    );
    assert_eq!(
        now_reply(g.join(params(&follower, Some("i2")), now)).error,
        Some(fenced)
    );
    assert_eq!(g.leave(&follower, Some("i2"), now), Err(fenced));
    assert!(g.members.contains_key(&new_id));
    assert_eq!(
        g.heartbeat(&new_id, Some("i1"), generation, now),
        Err(fenced)
    );
}

#[test]
fn inconsistent_protocols_are_rejected() {
    let now = Instant::now();
    let mut g = Group::new("g", Duration::ZERO);
    let _ = g.join(params("", Some("i1")), now);
    let mut p = params("", None);
    p.protocols = vec![("other".into(), Bytes::new())];
    assert_eq!(
        now_reply(g.join(p, now)).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
}
