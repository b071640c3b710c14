package dev.rafka.compat;

import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/** The consumer-group scenarios, group-rebalance and commit-resume, and the member they run. */
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

    static Set<String> union(Set<String> a, Set<String> b) {
        Set<String> out = new HashSet<>(a);
        out.addAll(b);
        return out;
    }
}
