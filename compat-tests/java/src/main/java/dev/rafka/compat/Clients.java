package dev.rafka.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.IntStream;

import dev.rafka.compat.GroupScenarios.Member;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * What the scenario groups share: the suite's broker and name prefix, the client settings,
 * topic creation, reading a topic back, waiting, and the checks.
 */
abstract class Clients {
    static final Duration WAIT = Duration.ofSeconds(30);

    final String bootstrap;
    final String prefix;

    Clients(String bootstrap, String prefix) {
        this.bootstrap = bootstrap;
        this.prefix = prefix;
    }

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

    static void createTopic(Admin admin, String topic, int partitions, Map<String, String> configs)
        throws Exception {
        NewTopic newTopic = new NewTopic(topic, partitions, (short) 1).configs(configs);
        admin.createTopics(List.of(newTopic)).all().get(30, TimeUnit.SECONDS);
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

    static List<String> values(List<ConsumerRecord<String, String>> records) {
        return records.stream().map(ConsumerRecord::value).toList();
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

    static String requireEnv(String name) {
        String value = System.getenv(name);
        if (value == null || value.isEmpty()) {
            throw new IllegalStateException(name + " is not set (run.py sets it)");
        }
        return value;
    }
}
