import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterShareGroupOffsetsResult;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.ShareMemberDescription;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;

/**
 * The Java Admin client's share-group administration (KIP-932) for rafka's integration tests
 * (tests/integration/test_share_admin_java.py), run as a single source file against
 * kafka-clients 4.3.1:
 *
 *   java -cp 'target/share-lib/*' src/test-only/ShareGroupAdmin.java BOOTSTRAP
 *
 * It reads one command a line on stdin and answers with lines on stdout, then "done":
 *
 *   list                           "group ID TYPE STATE" for each group of type share
 *   describe GROUP                 "described GROUP STATE GROUP_EPOCH MEMBERS CLIENT_IDS"
 *   offsets GROUP [TOPIC:P ...]    "offset TOPIC PARTITION START_OFFSET LEADER_EPOCH LAG"
 *                                  (listShareGroupOffsets; every partition without TOPIC:P)
 *   alter GROUP TOPIC:P=OFFSET ... "altered TOPIC PARTITION" or "alter-failed TOPIC PARTITION
 *                                  EXCEPTION"
 *   delete-offsets GROUP TOPIC ... "deleted-offsets TOPIC" or "delete-offsets-failed TOPIC
 *                                  EXCEPTION"
 *   delete GROUP                   "deleted GROUP" or "delete-failed GROUP EXCEPTION"
 *   config GROUP KEY VALUE         incrementalAlterConfigs SET on the GROUP resource: "configured"
 *
 * A failure of the whole command is "failed EXCEPTION". It exits when stdin closes, saying
 * "closed" last.
 */
public final class ShareGroupAdmin {
    private ShareGroupAdmin() {
    }

    public static void main(String[] args) throws IOException {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (Admin admin = Admin.create(props)) {
            String line;
            while ((line = in.readLine()) != null) {
                String[] words = line.trim().split("\\s+");
                try {
                    run(admin, words);
                } catch (ExecutionException e) {
                    emit("failed " + e.getCause());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    emit("failed " + e);
                }
                emit("done");
            }
        }
        emit("closed");
    }

    private static void run(Admin admin, String[] words) throws ExecutionException, InterruptedException {
        switch (words[0]) {
            case "list" -> {
                for (GroupListing g : admin.listGroups(new ListGroupsOptions().withTypes(Set.of(GroupType.SHARE))).all().get()) {
                    emit("group " + g.groupId() + " " + g.type().map(GroupType::toString).orElse("?") + " "
                        + g.groupState().map(Object::toString).orElse("?"));
                }
            }
            case "describe" -> {
                ShareGroupDescription d = admin.describeShareGroups(List.of(words[1])).describedGroups().get(words[1]).get();
                List<String> clients = new ArrayList<>();
                for (ShareMemberDescription m : d.members()) {
                    clients.add(m.clientId());
                }
                emit("described " + d.groupId() + " " + d.groupState() + " " + d.groupEpoch() + " "
                    + d.members().size() + " " + String.join(",", clients));
            }
            case "offsets" -> {
                ListShareGroupOffsetsSpec spec = new ListShareGroupOffsetsSpec();
                if (words.length > 2) {
                    List<TopicPartition> partitions = new ArrayList<>();
                    for (int i = 2; i < words.length; i++) {
                        partitions.add(partition(words[i]));
                    }
                    spec.topicPartitions(partitions);
                }
                Map<TopicPartition, SharePartitionOffsetInfo> offsets =
                    admin.listShareGroupOffsets(Map.of(words[1], spec)).partitionsToOffsetInfo(words[1]).get();
                Map<String, SharePartitionOffsetInfo> sorted = new TreeMap<>();
                for (Map.Entry<TopicPartition, SharePartitionOffsetInfo> e : offsets.entrySet()) {
                    sorted.put(e.getKey().topic() + " " + e.getKey().partition(), e.getValue());
                }
                for (Map.Entry<String, SharePartitionOffsetInfo> e : sorted.entrySet()) {
                    SharePartitionOffsetInfo info = e.getValue();
                    if (info == null) {
                        emit("offset " + e.getKey() + " none");
                        continue;
                    }
                    emit("offset " + e.getKey() + " " + info.startOffset() + " "
                        + info.leaderEpoch().map(String::valueOf).orElse("-") + " "
                        + info.lag().map(String::valueOf).orElse("-"));
                }
            }
            case "alter" -> {
                Map<TopicPartition, Long> offsets = new HashMap<>();
                for (int i = 2; i < words.length; i++) {
                    String[] parts = words[i].split("=");
                    offsets.put(partition(parts[0]), Long.parseLong(parts[1]));
                }
                AlterShareGroupOffsetsResult result = admin.alterShareGroupOffsets(words[1], offsets);
                for (TopicPartition tp : offsets.keySet()) {
                    try {
                        result.partitionResult(tp).get();
                        emit("altered " + tp.topic() + " " + tp.partition());
                    } catch (ExecutionException e) {
                        emit("alter-failed " + tp.topic() + " " + tp.partition() + " " + e.getCause());
                    }
                }
            }
            case "delete-offsets" -> {
                Set<String> topics = new HashSet<>(List.of(words).subList(2, words.length));
                var result = admin.deleteShareGroupOffsets(words[1], topics);
                for (String topic : topics) {
                    try {
                        result.topicResult(topic).get();
                        emit("deleted-offsets " + topic);
                    } catch (ExecutionException e) {
                        emit("delete-offsets-failed " + topic + " " + e.getCause());
                    }
                }
            }
            case "delete" -> {
                try {
                    admin.deleteShareGroups(List.of(words[1])).all().get();
                    emit("deleted " + words[1]);
                } catch (ExecutionException e) {
                    emit("delete-failed " + words[1] + " " + e.getCause());
                }
            }
            case "config" -> {
                ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, words[1]);
                AlterConfigOp op = new AlterConfigOp(new ConfigEntry(words[2], words[3]), AlterConfigOp.OpType.SET);
                admin.incrementalAlterConfigs(Map.of(resource, List.of(op))).all().get();
                emit("configured");
            }
            default -> emit("failed unknown command " + words[0]);
        }
    }

    private static TopicPartition partition(String spec) {
        int colon = spec.lastIndexOf(':');
        return new TopicPartition(spec.substring(0, colon), Integer.parseInt(spec.substring(colon + 1)));
    }

    private static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
