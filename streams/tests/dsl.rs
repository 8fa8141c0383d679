//! Operator tests through the TopologyTestDriver: every DSL operation, window
//! type, join and the Processor API, with exact expected outputs.

use std::time::Duration;

use brook_streams::*;

fn driver(b: StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(
        b.build().unwrap(),
        StreamsConfig::new("test-app", "unused:9092"),
    )
    .unwrap()
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn stateless_operators() {
    let b = StreamsBuilder::new();
    let input = b.stream::<String, String>("in");
    input
        .filter(|_, v| !v.is_empty())
        .filter_not(|_, v| v.starts_with('#'))
        .map_values(|v| v.to_uppercase())
        .peek(|_, _| {})
        .to("upper");
    input
        .flat_map_values(|v: String| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .select_key(|_, w| w.len().to_string())
        .map(|k, v| (k, format!("{v}!")))
        .to("words");
    input
        .flat_map(|k, v| vec![(k.clone(), v.len() as i64), (k, 0)])
        .to_with("lens", Produced::with(Serdes::string(), Serdes::decimal()));
    let d = driver(b);
    let mut i = d.input_topic::<String, String>("in");
    i.pipe(s("k"), s("ab cde")).unwrap();
    i.pipe(s("k"), s("")).unwrap();
    i.pipe(s("k"), s("#x")).unwrap();
    assert_eq!(
        d.output_topic::<String, String>("upper")
            .read_values()
            .unwrap(),
        vec![s("AB CDE")]
    );
    assert_eq!(
        d.output_topic::<String, String>("words")
            .read_key_values()
            .unwrap(),
        vec![
            (s("2"), s("ab!")),
            (s("3"), s("cde!")),
            (s("0"), s("!")),
            (s("2"), s("#x!"))
        ]
    );
    let lens = d
        .output_topic_with("lens", Serdes::string(), Serdes::decimal::<i64>())
        .read_values()
        .unwrap();
    assert_eq!(lens, vec![6, 0, 0, 0, 2, 0]);
}

#[test]
fn split_merge_and_repartition() {
    let b = StreamsBuilder::new();
    let input = b.stream::<String, i64>("nums");
    let branches = input
        .split("b-")
        .branch("neg", |_, v| *v < 0)
        .branch("small", |_, v| *v < 10)
        .default_branch("big");
    assert_eq!(
        branches.keys().cloned().collect::<Vec<_>>(),
        vec!["b-big", "b-neg", "b-small"]
    );
    branches["b-neg"].to("neg");
    branches["b-small"]
        .merge(&branches["b-big"])
        .repartition()
        .to("pos");
    let topo = b.build().unwrap();
    let text = topo.describe().to_string();
    assert!(text.contains("KSTREAM-REPARTITION"), "{text}");
    assert!(text.contains("Sub-topology: 1"), "{text}");
    let d = TopologyTestDriver::new(topo, StreamsConfig::new("t", "x:1")).unwrap();
    let mut i = d.input_topic::<String, i64>("nums");
    for v in [-1, 5, 50, -7] {
        i.pipe(s("k"), v).unwrap();
    }
    assert_eq!(
        d.output_topic::<String, i64>("neg").read_values().unwrap(),
        vec![-1, -7]
    );
    assert_eq!(
        d.output_topic::<String, i64>("pos").read_values().unwrap(),
        vec![5, 50]
    );
    assert!(d
        .produced_topics()
        .iter()
        .any(|t| t.starts_with("t-KSTREAM-REPARTITION") && t.ends_with("-repartition")));
}

#[test]
fn word_count_with_group_by_repartitions_and_counts() {
    let b = StreamsBuilder::new();
    b.stream::<Option<String>, String>("text-lines")
        .flat_map_values(|l: String| {
            l.to_lowercase()
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .map_values(|c| c.map(|c| c.to_string()))
        .to("word-counts");
    let topo = b.build().unwrap();
    assert!(topo.describe().to_string().contains("counts-repartition"));
    let d = TopologyTestDriver::new(topo, StreamsConfig::new("wc", "x:1")).unwrap();
    let mut i = d.input_topic::<Option<String>, String>("text-lines");
    i.pipe(None, s("Hello world")).unwrap();
    i.pipe(None, s("hello again")).unwrap();
    let out = d
        .output_topic::<String, String>("word-counts")
        .read_key_values()
        .unwrap();
    assert_eq!(
        out,
        vec![
            (s("hello"), s("1")),
            (s("world"), s("1")),
            (s("hello"), s("2")),
            (s("again"), s("1"))
        ]
    );
    let store = d.key_value_store::<String, i64>("counts").unwrap();
    assert_eq!(store.get(&s("hello")).unwrap(), Some(2));
    assert!(d.changelog_records() >= 4);
}

#[test]
fn reduce_and_aggregate_and_cache_collapse() {
    let b = StreamsBuilder::new();
    let g = b.stream::<String, i64>("in").group_by_key();
    g.reduce(|a, b| a.max(b)).to_stream().to("max");
    g.aggregate(|| s(""), |_, v, acc| format!("{acc}{v}"))
        .to_stream()
        .to("concat");
    let d = driver(b);
    d.commit_manually();
    let mut i = d.input_topic::<String, i64>("in");
    i.pipe(s("a"), 3).unwrap();
    i.pipe(s("a"), 1).unwrap();
    i.pipe(s("b"), 7).unwrap();
    i.pipe(s("a"), 9).unwrap();
    // Caching holds updates back until commit, then sends the latest per key.
    assert!(d.output_topic::<String, Option<i64>>("max").is_empty());
    d.commit().unwrap();
    let max = d
        .output_topic::<String, Option<i64>>("max")
        .read_key_values()
        .unwrap();
    assert_eq!(max, vec![(s("a"), Some(9)), (s("b"), Some(7))]);
    let concat = d
        .output_topic::<String, Option<String>>("concat")
        .read_key_values_to_map()
        .unwrap();
    assert_eq!(concat[&s("a")], Some(s("319")));
}

#[test]
fn tables_filter_map_tombstones_and_regroup() {
    let b = StreamsBuilder::new();
    let t = b.table::<String, String>("users");
    t.filter(|_, v| v != "banned")
        .map_values(|v| v.len() as i64)
        .to("lens");
    // Count users per region; moving a user subtracts from the old region.
    t.group_by(|_, region| (region.clone(), 1i64))
        .count()
        .to("per-region");
    let d = driver(b);
    let mut i = d.input_topic_with("users", Serdes::string(), Serdes::option(Serdes::string()));
    i.pipe(s("u1"), Some(s("eu"))).unwrap();
    i.pipe(s("u2"), Some(s("eu"))).unwrap();
    i.pipe(s("u1"), Some(s("us"))).unwrap();
    i.pipe(s("u2"), None).unwrap();
    i.pipe(s("u3"), Some(s("banned"))).unwrap();
    let lens = d
        .output_topic::<String, Option<i64>>("lens")
        .read_key_values()
        .unwrap();
    assert_eq!(
        lens,
        vec![
            (s("u1"), Some(2)),
            (s("u2"), Some(2)),
            (s("u1"), Some(2)),
            (s("u2"), None)
        ]
    );
    let regions = d
        .output_topic::<String, Option<i64>>("per-region")
        .read_key_values()
        .unwrap();
    assert_eq!(
        regions,
        vec![
            (s("eu"), Some(1)),
            (s("eu"), Some(2)),
            (s("eu"), Some(1)),
            (s("us"), Some(1)),
            (s("eu"), Some(0)),
            (s("banned"), Some(1)),
        ]
    );
}

fn windowed_out(d: &TopologyTestDriver, topic: &str) -> Vec<(String, i64, i64, i64)> {
    d.output_topic::<Windowed<String>, Option<i64>>(topic)
        .read_key_values()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.key, k.window.start, k.window.end, v.unwrap_or(-1)))
        .collect()
}

#[test]
fn tumbling_windows_grace_and_late_records() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("clicks")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(10),
            Duration::from_millis(5),
        ))
        .count()
        .to("counts");
    let d = driver(b);
    let mut i = d.input_topic::<String, String>("clicks");
    for ts in [0, 9, 10, 14, 3, 20, 8] {
        i.pipe_at(s("a"), s("x"), ts).unwrap();
    }
    // ts 3 arrives at stream time 14: window [0,10) closes at 10+5=15, still open.
    // ts 8 arrives at stream time 20: window [0,10) is closed and the record dropped.
    assert_eq!(
        windowed_out(&d, "counts"),
        vec![
            (s("a"), 0, 10, 1),
            (s("a"), 0, 10, 2),
            (s("a"), 10, 20, 1),
            (s("a"), 10, 20, 2),
            (s("a"), 0, 10, 3),
            (s("a"), 20, 30, 1),
        ]
    );
    assert_eq!(d.metrics().dropped_records(), 1);
}

#[test]
fn hopping_windows_and_suppress_final_results() {
    let b = StreamsBuilder::new();
    let counts = b
        .stream::<String, String>("clicks")
        .group_by_key()
        .windowed_by(
            TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
                .advance_by(Duration::from_millis(5)),
        )
        .count();
    counts.to("all");
    counts.suppress(Suppressed::UntilWindowCloses).to("final");
    let d = driver(b);
    let mut i = d.input_topic::<String, String>("clicks");
    for ts in [1, 6, 7, 12] {
        i.pipe_at(s("a"), s("x"), ts).unwrap();
    }
    // Hopping: ts 6 and 7 are in [0,10) and [5,15).
    let all = windowed_out(&d, "all");
    assert_eq!(all.len(), 7);
    // Stream time 12 closes [0,10) only.
    assert_eq!(windowed_out(&d, "final"), vec![(s("a"), 0, 10, 3)]);
    i.pipe_at(s("b"), s("x"), 30).unwrap();
    assert_eq!(
        windowed_out(&d, "final"),
        vec![(s("a"), 5, 15, 3), (s("a"), 10, 20, 1)]
    );
}

#[test]
fn session_windows_merge() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("ev")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(
            Duration::from_millis(5),
        ))
        .count()
        .to("sessions");
    let d = driver(b);
    let mut i = d.input_topic::<String, String>("ev");
    i.pipe_at(s("a"), s("x"), 0).unwrap();
    i.pipe_at(s("a"), s("x"), 10).unwrap();
    // 5 is within the gap of both sessions: they merge into [0,10] with 3 records.
    i.pipe_at(s("a"), s("x"), 5).unwrap();
    assert_eq!(
        windowed_out(&d, "sessions"),
        vec![
            (s("a"), 0, 0, 1),
            (s("a"), 10, 10, 1),
            (s("a"), 0, 0, -1),
            (s("a"), 10, 10, -1),
            (s("a"), 0, 10, 3),
        ]
    );
    // Far in the future: the old session closes (end 10 + gap 5 < 100), a late record is dropped.
    i.pipe_at(s("a"), s("x"), 100).unwrap();
    i.pipe_at(s("a"), s("x"), 12).unwrap();
    assert_eq!(windowed_out(&d, "sessions"), vec![(s("a"), 100, 100, 1)]);
    assert_eq!(d.metrics().dropped_records(), 1);
}

#[test]
fn sliding_windows() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("ev")
        .group_by_key()
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            Duration::from_millis(10),
            Duration::from_millis(10),
        ))
        .count()
        .to("sliding");
    let d = driver(b);
    let mut i = d.input_topic::<String, String>("ev");
    i.pipe_at(s("a"), s("x"), 100).unwrap();
    i.pipe_at(s("a"), s("x"), 105).unwrap();
    assert_eq!(
        windowed_out(&d, "sliding"),
        vec![
            (s("a"), 90, 100, 1),
            (s("a"), 95, 105, 2),
            (s("a"), 101, 111, 1)
        ]
    );
    // Out of order: 102 joins [95,105] and [101,111], creates [92,102] and its right window [103,113].
    i.pipe_at(s("a"), s("x"), 102).unwrap();
    let mut got = windowed_out(&d, "sliding");
    got.sort();
    assert_eq!(
        got,
        vec![
            (s("a"), 92, 102, 2),
            (s("a"), 95, 105, 3),
            (s("a"), 101, 111, 2),
            (s("a"), 103, 113, 1)
        ]
    );
    // Far ahead: 100 + 10 + grace 10 < 200, so a record at 100 is dropped.
    i.pipe_at(s("a"), s("x"), 200).unwrap();
    i.pipe_at(s("a"), s("x"), 100).unwrap();
    assert_eq!(windowed_out(&d, "sliding"), vec![(s("a"), 190, 200, 1)]);
    assert_eq!(d.metrics().dropped_records(), 1);
}

#[test]
fn stream_stream_joins_with_null_sides_after_window_closes() {
    let b = StreamsBuilder::new();
    let l = b.stream::<String, String>("left");
    let r = b.stream::<String, String>("right");
    let w = JoinWindows::of_time_difference_without_grace(Duration::from_millis(10));
    l.join(&r, |a, b| format!("{a}+{b}"), w).to("inner");
    l.left_join(
        &r,
        |a, b: Option<String>| format!("{a}+{}", b.unwrap_or(s("null"))),
        w,
    )
    .to("leftj");
    l.outer_join(
        &r,
        |a: Option<String>, b: Option<String>| {
            format!("{}+{}", a.unwrap_or(s("null")), b.unwrap_or(s("null")))
        },
        w,
    )
    .to("outer");
    let d = driver(b);
    let mut li = d.input_topic::<String, String>("left");
    let mut ri = d.input_topic::<String, String>("right");
    li.pipe_at(s("k"), s("a"), 0).unwrap();
    ri.pipe_at(s("k"), s("b"), 5).unwrap();
    li.pipe_at(s("x"), s("lonely"), 6).unwrap();
    ri.pipe_at(s("y"), s("alone"), 7).unwrap();
    assert_eq!(
        d.output_topic::<String, String>("inner")
            .read_values()
            .unwrap(),
        vec![s("a+b")]
    );
    // Unmatched records are not emitted while their window is open.
    assert_eq!(
        d.output_topic::<String, String>("leftj")
            .read_values()
            .unwrap(),
        vec![s("a+b")]
    );
    // Advance stream time past 6 + 10 and 7 + 10.
    li.pipe_at(s("z"), s("late-advance"), 30).unwrap();
    assert_eq!(
        d.output_topic::<String, String>("leftj")
            .read_values()
            .unwrap(),
        vec![s("lonely+null")]
    );
    assert_eq!(
        d.output_topic::<String, String>("outer")
            .read_values()
            .unwrap(),
        vec![s("a+b"), s("lonely+null"), s("null+alone")]
    );
    // A record older than stream time - window - grace is dropped.
    ri.pipe_at(s("k"), s("too-late"), 1).unwrap();
    assert!(d.output_topic::<String, String>("inner").is_empty());
    assert!(d.metrics().dropped_records() >= 1);
}

#[test]
fn stream_table_joins() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    let views = b.stream::<String, String>("views");
    views
        .join_table(&users, |page, name| format!("{name}@{page}"))
        .to("inner");
    views
        .left_join_table(&users, |page, name: Option<String>| {
            format!("{}@{page}", name.unwrap_or(s("?")))
        })
        .to("left");
    let d = driver(b);
    let mut u = d.input_topic_with("users", Serdes::string(), Serdes::option(Serdes::string()));
    let mut v = d.input_topic::<String, String>("views");
    v.pipe_at(s("u1"), s("/a"), 1).unwrap();
    u.pipe_at(s("u1"), Some(s("ann")), 2).unwrap();
    v.pipe_at(s("u1"), s("/b"), 3).unwrap();
    u.pipe_at(s("u1"), None, 4).unwrap();
    v.pipe_at(s("u1"), s("/c"), 5).unwrap();
    assert_eq!(
        d.output_topic::<String, String>("inner")
            .read_values()
            .unwrap(),
        vec![s("ann@/b")]
    );
    assert_eq!(
        d.output_topic::<String, String>("left")
            .read_values()
            .unwrap(),
        vec![s("?@/a"), s("ann@/b"), s("?@/c")]
    );
}

#[test]
fn table_table_joins() {
    let b = StreamsBuilder::new();
    let l = b.table::<String, String>("l");
    let r = b.table::<String, String>("r");
    l.join(&r, |a, b| format!("{a}{b}")).to("inner");
    l.left_join(&r, |a, b: Option<String>| {
        format!("{a}{}", b.unwrap_or(s("-")))
    })
    .to("left");
    l.outer_join(&r, |a: Option<String>, b: Option<String>| {
        format!("{}{}", a.unwrap_or(s("-")), b.unwrap_or(s("-")))
    })
    .to("outer");
    let d = driver(b);
    let mut li = d.input_topic_with("l", Serdes::string(), Serdes::option(Serdes::string()));
    let mut ri = d.input_topic_with("r", Serdes::string(), Serdes::option(Serdes::string()));
    li.pipe(s("k"), Some(s("a"))).unwrap();
    ri.pipe(s("k"), Some(s("b"))).unwrap();
    li.pipe(s("k"), None).unwrap();
    let out = |t| {
        d.output_topic::<String, Option<String>>(t)
            .read_values()
            .unwrap()
    };
    assert_eq!(out("inner"), vec![Some(s("ab")), None]);
    assert_eq!(out("left"), vec![Some(s("a-")), Some(s("ab")), None]);
    assert_eq!(
        out("outer"),
        vec![Some(s("a-")), Some(s("ab")), Some(s("-b"))]
    );
}

struct Dedup {
    store: Option<KeyValueStore<String, i64>>,
    seen_topics: Vec<String>,
}

impl Processor<String, String, String, String> for Dedup {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, '_, String, String>) -> Result<()> {
        self.store = Some(ctx.key_value_store("seen")?);
        ctx.schedule(100, PunctuationType::StreamTime);
        ctx.schedule(1000, PunctuationType::WallClockTime);
        Ok(())
    }
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        r: Record<String, String>,
    ) -> Result<()> {
        let meta = ctx.record_metadata().expect("metadata while processing");
        self.seen_topics
            .push(format!("{}:{}:{}", meta.topic, meta.partition, meta.offset));
        let store = self.store.as_ref().expect("init ran");
        if store.get(&r.value)?.is_none() {
            store.put(&r.value, &r.timestamp)?;
            ctx.forward(r);
        }
        Ok(())
    }
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, String>,
        _id: ScheduleId,
        ts: i64,
    ) -> Result<()> {
        let n = self.store.as_ref().expect("init ran").all()?.len();
        ctx.forward(Record::new(
            s("tick"),
            format!("{ts}:{n}:{}", self.seen_topics.len()),
            ts,
        ));
        Ok(())
    }
}

#[test]
fn processor_api_with_store_metadata_and_punctuation() {
    let b = StreamsBuilder::new();
    b.add_state_store(Stores::key_value::<String, i64>("seen"));
    b.stream::<String, String>("in")
        .process(
            "dedup",
            || Dedup {
                store: None,
                seen_topics: vec![],
            },
            &["seen"],
        )
        .to("out");
    let d = driver(b);
    let mut i = d.input_topic::<String, String>("in");
    i.pipe_at(s("k"), s("a"), 10).unwrap();
    i.pipe_at(s("k"), s("a"), 20).unwrap();
    i.pipe_at(s("k"), s("b"), 150).unwrap();
    let out = d
        .output_topic::<String, String>("out")
        .read_key_values()
        .unwrap();
    // Stream-time punctuation first fires when stream time reaches 100.
    assert_eq!(
        out,
        vec![
            (s("k"), s("a")),
            (s("k"), s("b")),
            (s("tick"), s("150:2:3"))
        ]
    );
    d.advance_wall_clock_time(999).unwrap();
    assert!(d.output_topic::<String, String>("out").is_empty());
    d.advance_wall_clock_time(1).unwrap();
    assert_eq!(
        d.output_topic::<String, String>("out")
            .read_values()
            .unwrap(),
        vec![s("1000:2:3")]
    );
    assert_eq!(
        d.key_value_store::<String, i64>("seen")
            .unwrap()
            .get(&s("a"))
            .unwrap(),
        Some(10)
    );
}

#[test]
fn error_handlers() {
    let build = || {
        let b = StreamsBuilder::new();
        b.stream::<String, i64>("in")
            .map_values(|v| if v == 13 { panic!("unlucky") } else { v })
            .to("out");
        b.build().unwrap()
    };
    // Default: fail on bad bytes, naming the topic.
    let d = TopologyTestDriver::new(build(), StreamsConfig::new("t", "x:1")).unwrap();
    let err = d
        .input_topic::<String, i64>("in")
        .pipe_raw(Some(b"k"), Some(b"abc"), 0)
        .unwrap_err();
    assert!(err.to_string().contains("in"), "{err}");
    let err = d
        .input_topic::<String, i64>("in")
        .pipe(s("k"), 13)
        .unwrap_err();
    assert!(err.to_string().contains("unlucky"), "{err}");
    // LogAndContinue: skipped and counted, later records still flow.
    let cfg = StreamsConfig::new("t", "x:1")
        .set(
            "default.deserialization.exception.handler",
            "LogAndContinue",
        )
        .set("processing.exception.handler", "LogAndContinue");
    let d = TopologyTestDriver::new(build(), cfg).unwrap();
    let mut i = d.input_topic::<String, i64>("in");
    i.pipe_raw(Some(b"k"), Some(b"abc"), 0).unwrap();
    i.pipe(s("k"), 13).unwrap();
    i.pipe(s("k"), 1).unwrap();
    assert_eq!(
        d.output_topic::<String, i64>("out").read_values().unwrap(),
        vec![1]
    );
    assert_eq!(d.metrics().dropped_records(), 2);
}

#[test]
fn build_errors_are_clear() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("a")
        .process(
            "p",
            || Dedup {
                store: None,
                seen_topics: vec![],
            },
            &["missing"],
        )
        .to("o");
    let e = b.build().err().expect("must fail");
    assert!(e.to_string().contains("missing"), "{e}");
    let b = StreamsBuilder::new();
    b.stream::<String, String>("a");
    b.stream::<String, String>("a");
    assert!(b.build().is_err());
}

/// Counters of records dropped for a null key, by processor.
fn null_key_drops(d: &TopologyTestDriver) -> Vec<(String, u64)> {
    d.metrics()
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.ends_with(":null-key"))
        .collect()
}

#[test]
fn null_keys_in_stream_aggregations_are_dropped_and_counted() {
    let b = StreamsBuilder::new();
    let events = b.stream::<Option<String>, i64>("events");
    let grouped = events.group_by_key();
    grouped.count().to_stream().to("counts");
    grouped.reduce(|a, b| a + b).to_stream().to("sums");
    grouped
        .aggregate(|| 100i64, |_, v, a| a - v)
        .to_stream()
        .to("aggs");
    grouped
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
            10,
        )))
        .count()
        .to_stream()
        .map(|k, v| (k.key, v))
        .to("windowed");
    grouped
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(
            Duration::from_millis(10),
        ))
        .count()
        .to_stream()
        .map(|k, v| (k.key, v))
        .to("sessions");
    grouped
        .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(
            Duration::from_millis(10),
        ))
        .count()
        .to_stream()
        .map(|k, v| (k.key, v))
        .to("sliding");
    // A re-keying to a null key is dropped before the repartition topic.
    events
        .group_by(|_, v| (*v > 1).then(|| v.to_string()))
        .count()
        .to_stream()
        .to("regrouped");
    let d = driver(b);
    let mut i = d.input_topic::<Option<String>, i64>("events");
    i.pipe_at(Some(s("a")), 1, 0).unwrap();
    // A null key far in the future must neither fail the task nor advance window time.
    i.pipe_at(None, 5, 1_000).unwrap();
    i.pipe_at(Some(s("a")), 2, 3).unwrap();
    let a = Some(s("a"));
    let read = |t: &str| {
        d.output_topic::<Option<String>, Option<i64>>(t)
            .read_key_values()
            .unwrap()
    };
    assert_eq!(
        read("counts"),
        vec![(a.clone(), Some(1)), (a.clone(), Some(2))]
    );
    assert_eq!(
        read("sums"),
        vec![(a.clone(), Some(1)), (a.clone(), Some(3))]
    );
    assert_eq!(
        read("aggs"),
        vec![(a.clone(), Some(99)), (a.clone(), Some(97))]
    );
    // The record at 3 still lands in the open window [0, 10).
    assert_eq!(
        read("windowed"),
        vec![(a.clone(), Some(1)), (a.clone(), Some(2))]
    );
    assert_eq!(
        read("sessions"),
        vec![
            (a.clone(), Some(1)),
            (a.clone(), None),
            (a.clone(), Some(2))
        ]
    );
    // Sliding windows emit several windows per record; the window ending at 3 holds both.
    let sliding = read("sliding");
    assert!(sliding.contains(&(a.clone(), Some(2))), "{sliding:?}");
    assert!(sliding.iter().all(|(k, _)| k == &a), "{sliding:?}");
    assert_eq!(
        read("regrouped"),
        vec![(Some(s("5")), Some(1)), (Some(s("2")), Some(1))]
    );
    let drops = null_key_drops(&d);
    // Six aggregations saw the null key once each; the re-keying dropped the value 1.
    assert_eq!(drops.iter().map(|(_, n)| n).sum::<u64>(), 7, "{drops:?}");
    assert!(
        drops.iter().any(|(k, _)| k.contains("-repartition-sink")),
        "{drops:?}"
    );
    assert_eq!(d.metrics().dropped_records(), 7);
}

#[test]
fn null_keys_in_tables_are_dropped_and_counted() {
    let b = StreamsBuilder::new();
    let table = b.table::<String, String>("users");
    table.to_stream().to("users-out");
    table
        .group_by(|_, city: &String| ((city != "nowhere").then(|| city.clone()), city.clone()))
        .count()
        .to_stream()
        .to("per-city");
    let d = driver(b);
    let mut i = d.input_topic::<String, String>("users");
    i.pipe(s("u1"), s("paris")).unwrap();
    // A null key on the table's topic: dropped, not a deserialisation error.
    i.pipe_raw(None, Some(b"rome"), 0).unwrap();
    // u1 moves to a city that groups to a null key: subtracted from paris, the add dropped.
    i.pipe(s("u1"), s("nowhere")).unwrap();
    assert_eq!(
        d.output_topic::<String, Option<String>>("users-out")
            .read_key_values()
            .unwrap(),
        vec![(s("u1"), Some(s("paris"))), (s("u1"), Some(s("nowhere")))]
    );
    assert_eq!(
        d.output_topic::<Option<String>, Option<i64>>("per-city")
            .read_key_values()
            .unwrap(),
        vec![(Some(s("paris")), Some(1)), (Some(s("paris")), Some(0))]
    );
    let drops = null_key_drops(&d);
    assert_eq!(drops.iter().map(|(_, n)| n).sum::<u64>(), 2, "{drops:?}");
    assert!(
        drops.iter().any(|(k, _)| k.contains("KTABLE-MATERIALIZE")),
        "{drops:?}"
    );
    assert!(
        drops.iter().any(|(k, _)| k.contains("KTABLE-SELECT")),
        "{drops:?}"
    );
}

#[test]
fn stream_stream_join_windows_follow_the_joins_own_time_not_the_tasks() {
    let b = StreamsBuilder::new();
    let l = b.stream::<String, String>("left");
    let r = b.stream::<String, String>("right");
    // A third input in the same sub-topology (merged with the join's output) whose records
    // run far ahead: they advance the task's stream time but not the join's.
    let other = b.stream::<String, String>("ticks");
    let w = JoinWindows::of_time_difference_without_grace(Duration::from_millis(10));
    l.left_join(
        &r,
        |a, b: Option<String>| format!("{a}+{}", b.unwrap_or(s("null"))),
        w,
    )
    .merge(&other)
    .to("out");
    let topo = b.build().unwrap();
    let text = topo.describe().to_string();
    assert!(
        !text.contains("Sub-topology: 1"),
        "one sub-topology: {text}"
    );
    let d = TopologyTestDriver::new(topo, StreamsConfig::new("j", "x:1")).unwrap();
    let (mut li, mut ri, mut ti) = (
        d.input_topic::<String, String>("left"),
        d.input_topic::<String, String>("right"),
        d.input_topic::<String, String>("ticks"),
    );
    let out = d.output_topic::<String, String>("out");
    li.pipe_at(s("k"), s("a"), 0).unwrap();
    ti.pipe_at(s("t"), s("tick"), 1_000).unwrap();
    // Within the join window of `a`: joins, although the task is at 1000.
    ri.pipe_at(s("k"), s("b"), 5).unwrap();
    li.pipe_at(s("x"), s("lonely"), 6).unwrap();
    ti.pipe_at(s("t"), s("tick2"), 2_000).unwrap();
    assert_eq!(
        out.read_values().unwrap(),
        vec![s("tick"), s("a+b"), s("tick2")],
        "no early null result, nothing dropped"
    );
    assert_eq!(d.metrics().dropped_records(), 0);
    // The join's own time passing 6 + 10 emits the unmatched record.
    ri.pipe_at(s("y"), s("late-advance"), 30).unwrap();
    assert_eq!(out.read_values().unwrap(), vec![s("lonely+null")]);
}
