import java.io.IOException;
import java.time.Duration;
import java.util.Properties;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * One member of a share group (KIP-932) for rafka's integration tests
 * (tests/integration/test_share_groups_java.py), run as a single source file against
 * kafka-clients 4.2+ (KafkaShareConsumer; the test fetches 4.3.1 into target/share-lib/):
 *
 *   java -cp 'target/share-lib/*' src/test-only/ShareGroupMember.java \
 *       BOOTSTRAP GROUP TOPIC CLIENT_ID MODE [RELEASE_MODULUS]
 *
 * Explicit acknowledgement mode. MODE "accept": every record is accepted, except (with
 * RELEASE_MODULUS m > 0) records whose value is a multiple of m on their first delivery, which
 * are released; acknowledgements go with the next ShareFetch, and every other poll also
 * commits them with commitSync (ShareAcknowledge). MODE "hold": the first records it gets are
 * reported and never acknowledged; it stops polling (the test kills it).
 *
 * It reports on stdout, one line each: "records V/D/A V/D/A ..." (value, delivery count,
 * A accepted, R released, H held), "acked O/K O/K ..." for acknowledgements the broker
 * confirmed (offset, A or R), "ack-failed MESSAGE" for acknowledgements the broker refused or
 * that failed, and finally "closed". It leaves the group and exits when its stdin closes.
 */
public final class ShareGroupMember {
    private ShareGroupMember() {
    }

    public static void main(String[] args) throws InterruptedException {
        String bootstrap = args[0];
        String group = args[1];
        String topic = args[2];
        String clientId = args[3];
        String mode = args[4];
        int releaseModulus = args.length > 5 ? Integer.parseInt(args[5]) : 0;
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        props.put(ConsumerConfig.SHARE_ACKNOWLEDGEMENT_MODE_CONFIG, "explicit");
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "200");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        AtomicBoolean stop = new AtomicBoolean();
        try (KafkaShareConsumer<String, String> consumer = new KafkaShareConsumer<>(props)) {
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
            Map<Long, String> lastAck = new ConcurrentHashMap<>();
            consumer.setAcknowledgementCommitCallback((offsets, exception) -> {
                if (exception != null) {
                    emit("ack-failed " + exception + " " + offsets);
                    return;
                }
                StringBuilder acked = new StringBuilder("acked");
                for (Set<Long> set : offsets.values()) {
                    for (Long offset : set) {
                        acked.append(' ').append(offset).append('/')
                            .append(lastAck.getOrDefault(offset, "?"));
                    }
                }
                emit(acked.toString());
            });
            consumer.subscribe(List.of(topic));
            boolean held = false;
            int polls = 0;
            while (!stop.get()) {
                if (held) {
                    Thread.sleep(100);  // holds its records until killed or told to stop
                    continue;
                }
                ConsumerRecords<String, String> records;
                try {
                    records = consumer.poll(Duration.ofMillis(500));
                } catch (WakeupException e) {
                    break;
                }
                if (records.isEmpty()) {
                    continue;
                }
                StringBuilder line = new StringBuilder("records");
                for (ConsumerRecord<String, String> record : records) {
                    short delivery = record.deliveryCount().orElse((short) 0);
                    String kind;
                    if (mode.equals("hold")) {
                        kind = "H";
                    } else if (releaseModulus > 0 && delivery == 1
                            && Integer.parseInt(record.value()) % releaseModulus == 0) {
                        consumer.acknowledge(record, AcknowledgeType.RELEASE);
                        kind = "R";
                        lastAck.put(record.offset(), kind);
                    } else {
                        consumer.acknowledge(record, AcknowledgeType.ACCEPT);
                        kind = "A";
                        lastAck.put(record.offset(), kind);
                    }
                    line.append(' ').append(record.value()).append('/').append(delivery)
                        .append('/').append(kind);
                }
                emit(line.toString());
                if (mode.equals("hold")) {
                    held = true;
                } else if (++polls % 2 == 0) {
                    try {
                        consumer.commitSync(Duration.ofSeconds(10));
                    } catch (WakeupException e) {
                        break;  // told to stop while committing (wakeup hits any blocking call)
                    }
                }
            }
        }
        emit("closed");
    }

    private static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
