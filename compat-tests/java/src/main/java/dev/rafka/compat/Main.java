package dev.rafka.compat;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.security.plain.PlainLoginModule;
import org.apache.kafka.common.security.scram.ScramLoginModule;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java client's compatibility suite: each scenario listed in compat-tests/matrix/scenarios.py
 * as a small application with assertions, one JSON line per scenario on stdout. Configuration
 * comes from the environment (COMPAT_BOOTSTRAP, COMPAT_PREFIX, COMPAT_SKIP, COMPAT_ONLY) as run.py
 * sets it; the security scenarios use the secured listeners and credentials described in
 * compat-tests/matrix/security.py.
 */
public final class Main {
    static final List<String> CODECS = List.of("none", "gzip", "snappy", "lz4", "zstd");
    static final int RECORDS = 100;
    static final Duration WAIT = Duration.ofSeconds(30);
    static final long SCENARIO_TIMEOUT_S = 60;
    static final List<String> SECURED = List.of(
        "security-sasl-plain", "security-sasl-scram", "security-mtls", "security-acl");
    static final int SECURED_RECORDS = 10;

    final String bootstrap;
    final String prefix;

    Main(String bootstrap, String prefix) {
        this.bootstrap = bootstrap;
        this.prefix = prefix;
    }

    interface Scenario {
        /** Runs the scenario; returns the topic whose stored batches run.py should inspect, or null. */
        String run() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = requireEnv("COMPAT_BOOTSTRAP");
        Main suite = new Main(bootstrap, requireEnv("COMPAT_PREFIX"));
        Map<String, String> skips = parseSkips(System.getenv().getOrDefault("COMPAT_SKIP", ""));
        String only = System.getenv().getOrDefault("COMPAT_ONLY", "");
        Set<String> selected = only.isBlank() ? null : Set.of(only.split(","));

        Map<String, Scenario> scenarios = new LinkedHashMap<>();
        scenarios.put("metadata", suite::metadata);
        for (String codec : CODECS) {
            scenarios.put("produce-consume-" + codec, () -> suite.produceConsume(codec));
        }
        scenarios.put("idempotent-produce", suite::idempotentProduce);
        scenarios.put("group-rebalance", suite::groupRebalance);
        scenarios.put("commit-resume", suite::commitResume);
        scenarios.put("admin-topics", suite::adminTopics);
        scenarios.put("admin-configs", suite::adminConfigs);
        scenarios.put("transactions", suite::transactions);
        scenarios.put("txn-pipeline", suite::txnPipeline);
        scenarios.put("security-sasl-plain", suite::securitySaslPlain);
        scenarios.put("security-sasl-scram", suite::securitySaslScram);
        scenarios.put("security-mtls", suite::securityMtls);
        scenarios.put("security-acl", suite::securityAcl);
        if (System.getenv("COMPAT_SASL_SSL_BOOTSTRAP") == null) {
            // Only a broker run.py starts itself has the secured listeners (not --bootstrap).
            for (String name : SECURED) {
                skips.putIfAbsent(name,
                    "no secured listeners (run.py starts them with its own broker)");
            }
        }

        System.out.println("{\"client\": \"kafka-clients\", \"version\": "
            + json(clientVersion()) + "}");
        ExecutorService executor = Executors.newCachedThreadPool(runnable -> {
            Thread thread = new Thread(runnable);
            thread.setDaemon(true); // a scenario that hangs must not keep the JVM alive
            return thread;
        });
        for (Map.Entry<String, Scenario> entry : scenarios.entrySet()) {
            String name = entry.getKey();
            if (selected != null && !selected.contains(name)) {
                continue;
            }
            if (skips.containsKey(name)) {
                emit(name, "skip", skips.get(name), null, 0);
                continue;
            }
            long start = System.nanoTime();
            Future<String> future = executor.submit(entry.getValue()::run);
            try {
                String topic = future.get(SCENARIO_TIMEOUT_S, TimeUnit.SECONDS);
                emit(name, "pass", "", topic, start);
            } catch (TimeoutException e) {
                future.cancel(true);
                emit(name, "fail", "timed out after " + SCENARIO_TIMEOUT_S + " s", null, start);
            } catch (ExecutionException e) {
                emit(name, "fail", describe(e.getCause()), null, start);
            }
        }
        executor.shutdownNow();
        System.out.flush();
        System.exit(0);
    }

    // -- scenarios ----------------------------------------------------------------------------

    String metadata() throws Exception {
        String topic = prefix + "-metadata";
        try (Admin admin = admin()) {
            createTopic(admin, topic, 3, Map.of());
            DescribeClusterResult cluster = admin.describeCluster();
            Collection<Node> nodes = cluster.nodes().get();
            String clusterId = cluster.clusterId().get();
            check(nodes.size() == 1, "expected one broker, got " + nodes);
            Node node = nodes.iterator().next();
            check(bootstrap.equals(node.host() + ":" + node.port()),
                "broker advertised as " + node.host() + ":" + node.port() + ", not " + bootstrap);
            check(clusterId != null && !clusterId.isEmpty(), "no cluster id");
            check(cluster.controller().get() != null, "no controller");
            try (KafkaProducer<String, String> producer = producer(Map.of())) {
                List<PartitionInfo> partitions = producer.partitionsFor(topic);
                check(partitions.size() == 3, "expected 3 partitions, got " + partitions);
                for (PartitionInfo partition : partitions) {
                    check(partition.leader() != null && partition.leader().id() == node.id(),
                        "partition " + partition.partition() + " leader " + partition.leader());
                    check(partition.replicas().length == 1, "replicas of " + partition);
                }
            }
            check(admin.listTopics().names().get().contains(topic), "topic not listed");
        }
        return null;
    }

    String produceConsume(String codec) throws Exception {
        String topic = prefix + "-pc-" + codec;
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of());
        }
        List<ProducerRecord<String, String>> sent = new ArrayList<>();
        for (int i = 0; i < RECORDS; i++) {
            sent.add(sampleRecord(topic, i, codec));
        }
        Map<String, Object> config = Map.of(
            ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
            ProducerConfig.LINGER_MS_CONFIG, 20);
        try (KafkaProducer<String, String> producer = producer(config)) {
            List<Future<?>> acks = new ArrayList<>();
            for (ProducerRecord<String, String> record : sent) {
                acks.add(producer.send(record));
            }
            for (Future<?> ack : acks) {
                ack.get(30, TimeUnit.SECONDS);
            }
        }
        List<ConsumerRecord<String, String>> received = readAll(topic, 1, "read_uncommitted");
        check(received.size() == sent.size(),
            "consumed " + received.size() + " records, produced " + sent.size());
        for (int i = 0; i < sent.size(); i++) {
            ProducerRecord<String, String> want = sent.get(i);
            ConsumerRecord<String, String> got = received.get(i);
            check(eq(want.key(), got.key()), "record " + i + " key " + got.key() + " != " + want.key());
            check(want.value().equals(got.value()), "record " + i + " value differs");
            check(headerList(want.headers()).equals(headerList(got.headers())),
                "record " + i + " headers " + headerList(got.headers()) + " != "
                    + headerList(want.headers()));
        }
        return topic;
    }

    String idempotentProduce() throws Exception {
        String topic = prefix + "-idempotent";
        int count = 500;
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of());
        }
        Map<String, Object> config = Map.of(
            ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
            ProducerConfig.ACKS_CONFIG, "all",
            ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5,
            ProducerConfig.LINGER_MS_CONFIG, 2,
            ProducerConfig.BATCH_SIZE_CONFIG, 2048);
        try (KafkaProducer<String, String> producer = producer(config)) {
            List<Future<?>> acks = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                acks.add(producer.send(new ProducerRecord<>(topic, "k" + (i % 5), "idem-" + i)));
            }
            for (Future<?> ack : acks) {
                ack.get(30, TimeUnit.SECONDS);
            }
        }
        List<String> values = values(readAll(topic, 1, "read_uncommitted"));
        List<String> expected = IntStream.range(0, count).mapToObj(i -> "idem-" + i).toList();
        check(values.equals(expected), "consumed " + values.size() + " values, not idem-0..idem-"
            + (count - 1) + " exactly once in order");
        return topic;
    }

    String groupRebalance() throws Exception {
        String topic = prefix + "-group";
        String group = prefix + "-group";
        int partitions = 4;
        int count = 40;
        try (Admin admin = admin()) {
            createTopic(admin, topic, partitions, Map.of());
        }
        try (KafkaProducer<String, String> producer = producer(Map.of())) {
            for (int i = 0; i < count; i++) {
                producer.send(new ProducerRecord<>(topic, i % partitions, null, "g-" + i));
            }
            producer.flush();
        }
        Set<TopicPartition> all = IntStream.range(0, partitions)
            .mapToObj(p -> new TopicPartition(topic, p)).collect(Collectors.toSet());
        Member first = new Member(topic, group, "first");
        Member second = new Member(topic, group, "second");
        try {
            first.start();
            waitFor(() -> first.assignment.equals(all), "the first member to own all 4 partitions",
                first, second);
            second.start();
            waitFor(() -> {
                Set<TopicPartition> a = first.assignment;
                Set<TopicPartition> b = second.assignment;
                Set<TopicPartition> union = new HashSet<>(a);
                union.addAll(b);
                return !a.isEmpty() && !b.isEmpty() && union.equals(all)
                    && a.size() + b.size() == partitions;
            }, "the partitions to be split between two members", first, second);
            waitFor(() -> union(first.seen, second.seen).size() == count,
                "the two members to consume all " + count + " records", first, second);
            second.stop();
            waitFor(() -> first.assignment.equals(all),
                "the first member to own all partitions after the second left", first, second);
        } finally {
            second.stop();
            first.stop();
        }
        return null;
    }

    String commitResume() throws Exception {
        String topic = prefix + "-commit";
        String group = prefix + "-commit";
        TopicPartition partition = new TopicPartition(topic, 0);
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of());
        }
        try (KafkaProducer<String, String> producer = producer(Map.of())) {
            for (int i = 0; i < 20; i++) {
                producer.send(new ProducerRecord<>(topic, "c-" + i));
            }
            producer.flush();
        }
        long committed;
        try (KafkaConsumer<String, String> consumer = consumer(group, Map.of())) {
            consumer.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = pollUntil(consumer, 10);
            ConsumerRecord<String, String> tenth = got.get(9);
            check(tenth.value().equals("c-9"), "10th record is " + tenth.value());
            committed = tenth.offset() + 1;
            consumer.commitSync(Map.of(partition, new OffsetAndMetadata(committed, "after-c-9")));
        }
        try (KafkaConsumer<String, String> consumer = consumer(group, Map.of())) {
            OffsetAndMetadata stored = consumer.committed(Set.of(partition)).get(partition);
            check(stored != null && stored.offset() == committed,
                "committed offset " + stored + ", expected " + committed);
            check("after-c-9".equals(stored.metadata()), "commit metadata " + stored.metadata());
            consumer.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = pollUntil(consumer, 10);
            check(got.get(0).offset() == committed,
                "resumed at offset " + got.get(0).offset() + ", committed " + committed);
            List<String> expected = IntStream.range(10, 20).mapToObj(i -> "c-" + i).toList();
            check(values(got).equals(expected), "resumed with " + values(got));
            consumer.commitSync();
            long end = consumer.committed(Set.of(partition)).get(partition).offset();
            check(end == got.get(9).offset() + 1, "final committed offset " + end);
        }
        return null;
    }

    String adminTopics() throws Exception {
        String topic = prefix + "-admin";
        try (Admin admin = admin()) {
            createTopic(admin, topic, 3, Map.of());
            int brokerId = admin.describeCluster().nodes().get().iterator().next().id();
            TopicDescription description =
                admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            check(description.partitions().size() == 3, "described " + description);
            for (TopicPartitionInfo info : description.partitions()) {
                check(info.leader() != null && info.leader().id() == brokerId, "leader of " + info);
            }
            check(admin.listTopics().names().get().contains(topic), "created topic not listed");
            try {
                createTopic(admin, topic, 3, Map.of());
                throw new AssertionError("creating an existing topic succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof TopicExistsException, "re-create: " + e.getCause());
            }
            admin.deleteTopics(List.of(topic)).all().get();
            waitFor(() -> !listTopics(admin).contains(topic), "the deleted topic to leave the list");
            try {
                admin.describeTopics(List.of(topic)).allTopicNames().get();
                throw new AssertionError("describing a deleted topic succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof UnknownTopicOrPartitionException,
                    "describe deleted: " + e.getCause());
            }
        }
        return null;
    }

    String adminConfigs() throws Exception {
        String topic = prefix + "-configs";
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of("retention.ms", "3600000"));
            Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
            ConfigEntry retention = config.get("retention.ms");
            check(retention != null && "3600000".equals(retention.value()),
                "retention.ms after create: " + retention);
            check(retention.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "retention.ms source " + retention.source());
            ConfigEntry cleanup = config.get("cleanup.policy");
            check(cleanup != null && "delete".equals(cleanup.value()), "cleanup.policy " + cleanup);
            AlterConfigOp set = new AlterConfigOp(
                new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET);
            admin.incrementalAlterConfigs(Map.of(resource, List.of(set))).all().get();
            String altered = admin.describeConfigs(List.of(resource)).all().get()
                .get(resource).get("retention.ms").value();
            check("7200000".equals(altered), "retention.ms after alter: " + altered);
            String brokerId =
                String.valueOf(admin.describeCluster().nodes().get().iterator().next().id());
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, brokerId);
            Config brokerConfig = admin.describeConfigs(List.of(broker)).all().get().get(broker);
            check(brokerConfig.get("num.partitions") != null, "broker config lacks num.partitions");
            admin.deleteTopics(List.of(topic)).all().get();
        }
        return null;
    }

    String transactions() throws Exception {
        String topic = prefix + "-txn";
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of());
        }
        Map<String, Object> config = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, prefix + "-txn");
        try (KafkaProducer<String, String> producer = producer(config)) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < 5; i++) {
                producer.send(new ProducerRecord<>(topic, "committed-" + i));
            }
            producer.commitTransaction();
            producer.beginTransaction();
            for (int i = 0; i < 3; i++) {
                producer.send(new ProducerRecord<>(topic, "aborted-" + i));
            }
            producer.flush();
            producer.abortTransaction();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, "committed-5"));
            producer.commitTransaction();
        }
        List<String> committed = values(readAll(topic, 1, "read_committed"));
        List<String> expected = IntStream.range(0, 6).mapToObj(i -> "committed-" + i).toList();
        check(committed.equals(expected), "read_committed saw " + committed);
        List<String> everything = values(readAll(topic, 1, "read_uncommitted"));
        check(everything.size() == 9, "read_uncommitted saw " + everything);
        return topic;
    }

    /**
     * Every transaction's records go to all partitions at once, without waiting, right after the
     * previous commit. Under transaction version 2 (kafka-clients 4.x) that commit bumped the epoch,
     * so each partition's first batch of the new transaction restarts at sequence 0 while later
     * batches are in flight behind it; 3.9 keeps its epoch (transaction version 1).
     */
    String txnPipeline() throws Exception {
        String topic = prefix + "-txn-pipeline";
        int partitions = 8;
        int transactions = 20;
        int perPartition = 20;
        String padding = " pipelined".repeat(20); // about 4 records fill a batch of 1 KB
        try (Admin admin = admin()) {
            createTopic(admin, topic, partitions, Map.of());
        }
        Map<String, Object> config = Map.of(
            ProducerConfig.TRANSACTIONAL_ID_CONFIG, prefix + "-txn-pipeline",
            ProducerConfig.BATCH_SIZE_CONFIG, 1024,
            ProducerConfig.LINGER_MS_CONFIG, 0,
            ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5);
        List<String> sent = new ArrayList<>();
        try (KafkaProducer<String, String> producer = producer(config)) {
            producer.initTransactions();
            for (int txn = 0; txn < transactions; txn++) {
                producer.beginTransaction();
                List<Future<?>> acks = new ArrayList<>();
                for (int i = 0; i < perPartition; i++) {
                    for (int p = 0; p < partitions; p++) {
                        String value = "t" + txn + "-p" + p + "-" + i + padding;
                        sent.add(value);
                        acks.add(producer.send(new ProducerRecord<>(topic, p, null, value)));
                    }
                }
                producer.commitTransaction();
                for (Future<?> ack : acks) {
                    try {
                        ack.get();
                    } catch (ExecutionException e) {
                        throw new AssertionError("transaction " + txn + ": " + describe(e));
                    }
                }
            }
        }
        List<String> committed = values(readAll(topic, partitions, "read_committed"));
        Map<String, Long> seen = committed.stream()
            .collect(Collectors.groupingBy(v -> v, Collectors.counting()));
        for (String value : sent) {
            check(seen.getOrDefault(value, 0L) == 1, "read_committed saw " + value.split(" ")[0]
                + " " + seen.getOrDefault(value, 0L) + " times");
        }
        check(committed.size() == sent.size(),
            "read_committed saw " + committed.size() + " records, " + sent.size() + " produced");
        return topic;
    }

    String securitySaslPlain() throws Exception {
        String user = requireEnv("COMPAT_PLAIN_USER");
        securedRoundtrip("security-sasl-plain",
            sasl("PLAIN", PlainLoginModule.class, user, requireEnv("COMPAT_PLAIN_PASSWORD")));
        checkRefused(sasl("PLAIN", PlainLoginModule.class, user, "wrong"), "a wrong password");
        return null;
    }

    String securitySaslScram() throws Exception {
        String user = requireEnv("COMPAT_SCRAM_USER");
        String password = requireEnv("COMPAT_SCRAM_PASSWORD");
        securedRoundtrip("security-sasl-scram",
            sasl("SCRAM-SHA-512", ScramLoginModule.class, user, password));
        checkRefused(sasl("SCRAM-SHA-512", ScramLoginModule.class, user, "wrong"),
            "a wrong password");
        return null;
    }

    String securityMtls() throws Exception {
        Map<String, Object> tls = Map.of(
            CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, requireEnv("COMPAT_MTLS_BOOTSTRAP"),
            CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SSL",
            SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM",
            SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, requireEnv("COMPAT_CA_PEM"));
        Map<String, Object> withCertificate = new LinkedHashMap<>(tls);
        // Key and chain in one unencrypted PEM file: no ssl.key.password.
        withCertificate.put(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM");
        withCertificate.put(
            SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG, requireEnv("COMPAT_CLIENT_PEM"));
        securedRoundtrip("security-mtls", withCertificate);
        checkRefused(tls, "a client without a certificate");
        return null;
    }

    /**
     * An ACL for another principal closes the topic to the SASL_SSL PLAIN user (the broker allows
     * what no ACL names); once ACLs allow it WRITE and READ, it produces and reads back.
     */
    String securityAcl() throws Exception {
        String user = requireEnv("COMPAT_PLAIN_USER");
        Map<String, Object> security =
            sasl("PLAIN", PlainLoginModule.class, user, requireEnv("COMPAT_PLAIN_PASSWORD"));
        String topic = prefix + "-security-acl";
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of());
            // An ACL for someone else names the topic: from now on it is closed to everyone else.
            createAcls(admin, List.of(
                topicAcl(topic, "User:compat-someone-else", AclOperation.WRITE)));
            Map<String, Object> bounded = new LinkedHashMap<>(security);
            bounded.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 10000);
            bounded.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 10000);
            bounded.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000);
            try (KafkaProducer<String, String> producer = producer(bounded)) {
                Throwable error = null;
                try {
                    producer.send(new ProducerRecord<>(topic, 0, null, "refused"))
                        .get(30, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    error = e.getCause();
                } catch (TopicAuthorizationException e) {
                    error = e; // refused with the metadata, before send() returned
                }
                check(error != null, "produce without WRITE was acknowledged");
                check(error instanceof TopicAuthorizationException,
                    "produce without WRITE failed with " + describe(error)
                        + ", not TopicAuthorizationException");
            }
            createAcls(admin, List.of(
                topicAcl(topic, "User:" + user, AclOperation.WRITE),
                topicAcl(topic, "User:" + user, AclOperation.READ)));
        }
        List<String> sent = IntStream.range(0, SECURED_RECORDS)
            .mapToObj(i -> prefix + " security-acl " + i).toList();
        Map<String, Object> config = new LinkedHashMap<>(security);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> producer = producer(config)) {
            List<Future<?>> acks = new ArrayList<>();
            for (String value : sent) {
                acks.add(producer.send(new ProducerRecord<>(topic, 0, null, value)));
            }
            for (Future<?> ack : acks) {
                ack.get(30, TimeUnit.SECONDS);
            }
        }
        // Manual assignment without a group.id: no coordinator lookup, so no GROUP ACL needed.
        List<String> got = values(readAll(topic, 1, security));
        check(got.equals(sent), "read back " + got.subList(0, Math.min(3, got.size()))
            + "... instead of the " + sent.size() + " records");
        return null;
    }

    // -- group member -------------------------------------------------------------------------

    /** One consumer-group member polling in its own thread; the main thread watches it. */
    final class Member {
        final String topic;
        final Thread thread;
        final KafkaConsumer<String, String> consumer;
        final Set<String> seen = ConcurrentHashMap.newKeySet();
        volatile Set<TopicPartition> assignment = Set.of();
        volatile boolean stopping;
        volatile Throwable error;

        Member(String topic, String group, String name) {
            this.topic = topic;
            this.consumer = consumer(group, Map.of(
                ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 300,
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10000,
                ConsumerConfig.CLIENT_ID_CONFIG, prefix + "-" + name));
            this.thread = new Thread(this::loop, name);
            this.thread.setDaemon(true);
        }

        void start() {
            thread.start();
        }

        private void loop() {
            try {
                consumer.subscribe(List.of(topic));
                while (!stopping) {
                    for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(100))) {
                        seen.add(record.value());
                    }
                    assignment = Set.copyOf(consumer.assignment());
                }
            } catch (Throwable e) {
                error = e;
            } finally {
                consumer.close(Duration.ofSeconds(10)); // leaves the group
                assignment = Set.of();
            }
        }

        void stop() throws InterruptedException {
            stopping = true;
            if (thread.isAlive()) {
                thread.join(15_000);
            }
        }
    }

    // -- helpers ------------------------------------------------------------------------------

    Admin admin() {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        return Admin.create(props);
    }

    KafkaProducer<String, String> producer(Map<String, Object> extra) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30000);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30000);
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        props.putAll(extra);
        return new KafkaProducer<>(props, new StringSerializer(), new StringSerializer());
    }

    KafkaConsumer<String, String> consumer(String group, Map<String, Object> extra) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        props.putAll(extra);
        return new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer());
    }

    /** SASL_SSL on the secured listener, the broker's certificate checked against the run's CA. */
    static Map<String, Object> sasl(String mechanism, Class<?> loginModule, String user,
                                    String password) {
        return Map.of(
            CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, requireEnv("COMPAT_SASL_SSL_BOOTSTRAP"),
            CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_SSL",
            SaslConfigs.SASL_MECHANISM, mechanism,
            SaslConfigs.SASL_JAAS_CONFIG, loginModule.getName() + " required username=\""
                + user + "\" password=\"" + password + "\";",
            SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM",
            SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, requireEnv("COMPAT_CA_PEM"));
    }

    /**
     * Creates `<prefix>-<scenario>` on the plain listener, then produces SECURED_RECORDS to its
     * partition 0 and reads them back, both with `security` (which names the secured listener).
     */
    void securedRoundtrip(String scenario, Map<String, Object> security) throws Exception {
        String topic = prefix + "-" + scenario;
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of());
        }
        List<String> sent = IntStream.range(0, SECURED_RECORDS)
            .mapToObj(i -> prefix + " " + scenario + " " + i).toList();
        Map<String, Object> config = new LinkedHashMap<>(security);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> producer = producer(config)) {
            List<Future<?>> acks = new ArrayList<>();
            for (String value : sent) {
                acks.add(producer.send(new ProducerRecord<>(topic, 0, null, value)));
            }
            for (Future<?> ack : acks) {
                ack.get(30, TimeUnit.SECONDS);
            }
        }
        List<String> got = values(readAll(topic, 1, security));
        check(got.equals(sent), "read back " + got.subList(0, Math.min(3, got.size()))
            + "... instead of the " + sent.size() + " records");
    }

    /** An Admin client with `security` must fail to list topics, within a few seconds. */
    static void checkRefused(Map<String, Object> security, String who) throws Exception {
        Properties props = new Properties();
        props.putAll(security);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 5000);
        try (Admin admin = Admin.create(props)) {
            admin.listTopics().names().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            // Under TLS 1.3 a client without a certificate finishes its handshake before the broker
            // drops the connection, so it sees no authentication error, only retries until timeout.
            Throwable cause = e.getCause();
            check(cause instanceof AuthenticationException
                    || cause instanceof org.apache.kafka.common.errors.TimeoutException,
                who + " failed with " + describe(cause) + ", not as refused");
            return;
        }
        throw new AssertionError(who + " was accepted");
    }

    /** An ALLOW ACL for `principal` on the literal topic `topic`, from any host. */
    static AclBinding topicAcl(String topic, String principal, AclOperation operation) {
        return new AclBinding(
            new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL),
            new AccessControlEntry(principal, "*", operation, AclPermissionType.ALLOW));
    }

    static void createAcls(Admin admin, Collection<AclBinding> acls) throws Exception {
        admin.createAcls(acls).all().get(30, TimeUnit.SECONDS);
    }

    static void createTopic(Admin admin, String topic, int partitions, Map<String, String> configs)
        throws Exception {
        NewTopic newTopic = new NewTopic(topic, partitions, (short) 1).configs(configs);
        admin.createTopics(List.of(newTopic)).all().get(30, TimeUnit.SECONDS);
    }

    static Set<String> listTopics(Admin admin) {
        try {
            return admin.listTopics().names().get();
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    /** Every record of the topic up to its end offsets (the LSO under read_committed). */
    List<ConsumerRecord<String, String>> readAll(String topic, int partitions, String isolation) {
        return readAll(topic, partitions, Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation));
    }

    List<ConsumerRecord<String, String>> readAll(
        String topic, int partitions, Map<String, Object> config) {
        try (KafkaConsumer<String, String> consumer = consumer(null, config)) {
            List<TopicPartition> assigned = IntStream.range(0, partitions)
                .mapToObj(p -> new TopicPartition(topic, p)).toList();
            consumer.assign(assigned);
            consumer.seekToBeginning(assigned);
            Map<TopicPartition, Long> end = consumer.endOffsets(assigned);
            List<ConsumerRecord<String, String>> records = new ArrayList<>();
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (assigned.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
                check(System.nanoTime() < deadline, "did not reach the end offsets " + end
                    + " within " + WAIT + " (read " + records.size() + ")");
                consumer.poll(Duration.ofMillis(200)).forEach(records::add);
            }
            return records;
        }
    }

    static List<ConsumerRecord<String, String>> pollUntil(
        KafkaConsumer<String, String> consumer, int count) {
        List<ConsumerRecord<String, String>> records = new ArrayList<>();
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (records.size() < count) {
            check(System.nanoTime() < deadline,
                "received " + records.size() + " of " + count + " records within " + WAIT);
            consumer.poll(Duration.ofMillis(200)).forEach(records::add);
        }
        return records.subList(0, count);
    }

    static ProducerRecord<String, String> sampleRecord(String topic, int i, String codec) {
        String key = i % 10 == 9 ? null : "key-" + (i % 7);
        String value = "record " + i + " " + "lorem ipsum dolor sit amet ".repeat(8);
        RecordHeaders headers = new RecordHeaders();
        headers.add("index", String.valueOf(i).getBytes(StandardCharsets.UTF_8));
        headers.add("codec", codec.getBytes(StandardCharsets.UTF_8));
        if (i % 3 == 0) {
            headers.add("dup", "a".getBytes(StandardCharsets.UTF_8));
            headers.add("dup", "b".getBytes(StandardCharsets.UTF_8));
        }
        return new ProducerRecord<>(topic, null, key, value, headers);
    }

    static List<String> headerList(Iterable<Header> headers) {
        List<String> out = new ArrayList<>();
        for (Header header : headers) {
            out.add(header.key() + "=" + new String(header.value(), StandardCharsets.UTF_8));
        }
        return out;
    }

    static List<String> values(List<ConsumerRecord<String, String>> records) {
        return records.stream().map(ConsumerRecord::value).toList();
    }

    static Set<String> union(Set<String> a, Set<String> b) {
        Set<String> out = new HashSet<>(a);
        out.addAll(b);
        return out;
    }

    static void waitFor(BooleanSupplier condition, String what, Member... members)
        throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            for (Member member : members) {
                if (member.error != null) {
                    throw new AssertionError("member " + member.thread.getName() + " failed: "
                        + describe(member.error));
                }
            }
            check(System.nanoTime() < deadline, "timed out after " + WAIT + " waiting for " + what);
            Thread.sleep(20); // polling a condition other threads change; no event to await
        }
    }

    static boolean eq(Object a, Object b) {
        return a == null ? b == null : a.equals(b);
    }

    static void check(boolean condition, String message) {
        if (!condition) {
            throw new AssertionError(message);
        }
    }

    static String describe(Throwable error) {
        Throwable cause = error;
        while (cause instanceof ExecutionException && cause.getCause() != null) {
            cause = cause.getCause();
        }
        String message = cause.getMessage();
        return cause instanceof AssertionError ? message
            : cause.getClass().getSimpleName() + (message == null ? "" : ": " + message);
    }

    /** The kafka-clients version, from the properties file its jar carries. */
    static String clientVersion() {
        try (InputStream in =
                 KafkaProducer.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            Properties properties = new Properties();
            properties.load(in);
            return properties.getProperty("version", "unknown");
        } catch (Exception e) {
            return "unknown";
        }
    }

    static Map<String, String> parseSkips(String text) {
        Map<String, String> skips = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            int tab = line.indexOf('\t');
            if (tab > 0) {
                skips.put(line.substring(0, tab), line.substring(tab + 1));
            }
        }
        return skips;
    }

    static String requireEnv(String name) {
        String value = System.getenv(name);
        if (value == null || value.isEmpty()) {
            throw new IllegalStateException(name + " is not set (run.py sets it)");
        }
        return value;
    }

    static void emit(String scenario, String result, String reason, String topic, long startNanos) {
        double seconds = startNanos == 0 ? 0 : (System.nanoTime() - startNanos) / 1e9;
        StringBuilder line = new StringBuilder("{\"scenario\": ").append(json(scenario))
            .append(", \"result\": ").append(json(result))
            .append(", \"reason\": ").append(json(reason == null ? "" : reason))
            .append(", \"seconds\": ").append(String.format(java.util.Locale.ROOT, "%.2f", seconds));
        if (topic != null) {
            line.append(", \"topic\": ").append(json(topic));
        }
        System.out.println(line.append('}'));
        System.out.flush();
    }

    static String json(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }
}
