package dev.rafka.compat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;

/** The metadata, produce-consume (one per codec) and idempotent-produce scenarios. */
final class ProduceScenarios extends Clients {
    static final int RECORDS = 100;

    ProduceScenarios(String bootstrap, String prefix) {
        super(bootstrap, prefix);
    }

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
}
