package dev.rafka.tc;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.testcontainers.kafka.KafkaContainer;
import org.testcontainers.utility.DockerImageName;

/**
 * What a Java test suite does with testcontainers' KafkaContainer, with rafka's image in place
 * of apache/kafka: start it, create a topic, produce idempotently with acks=all, consume in a
 * group with commits. Prints the container's start time and one result line; exits non-zero on
 * any difference.
 */
public final class KafkaContainerCheck {
    private static final int RECORDS = 100;

    public static void main(String[] args) throws Exception {
        DockerImageName image = DockerImageName.parse(args.length > 0 ? args[0] : "rafka:latest")
            .asCompatibleSubstituteFor("apache/kafka");
        long started = System.nanoTime();
        try (KafkaContainer kafka = new KafkaContainer(image)) {
            kafka.start();
            System.out.printf("container started in %.2f s%n", (System.nanoTime() - started) / 1e9);
            String bootstrap = kafka.getBootstrapServers();
            String topic = "testcontainers-check";
            try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
                admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get(30, TimeUnit.SECONDS);
            }
            Properties producerProps = new Properties();
            producerProps.put("bootstrap.servers", bootstrap);
            producerProps.put("acks", "all");
            producerProps.put("enable.idempotence", "true");
            try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(producerProps, new StringSerializer(), new StringSerializer())) {
                for (int i = 0; i < RECORDS; i++) {
                    producer.send(new ProducerRecord<>(topic, "key-" + i, "value-" + i));
                }
                producer.flush();
            }
            Properties consumerProps = new Properties();
            consumerProps.put("bootstrap.servers", bootstrap);
            consumerProps.put("group.id", "testcontainers-check");
            consumerProps.put("auto.offset.reset", "earliest");
            consumerProps.put("enable.auto.commit", "false");
            List<String> values = new ArrayList<>();
            try (KafkaConsumer<String, String> consumer =
                     new KafkaConsumer<>(consumerProps, new StringDeserializer(), new StringDeserializer())) {
                consumer.subscribe(List.of(topic));
                long deadline = System.currentTimeMillis() + 60_000;
                while (values.size() < RECORDS && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                        values.add(record.value());
                    }
                }
                consumer.commitSync();
            }
            List<String> expected = new ArrayList<>();
            for (int i = 0; i < RECORDS; i++) {
                expected.add("value-" + i);
            }
            List<String> sorted = new ArrayList<>(values);
            sorted.sort((a, b) -> Integer.compare(index(a), index(b)));
            if (!sorted.equals(expected)) {
                System.out.println("FAIL: consumed " + values.size() + " records: " + values);
                System.exit(1);
            }
            System.out.println("OK: produced and consumed " + RECORDS + " records through " + bootstrap);
        }
    }

    private static int index(String value) {
        return Integer.parseInt(value.substring("value-".length()));
    }
}
