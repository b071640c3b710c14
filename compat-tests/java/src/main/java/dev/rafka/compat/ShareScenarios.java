package dev.rafka.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.ShareMemberDescription;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * The share-group scenario (KIP-932) with KafkaShareConsumer, GA from kafka-clients 4.2; what it
 * asserts is in compat-tests/matrix/scenarios.py. Built by the kafka-4 profile only (the
 * kafka-3.9 profile leaves this file out), so Main finds it by name.
 */
final class ShareScenarios extends Clients implements Main.Scenario {
    static final int COUNT = 200;
    static final int BATCH = 10;

    ShareScenarios(String bootstrap, String prefix) {
        super(bootstrap, prefix);
    }

    @Override
    public String run() throws Exception {
        return shareGroup();
    }

    String shareGroup() throws Exception {
        String topic = prefix + "-share";
        String group = prefix + "-share";
        TopicPartition partition = new TopicPartition(topic, 0);
        Ledger ledger = new Ledger();
        try (Admin admin = admin(); KafkaProducer<String, String> producer = producer(Map.of())) {
            createTopic(admin, topic, 1, Map.of());
            ShareMember first = new ShareMember(topic, group, "first", false, ledger);
            ShareMember second = new ShareMember(topic, group, "second", true, ledger);
            List<ShareMember> members = List.of(first, second);
            try {
                first.start();
                second.start();
                // The share partition starts at its end offset when a member first fetches it:
                // once each member has a probe, both fetch and nothing produced later is missed.
                int[] probes = {0};
                await(() -> {
                    if (first.probes.get() > 0 && second.probes.get() > 0) {
                        return true;
                    }
                    producer.send(new ProducerRecord<>(topic, 0, null, "probe-" + probes[0]++));
                    producer.flush();
                    sleep(100);
                    return false;
                }, () -> "each member to receive a probe record (first " + first.probes
                    + ", second " + second.probes + " of " + probes[0] + ")", members);
                Map<String, Set<TopicPartition>> expected = Map.of(
                    first.clientId, Set.of(partition), second.clientId, Set.of(partition));
                Map<String, Set<TopicPartition>> owned = new HashMap<>();
                await(() -> {
                    owned.clear();
                    for (ShareMemberDescription m : describeShareGroup(admin, group).members()) {
                        owned.put(m.clientId(), m.assignment().topicPartitions());
                    }
                    return owned.equals(expected);
                }, () -> "ShareGroupDescribe to show both members assigned the partition (shows "
                    + owned + ")", members);
                for (int i = 0; i < COUNT; i++) {
                    producer.send(new ProducerRecord<>(topic, 0, null, "s-" + i));
                    if (i % BATCH == BATCH - 1) {
                        producer.flush(); // one batch of 10
                    }
                }
                await(() -> ledger.acceptedValues() == COUNT,
                    () -> "every record to be accepted (" + ledger.acceptedValues() + " of "
                        + COUNT + "; acknowledgement errors: first " + first.ackError
                        + ", second " + second.ackError + ")", members);
                int delivered = ledger.deliveries.get();
                Thread.sleep(1000);
                check(ledger.deliveries.get() == delivered, "delivered again after all were "
                    + "accepted: " + ledger.describeAfter(delivered));
            } finally {
                second.stop();
                first.stop();
            }
            for (ShareMember member : members) {
                if (member.error != null) {
                    throw new AssertionError("member " + member.name + " failed: "
                        + describe(member.error));
                }
            }
            ledger.verify(first, second);
        }
        return null;
    }

    private static ShareGroupDescription describeShareGroup(Admin admin, String group) {
        try {
            return admin.describeShareGroups(List.of(group)).describedGroups().get(group)
                .get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new AssertionError("describeShareGroups: " + describe(e));
        }
    }

    interface Message {
        String get();
    }

    /** waitFor with a message built when it times out, failing at once if a member failed. */
    static void await(BooleanSupplier condition, Message what, List<ShareMember> members)
        throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            for (ShareMember member : members) {
                if (member.error != null) {
                    throw new AssertionError("member " + member.name + " failed: "
                        + describe(member.error));
                }
            }
            check(System.nanoTime() < deadline,
                "timed out after " + WAIT + " waiting for " + what.get());
            Thread.sleep(20); // polling a condition other threads change; no event to await
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted");
        }
    }

    /** One delivery of a record to a member, and what the member answered. */
    record Delivery(String member, int count, AcknowledgeType answer) {
        @Override
        public String toString() {
            return member + "#" + count + ":" + answer;
        }
    }

    /** Every delivery of the scenario's records, and the acceptances the broker confirmed. */
    static final class Ledger {
        final Map<String, List<Delivery>> byValue = new ConcurrentHashMap<>();
        final Map<String, Integer> accepted = new ConcurrentHashMap<>();
        final List<String> order = Collections.synchronizedList(new ArrayList<>());
        final AtomicInteger deliveries = new AtomicInteger();

        void delivered(String value, Delivery delivery) {
            byValue.computeIfAbsent(value, v -> Collections.synchronizedList(
                new ArrayList<>())).add(delivery);
            order.add(value + " " + delivery);
            deliveries.incrementAndGet();
        }

        void confirmed(List<String> values) {
            for (String value : values) {
                accepted.merge(value, 1, Integer::sum);
            }
        }

        int acceptedValues() {
            return (int) accepted.keySet().stream().filter(v -> v.startsWith("s-")).count();
        }

        String describeAfter(int index) {
            synchronized (order) {
                return String.valueOf(order.subList(index, order.size()));
            }
        }

        void verify(ShareMember first, ShareMember second) {
            Map<String, String> wrong = new TreeMap<>();
            int released = 0;
            for (int i = 0; i < COUNT; i++) {
                String value = "s-" + i;
                List<Delivery> got = List.copyOf(byValue.getOrDefault(value, List.of()));
                int accepts = accepted.getOrDefault(value, 0);
                boolean wasReleased = !got.isEmpty()
                    && got.get(0).answer() == AcknowledgeType.RELEASE;
                boolean right;
                if (wasReleased) {
                    released++;
                    right = got.size() == 2 && got.get(0).count() == 1
                        && got.get(0).member().equals(second.name)
                        && got.get(1).count() == 2
                        && got.get(1).answer() == AcknowledgeType.ACCEPT;
                } else {
                    right = got.size() == 1 && got.get(0).count() == 1
                        && got.get(0).answer() == AcknowledgeType.ACCEPT;
                }
                if (!right || accepts != 1) {
                    wrong.put(value, got + " accepted " + accepts + "x");
                }
            }
            check(wrong.isEmpty(), "records not delivered and accepted as expected (member#"
                + "delivery count:answer): " + first(wrong, 10));
            check(released > 0, "the second member released no record (it read "
                + second.received.get() + ")");
            check(first.accepts.get() > 0 && second.accepts.get() > 0,
                "not both members accepted records: first " + first.accepts + ", second "
                    + second.accepts);
            System.err.println("share-group: first accepted " + first.accepts + ", second "
                + second.accepts + "; " + released + " released and redelivered");
        }

        private static String first(Map<String, String> map, int n) {
            return map.entrySet().stream().limit(n).toList()
                + (map.size() > n ? " and " + (map.size() - n) + " more" : "");
        }
    }

    /**
     * One share consumer polling in its own thread (explicit acknowledgement, 10 records a
     * fetch). It accepts every record, except that a releasing member releases those whose number
     * ends in 3 on their first delivery; after each poll it commits its acknowledgements with
     * commitSync (ShareAcknowledge, unless a fetch carried them first), and the
     * acknowledgement commit callback records the acceptances the broker confirmed.
     */
    final class ShareMember {
        final String name;
        final String clientId;
        final String topic;
        final boolean releases;
        final Ledger ledger;
        final Thread thread;
        final KafkaShareConsumer<String, String> consumer;
        final AtomicInteger probes = new AtomicInteger();
        final AtomicInteger received = new AtomicInteger();
        final AtomicInteger accepts = new AtomicInteger();
        volatile boolean stopping;
        volatile Throwable error;
        volatile String ackError; // the last failed acknowledgement, for the report
        /** Offsets this member accepted, by offset, until the broker confirms them. */
        final Map<Long, String> accepting = new HashMap<>();

        ShareMember(String topic, String group, String name, boolean releases, Ledger ledger) {
            this.name = name;
            this.clientId = prefix + "-" + name;
            this.topic = topic;
            this.releases = releases;
            this.ledger = ledger;
            Properties props = new Properties();
            props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            props.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
            props.put(ConsumerConfig.SHARE_ACKNOWLEDGEMENT_MODE_CONFIG, "explicit");
            props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, BATCH);
            props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
            this.consumer = new KafkaShareConsumer<>(
                props, new StringDeserializer(), new StringDeserializer());
            this.thread = new Thread(this::loop, name);
            this.thread.setDaemon(true);
        }

        void start() {
            thread.start();
        }

        private void loop() {
            try {
                consumer.setAcknowledgementCommitCallback(this::onCommit);
                consumer.subscribe(List.of(topic));
                while (!stopping) {
                    int records = 0;
                    for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(100))) {
                        records++;
                        String value = record.value();
                        int count = record.deliveryCount().map(Short::intValue).orElse(0);
                        AcknowledgeType answer = releases && count == 1 && value.startsWith("s-")
                            && value.endsWith("3") ? AcknowledgeType.RELEASE : AcknowledgeType.ACCEPT;
                        consumer.acknowledge(record, answer);
                        if (value.startsWith("probe-")) {
                            probes.incrementAndGet();
                        } else {
                            received.incrementAndGet();
                            ledger.delivered(value, new Delivery(name, count, answer));
                            if (answer == AcknowledgeType.ACCEPT) {
                                accepting.put(record.offset(), value);
                            }
                        }
                    }
                    if (records > 0) {
                        try {
                            consumer.commitSync().forEach((tp, failure) -> failure.ifPresent(
                                e -> ackError = tp + ": " + describe(e)));
                        } catch (KafkaException e) {
                            ackError = describe(e);
                        }
                    }
                }
            } catch (Throwable e) {
                error = e;
            } finally {
                consumer.close(Duration.ofSeconds(10)); // leaves the group
            }
        }

        /**
         * The broker's answer to acknowledgements (called on this member's thread, in poll,
         * commitSync or close): the offsets it accepted are confirmed.
         */
        private void onCommit(Map<TopicIdPartition, Set<Long>> offsets, Exception failure) {
            List<String> confirmed = new ArrayList<>();
            for (Set<Long> partitionOffsets : offsets.values()) {
                for (long offset : partitionOffsets) {
                    String value = accepting.remove(offset);
                    if (value != null) {
                        confirmed.add(value);
                    }
                }
            }
            if (failure != null) {
                ackError = offsets + ": " + describe(failure);
                return;
            }
            ledger.confirmed(confirmed);
            accepts.addAndGet(confirmed.size());
        }

        void stop() throws InterruptedException {
            stopping = true;
            if (thread.isAlive()) {
                thread.join(15_000);
            }
        }
    }
}
