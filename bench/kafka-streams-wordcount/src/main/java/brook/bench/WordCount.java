package brook.bench;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * Word count on Kafka Streams, written to match Brook's {@code examples/wordcount.rs} record for
 * record: lines (String values, keys ignored) from {@code text-lines}; each line lower-cased and
 * split at every character that is not alphanumeric (Rust's {@code char::is_alphanumeric}: Unicode
 * Alphabetic or Numeric), empty pieces dropped; grouped by word (repartition topic
 * {@code <application.id>-counts-repartition}), counted in store {@code counts}, and the running
 * count written to {@code word-counts} as key = the word (UTF-8 String), value = the count as
 * decimal text (UTF-8 String), exactly what Brook's example writes.
 *
 * <pre>
 * java -Xmx1g -jar target/kafka-streams-wordcount.jar --bootstrap-server 127.0.0.1:9092 \
 *     --application-id wc-1 [--input-topic text-lines] [--output-topic word-counts] \
 *     [--state-dir DIR] [--commit-interval-ms 1000] [--threads 1] [--config KEY=VALUE]... \
 *     [--exit-when-caught-up [--expect-lines N]] [--duration-secs S]
 * </pre>
 *
 * <p>Without {@code --exit-when-caught-up} or {@code --duration-secs} it runs until SIGTERM/Ctrl-C
 * (the benchmark script watches the group and stops it, as it does Brook's example). With
 * {@code --exit-when-caught-up} it polls the group's committed offsets (every 200 ms, one Admin
 * client) and exits once the input topic's committed offsets reached its end offsets (at least
 * {@code --expect-lines} in total when given) and every repartition topic of the application is
 * committed up to its end as well, i.e. every line was counted and its counts were written. On
 * exit it prints lines, words, elapsed time, lines/s and words/s and the JVM's CPU seconds.
 */
public final class WordCount {
    private static final AtomicLong LINES = new AtomicLong();
    private static final AtomicLong WORDS = new AtomicLong();

    /** Brook's split: lower-case, then cut at every non-alphanumeric code point, drop empties. */
    static List<String> words(String line) {
        List<String> out = new ArrayList<>();
        if (line == null) {
            return out; // Brook's String serde refuses a null value (LogAndFail); see README
        }
        String lower = line.toLowerCase(Locale.ROOT);
        int start = -1;
        for (int i = 0; i < lower.length(); ) {
            int cp = lower.codePointAt(i);
            if (isAlphanumeric(cp)) {
                if (start < 0) {
                    start = i;
                }
            } else if (start >= 0) {
                out.add(lower.substring(start, i));
                start = -1;
            }
            i += Character.charCount(cp);
        }
        if (start >= 0) {
            out.add(lower.substring(start));
        }
        return out;
    }

    /** Rust's {@code char::is_alphanumeric}: the Alphabetic property or a Numeric (N*) category. */
    static boolean isAlphanumeric(int cp) {
        if (cp < 0x80) { // ASCII fast path, same answer
            return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
        }
        if (Character.isAlphabetic(cp)) {
            return true;
        }
        int type = Character.getType(cp);
        return type == Character.DECIMAL_DIGIT_NUMBER
                || type == Character.LETTER_NUMBER
                || type == Character.OTHER_NUMBER;
    }

    static Topology topology(String input, String output) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> {
                    List<String> ws = words(line);
                    LINES.incrementAndGet();
                    WORDS.addAndGet(ws.size());
                    return ws;
                })
                .groupBy((key, word) -> word, Grouped.with(Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                        .withKeySerde(Serdes.String())
                        .withValueSerde(Serdes.Long()))
                .toStream()
                .mapValues(count -> count == null ? null : count.toString())
                .to(output, Produced.with(Serdes.String(), Serdes.String()));
        return builder.build();
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> opt = new HashMap<>();
        opt.put("bootstrap-server", "127.0.0.1:9092");
        opt.put("application-id", "wordcount");
        opt.put("input-topic", "text-lines");
        opt.put("output-topic", "word-counts");
        opt.put("commit-interval-ms", "1000"); // Brook's example's default
        opt.put("threads", "1");
        List<String> extra = new ArrayList<>();
        boolean exitWhenCaughtUp = false;
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.equals("--help") || a.equals("-h")) {
                System.out.println("usage: WordCount [--bootstrap-server B] [--application-id ID] "
                        + "[--input-topic T] [--output-topic T] [--state-dir D] [--commit-interval-ms MS] "
                        + "[--threads N] [--config K=V]... [--exit-when-caught-up] [--expect-lines N] "
                        + "[--duration-secs S]");
                return;
            } else if (a.equals("--exit-when-caught-up")) {
                exitWhenCaughtUp = true;
            } else if (a.startsWith("--") && i + 1 < argv.length) {
                String k = a.substring(2), v = argv[++i];
                if (k.equals("config")) {
                    extra.add(v);
                } else if (Set.of("bootstrap-server", "application-id", "input-topic", "output-topic",
                        "state-dir", "commit-interval-ms", "threads", "expect-lines", "duration-secs")
                        .contains(k)) {
                    opt.put(k, v);
                } else {
                    throw new IllegalArgumentException("unknown option --" + k);
                }
            } else {
                throw new IllegalArgumentException("unexpected argument " + a + " (see --help)");
            }
        }
        String bootstrap = opt.get("bootstrap-server"), appId = opt.get("application-id");
        String input = opt.get("input-topic");

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, opt.get("threads"));
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, opt.get("commit-interval-ms"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        // Brook's defaults are Kafka's: 10 MiB record cache, earliest reset, replication.factor -1.
        props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        if (opt.containsKey("state-dir")) {
            props.put(StreamsConfig.STATE_DIR_CONFIG, opt.get("state-dir"));
        }
        for (String kv : extra) {
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("--config expects KEY=VALUE, got " + kv);
            }
            props.put(kv.substring(0, eq), kv.substring(eq + 1));
        }

        Topology topology = topology(input, opt.get("output-topic"));
        System.out.println(topology.describe());
        KafkaStreams streams = new KafkaStreams(topology, props);
        long startNanos = System.nanoTime();
        AtomicLong runningNanos = new AtomicLong();
        CountDownLatch stop = new CountDownLatch(1);
        streams.setStateListener((newState, oldState) -> {
            System.out.println("state " + oldState + " -> " + newState);
            if (newState == KafkaStreams.State.RUNNING) {
                runningNanos.compareAndSet(0, System.nanoTime());
            }
            if (newState == KafkaStreams.State.ERROR || newState == KafkaStreams.State.NOT_RUNNING) {
                stop.countDown();
            }
        });
        Thread hook = new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            summary(startNanos, runningNanos.get());
        }, "shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        streams.start();

        if (exitWhenCaughtUp) {
            long expect = Long.parseLong(opt.getOrDefault("expect-lines", "0"));
            waitCaughtUp(bootstrap, appId, input, expect, stop);
        } else if (opt.containsKey("duration-secs")) {
            stop.await(Long.parseLong(opt.get("duration-secs")), TimeUnit.SECONDS);
        } else {
            stop.await();
        }
        // Normal exit: close here (so the summary comes after "caught up"), skip the hook's work.
        // After SIGTERM the hook is already closing the application and prints the summary.
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shutdownInProgress) {
            return;
        }
        streams.close(Duration.ofSeconds(30));
        summary(startNanos, runningNanos.get());
        if (streams.state() == KafkaStreams.State.ERROR) {
            System.exit(1);
        }
    }

    /** Polls the group until the input and the repartition topics are committed to their ends. */
    static void waitCaughtUp(String bootstrap, String appId, String input, long expect, CountDownLatch stop)
            throws Exception {
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            TopicDescription desc = admin.describeTopics(List.of(input)).allTopicNames().get().get(input);
            List<TopicPartition> inputTps = desc.partitions().stream()
                    .map(p -> new TopicPartition(input, p.partition())).collect(Collectors.toList());
            while (!stop.await(200, TimeUnit.MILLISECONDS)) {
                Map<TopicPartition, OffsetAndMetadata> committed =
                        admin.listConsumerGroupOffsets(appId).partitionsToOffsetAndMetadata().get();
                List<TopicPartition> watched = new ArrayList<>(inputTps);
                for (TopicPartition tp : committed.keySet()) {
                    if (tp.topic().startsWith(appId + "-") && tp.topic().endsWith("-repartition")) {
                        watched.add(tp);
                    }
                }
                Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> ends = admin.listOffsets(
                        watched.stream().collect(Collectors.toMap(tp -> tp, tp -> OffsetSpec.latest())))
                        .all().get();
                boolean done = true;
                long inputEnd = 0;
                for (TopicPartition tp : watched) {
                    long end = ends.get(tp).offset();
                    OffsetAndMetadata c = committed.get(tp);
                    if (tp.topic().equals(input)) {
                        inputEnd += end;
                    }
                    if (end > 0 && (c == null || c.offset() < end)) {
                        done = false;
                    }
                }
                if (done && inputEnd >= expect && inputEnd > 0) {
                    System.out.println("caught up: input end offsets " + inputEnd + " committed");
                    return;
                }
            }
        }
    }

    static void summary(long startNanos, long runningNanos) {
        double secs = (System.nanoTime() - startNanos) / 1e9;
        double fromRunning = runningNanos == 0 ? secs : (System.nanoTime() - runningNanos) / 1e9;
        long lines = LINES.get(), words = WORDS.get();
        double cpu = 0;
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            cpu = os.getProcessCpuTime() / 1e9;
        }
        System.out.printf(Locale.ROOT,
                "processed %d lines, %d words in %.2f s (%.2f s since RUNNING): %.0f lines/s, %.0f words/s "
                        + "(since start); JVM CPU %.2f s%n",
                lines, words, secs, fromRunning, lines / secs, words / secs, cpu);
        System.out.flush();
    }

    private WordCount() {}
}
