package dev.rafka.compat;

import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;

/**
 * The consumer-group scenarios, group-rebalance, commit-resume and consumer-protocol, and the
 * members they run.
 */
final class GroupScenarios extends Clients {
    GroupScenarios(String bootstrap, String prefix) {
        super(bootstrap, prefix);
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

    /**
     * consumer-protocol: the consumer group protocol (KIP-848) with the broker assigning; what it
     * asserts is in compat-tests/matrix/scenarios.py. The members commit after every poll.
     */
    String consumerProtocol() throws Exception {
        String topic = prefix + "-next-gen";
        String group = prefix + "-next-gen";
        int partitions = 4;
        int count = 40;
        Set<TopicPartition> all = IntStream.range(0, partitions)
            .mapToObj(p -> new TopicPartition(topic, p)).collect(Collectors.toSet());
        try (Admin admin = admin()) {
            createTopic(admin, topic, partitions, Map.of());
            produceNumbered(topic, partitions, 0, count / 2);
            Member first = new Member(topic, group, "first", true);
            Member second = new Member(topic, group, "second", true);
            Map<String, Member> byClientId =
                Map.of(prefix + "-first", first, prefix + "-second", second);
            try {
                first.start();
                waitFor(() -> first.assignment.equals(all),
                    "the first member to own all 4 partitions", first, second);
                second.start();
                waitFor(() -> first.assignment.size() == 2 && second.assignment.size() == 2
                        && union(first.assignment, second.assignment).equals(all),
                    "the partitions to be split 2/2 between the two members", first, second);
                ConsumerGroupDescription[] described = {null};
                try {
                    waitFor(() -> {
                        described[0] = describeGroup(admin, group);
                        Map<String, Set<TopicPartition>> owned = new HashMap<>();
                        for (MemberDescription m : described[0].members()) {
                            owned.put(m.clientId(), m.assignment().topicPartitions());
                        }
                        Map<String, Set<TopicPartition>> reported = new HashMap<>();
                        byClientId.forEach((id, member) -> reported.put(id, member.assignment));
                        return described[0].type() == GroupType.CONSUMER && owned.equals(reported);
                    }, "ConsumerGroupDescribe to show the split", first, second);
                } catch (AssertionError e) {
                    throw new AssertionError(e.getMessage() + "; last described: " + described[0]);
                }
                produceNumbered(topic, partitions, count / 2, count);
                Set<String> expected = IntStream.range(0, count).mapToObj(i -> "n-" + i)
                    .collect(Collectors.toSet());
                waitFor(() -> union(first.seen, second.seen).equals(expected),
                    "the two members to read all " + count + " records", first, second);
                check(!second.seen.isEmpty(),
                    "the second member read none of the records produced after the split");
                second.stop();
                waitFor(() -> first.assignment.equals(all),
                    "the first member to own all partitions after the second left", first, second);
                Map<TopicPartition, OffsetSpec> latest = all.stream()
                    .collect(Collectors.toMap(tp -> tp, tp -> OffsetSpec.latest()));
                Map<TopicPartition, Long> ends = new HashMap<>();
                admin.listOffsets(latest).all().get(30, TimeUnit.SECONDS)
                    .forEach((tp, info) -> ends.put(tp, info.offset()));
                check(ends.values().stream().mapToLong(Long::longValue).sum() == count,
                    "end offsets " + ends);
                Map<TopicPartition, Long> committed = new HashMap<>();
                try {
                    waitFor(() -> {
                        committed.clear();
                        committedOffsets(admin, group).forEach((tp, offset) -> {
                            if (offset != null) {
                                committed.put(tp, offset.offset());
                            }
                        });
                        return committed.equals(ends);
                    }, "the committed offsets to reach the end", first, second);
                } catch (AssertionError e) {
                    throw new AssertionError(e.getMessage() + ": committed " + committed + ", ends "
                        + ends + "; last failed commits: first " + first.commitError + ", second "
                        + second.commitError);
                }
            } finally {
                second.stop();
                first.stop();
            }
            if (first.error != null) {
                throw new AssertionError("member first failed: " + describe(first.error));
            }
        }
        return null;
    }

    private void produceNumbered(String topic, int partitions, int from, int to) {
        try (KafkaProducer<String, String> producer = producer(Map.of())) {
            for (int i = from; i < to; i++) {
                producer.send(new ProducerRecord<>(topic, i % partitions, null, "n-" + i));
            }
            producer.flush();
        }
    }

    private static ConsumerGroupDescription describeGroup(Admin admin, String group) {
        try {
            return admin.describeConsumerGroups(List.of(group)).describedGroups().get(group)
                .get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new AssertionError("describeConsumerGroups: " + describe(e));
        }
    }

    private static Map<TopicPartition, OffsetAndMetadata> committedOffsets(
        Admin admin, String group) {
        try {
            return admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                .get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new AssertionError("listConsumerGroupOffsets: " + describe(e));
        }
    }

    /** One consumer-group member polling in its own thread; the main thread watches it. */
    final class Member {
        final String topic;
        final Thread thread;
        final KafkaConsumer<String, String> consumer;
        final Set<String> seen = ConcurrentHashMap.newKeySet();
        volatile Set<TopicPartition> assignment = Set.of();
        volatile boolean stopping;
        volatile Throwable error;
        /** With the consumer protocol: commits what it read after every poll. */
        final boolean nextGen;
        boolean uncommitted;
        volatile Exception commitError; // the last failed commit, for the report

        Member(String topic, String group, String name) {
            this(topic, group, name, false);
        }

        /**
         * A member of a classic group, or with `nextGen` of a consumer-protocol group (KIP-848),
         * where the broker assigns and sets the session timeout and heartbeat interval: the
         * client refuses those settings (and partition.assignment.strategy) with it.
         */
        Member(String topic, String group, String name, boolean nextGen) {
            this.topic = topic;
            this.nextGen = nextGen;
            this.consumer = consumer(group, nextGen
                ? Map.of(
                    ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer",
                    ConsumerConfig.CLIENT_ID_CONFIG, prefix + "-" + name)
                : Map.of(
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
                        uncommitted = nextGen;
                    }
                    if (uncommitted) {
                        try {
                            consumer.commitSync();
                            uncommitted = false;
                        } catch (KafkaException e) {
                            commitError = e; // tried again after the next poll
                        }
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

    static <T> Set<T> union(Set<T> a, Set<T> b) {
        Set<T> out = new HashSet<>(a);
        out.addAll(b);
        return out;
    }
}
