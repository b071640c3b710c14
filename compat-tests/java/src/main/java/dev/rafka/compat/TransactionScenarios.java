package dev.rafka.compat;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;

/** The transaction scenarios: transactions and txn-pipeline. */
final class TransactionScenarios extends Clients {
    TransactionScenarios(String bootstrap, String prefix) {
        super(bootstrap, prefix);
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
}
