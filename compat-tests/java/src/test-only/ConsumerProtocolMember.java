import java.io.IOException;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * One member of a consumer-protocol group (KIP-848, group.protocol=consumer) for rafka's
 * integration tests (tests/integration/test_consumer_protocol_java.py), run as a single source
 * file against the jars of the kafka-4 profile:
 *
 *   java -cp 'target/kafka-4/lib/*' src/test-only/ConsumerProtocolMember.java \
 *       BOOTSTRAP GROUP TOPIC CLIENT_ID
 *
 * It consumes, prints what it consumed, then commits it synchronously (and commits what it read
 * of partitions being revoked before letting them go). It reports on stdout, one line each:
 * "assigned P,P", "revoked P,P", "lost P,P", "records V V ..." (values, in order), "commit-failed
 * MESSAGE" and finally "closed". It leaves the group and exits when its stdin closes.
 */
public final class ConsumerProtocolMember {
    private ConsumerProtocolMember() {
    }

    public static void main(String[] args) {
        String bootstrap = args[0];
        String group = args[1];
        String topic = args[2];
        String clientId = args[3];
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        AtomicBoolean stop = new AtomicBoolean();
        Map<TopicPartition, OffsetAndMetadata> pending = new HashMap<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            Thread stdin = new Thread(() -> {
                try {
                    while (System.in.read() >= 0) {
                        // only the end of the input matters
                    }
                } catch (IOException e) {
                    // closed: stop all the same
                }
                stop.set(true);
                consumer.wakeup();
            });
            stdin.setDaemon(true);
            stdin.start();
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    commit(consumer, pending);
                    pending.keySet().removeAll(partitions);
                    emit("revoked", partitions);
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    emit("assigned", partitions);
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    pending.keySet().removeAll(partitions);
                    emit("lost", partitions);
                }
            });
            while (!stop.get()) {
                ConsumerRecords<String, String> records;
                try {
                    records = consumer.poll(Duration.ofMillis(100));
                } catch (WakeupException e) {
                    break;
                }
                if (!records.isEmpty()) {
                    StringBuilder line = new StringBuilder("records");
                    for (ConsumerRecord<String, String> record : records) {
                        line.append(' ').append(record.value());
                        pending.put(new TopicPartition(record.topic(), record.partition()),
                            new OffsetAndMetadata(record.offset() + 1));
                    }
                    System.out.println(line);
                    System.out.flush();
                }
                commit(consumer, pending);
            }
        } // close(): revokes (committing what is pending) and leaves the group
        System.out.println("closed");
        System.out.flush();
    }

    private static void commit(KafkaConsumer<String, String> consumer,
                               Map<TopicPartition, OffsetAndMetadata> pending) {
        if (pending.isEmpty()) {
            return;
        }
        try {
            consumer.commitSync(pending);
            pending.clear();
        } catch (WakeupException e) {
            // stopping: committed on revocation in close()
        } catch (KafkaException e) {
            System.out.println("commit-failed " + e); // retried after the next poll
            System.out.flush();
        }
    }

    private static void emit(String what, Collection<TopicPartition> partitions) {
        String list = partitions.stream().map(tp -> Integer.toString(tp.partition()))
            .collect(Collectors.joining(","));
        System.out.println(what + " " + list);
        System.out.flush();
    }
}
