package dev.rafka.compat;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

/** The admin scenarios: admin-topics and admin-configs. */
final class AdminScenarios extends Clients {
    AdminScenarios(String bootstrap, String prefix) {
        super(bootstrap, prefix);
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

    static Set<String> listTopics(Admin admin) {
        try {
            return admin.listTopics().names().get();
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }
}
