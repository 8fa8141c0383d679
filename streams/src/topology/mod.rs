//! The compiled processor graph: nodes, stores, sub-topologies and `describe()`.

mod sizing;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::error::SerdeError;
use crate::processor::Node;
use crate::record::Val;
use crate::state::StoreSpec;

/// Builds a node instance for one task; the argument is the `application.id`.
pub(crate) type NodeFactory = Arc<dyn Fn(&str) -> Box<dyn Node> + Send + Sync>;
/// Deserialises a source record's key and value.
pub(crate) type DeserFn =
    Arc<dyn Fn(Option<&[u8]>, Option<&[u8]>) -> Result<(Val, Val), SerdeError> + Send + Sync>;
/// Extracts event time from a deserialised record and its Kafka timestamp.
pub(crate) type TsFn = Arc<dyn Fn(&Val, &Val, i64) -> i64 + Send + Sync>;

/// A topic named by the user or owned by the application (prefixed by `application.id`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TopicRef {
    User(String),
    /// `<application.id>-<name>`, e.g. `app-KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition`.
    Internal(String),
}

impl TopicRef {
    pub fn resolve(&self, app_id: &str) -> String {
        match self {
            TopicRef::User(t) => t.clone(),
            TopicRef::Internal(n) => format!("{app_id}-{n}"),
        }
    }
    fn shown(&self) -> String {
        match self {
            TopicRef::User(t) => t.clone(),
            TopicRef::Internal(n) => n.clone(),
        }
    }
}

pub(crate) enum NodeKind {
    Source {
        topics: Vec<TopicRef>,
        deser: DeserFn,
        timestamps: Option<TsFn>,
    },
    Processor,
    Sink {
        topic: TopicRef,
    },
}

pub(crate) struct NodeDef {
    pub name: String,
    pub kind: NodeKind,
    pub factory: NodeFactory,
    pub children: Vec<usize>,
    pub parents: Vec<usize>,
    pub stores: Vec<String>,
}

/// One connected part of the graph; it runs as one task per input partition.
#[derive(Debug, Clone)]
pub(crate) struct SubTopology {
    pub id: u32,
    pub nodes: Vec<usize>,
    pub source_topics: Vec<TopicRef>,
    pub stores: Vec<String>,
}

/// A processing graph, ready to run in [`KafkaStreams`](crate::KafkaStreams)
/// or the [`TopologyTestDriver`](crate::TopologyTestDriver).
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: BTreeMap<String, Arc<StoreSpec>>,
    /// Internal repartition topics (names without the application prefix).
    pub(crate) repartition_topics: BTreeSet<String>,
    /// Repartition topics given a partition count (`Repartitioned::with_number_of_partitions`).
    pub(crate) repartition_partitions: BTreeMap<String, i32>,
    /// Topics that must have equal partition counts: the inputs of each join.
    pub(crate) copartition_groups: Vec<BTreeSet<TopicRef>>,
    pub(crate) subtopologies: Vec<SubTopology>,
}

impl Topology {
    /// Compiles the graph; each of `copartition` lists nodes (join inputs) whose upstream
    /// source topics must be co-partitioned.
    pub(crate) fn new(
        nodes: Vec<NodeDef>,
        stores: BTreeMap<String, Arc<StoreSpec>>,
        repartition_topics: BTreeSet<String>,
        repartition_partitions: BTreeMap<String, i32>,
        copartition: &[Vec<usize>],
    ) -> Self {
        let subtopologies = split(&nodes);
        let mut copartition_groups: Vec<BTreeSet<TopicRef>> = Vec::new();
        for inputs in copartition {
            let group: BTreeSet<TopicRef> = inputs
                .iter()
                .flat_map(|&n| upstream_topics(&nodes, n))
                .collect();
            if group.len() > 1 && !copartition_groups.contains(&group) {
                copartition_groups.push(group);
            }
        }
        Topology {
            nodes,
            stores,
            repartition_topics,
            repartition_partitions,
            copartition_groups,
            subtopologies,
        }
    }

    /// A Kafka-style text description of sub-topologies, nodes and their links.
    pub fn describe(&self) -> TopologyDescription<'_> {
        TopologyDescription(self)
    }

    /// Changelog topic (without application prefix) of each logged store.
    pub(crate) fn changelog_of(&self, store: &str) -> Option<String> {
        self.stores
            .get(store)
            .filter(|s| s.logged)
            .map(|_| format!("{store}-changelog"))
    }

    /// Every source topic, resolved.
    pub(crate) fn all_source_topics(&self, app_id: &str) -> Vec<String> {
        let mut t: Vec<String> = self
            .subtopologies
            .iter()
            .flat_map(|s| s.source_topics.iter().map(|t| t.resolve(app_id)))
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// The sub-topology writing to an internal topic (for partition counts).
    pub(crate) fn writers_of(&self, topic: &TopicRef) -> Vec<u32> {
        self.subtopologies
            .iter()
            .filter(|s| {
                s.nodes.iter().any(|&n| match &self.nodes[n].kind {
                    NodeKind::Sink { topic: t } => t == topic,
                    _ => false,
                })
            })
            .map(|s| s.id)
            .collect()
    }
}

/// The topics of the source nodes upstream of `node` (itself included).
fn upstream_topics(nodes: &[NodeDef], node: usize) -> BTreeSet<TopicRef> {
    let mut topics = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        if !seen.insert(n) {
            continue;
        }
        if let NodeKind::Source { topics: t, .. } = &nodes[n].kind {
            topics.extend(t.iter().cloned());
        }
        todo.extend(nodes[n].parents.iter().copied());
    }
    topics
}

/// Connected components over parent/child links and shared stores, numbered
/// in order of their first node (sources come first, like Kafka's numbering).
fn split(nodes: &[NodeDef]) -> Vec<SubTopology> {
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn find(p: &mut [usize], x: usize) -> usize {
        let mut r = x;
        while p[r] != r {
            r = p[r];
        }
        let mut c = x;
        while p[c] != r {
            let n = p[c];
            p[c] = r;
            c = n;
        }
        r
    }
    let union = |p: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (find(p, a), find(p, b));
        if ra != rb {
            p[ra.max(rb)] = ra.min(rb);
        }
    };
    let mut store_owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for &c in &n.children {
            union(&mut parent, i, c);
        }
        for s in &n.stores {
            match store_owner.get(s.as_str()) {
                Some(&o) => union(&mut parent, o, i),
                None => {
                    store_owner.insert(s, i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..nodes.len() {
        let r = find(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups
        .into_values()
        .enumerate()
        .map(|(id, members)| {
            let mut topics = Vec::new();
            let mut stores = BTreeSet::new();
            for &m in &members {
                if let NodeKind::Source { topics: t, .. } = &nodes[m].kind {
                    topics.extend(t.iter().cloned());
                }
                stores.extend(nodes[m].stores.iter().cloned());
            }
            SubTopology {
                id: id as u32,
                nodes: members,
                source_topics: topics,
                stores: stores.into_iter().collect(),
            }
        })
        .collect()
}

/// Printable description, like Kafka's `TopologyDescription`.
pub struct TopologyDescription<'a>(&'a Topology);

impl fmt::Display for TopologyDescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        writeln!(f, "Topologies:")?;
        for sub in &t.subtopologies {
            writeln!(f, "   Sub-topology: {}", sub.id)?;
            for &i in &sub.nodes {
                let n = &t.nodes[i];
                match &n.kind {
                    NodeKind::Source { topics, .. } => {
                        let names: Vec<String> = topics.iter().map(|t| t.shown()).collect();
                        writeln!(f, "    Source: {} (topics: [{}])", n.name, names.join(", "))?
                    }
                    NodeKind::Processor => writeln!(
                        f,
                        "    Processor: {} (stores: [{}])",
                        n.name,
                        n.stores.join(", ")
                    )?,
                    NodeKind::Sink { topic } => {
                        writeln!(f, "    Sink: {} (topic: {})", n.name, topic.shown())?
                    }
                }
                if !n.children.is_empty() {
                    let c: Vec<&str> = n
                        .children
                        .iter()
                        .map(|&c| t.nodes[c].name.as_str())
                        .collect();
                    writeln!(f, "      --> {}", c.join(", "))?;
                } else if !matches!(n.kind, NodeKind::Sink { .. }) {
                    writeln!(f, "      --> none")?;
                }
                if !n.parents.is_empty() {
                    let p: Vec<&str> = n
                        .parents
                        .iter()
                        .map(|&c| t.nodes[c].name.as_str())
                        .collect();
                    writeln!(f, "      <-- {}", p.join(", "))?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
