package dev.rafka.compat;

import static dev.rafka.compat.Clients.describe;
import static dev.rafka.compat.Clients.requireEnv;

import java.io.InputStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.apache.kafka.clients.producer.KafkaProducer;

/**
 * The Java client's compatibility suite: each scenario listed in compat-tests/matrix/scenarios.py
 * as a small application with assertions, one JSON line per scenario on stdout. Configuration
 * comes from the environment (COMPAT_BOOTSTRAP, COMPAT_PREFIX, COMPAT_SKIP, COMPAT_ONLY) as run.py
 * sets it; the security scenarios use the secured listeners and credentials described in
 * compat-tests/matrix/security.py. This class is the runner and the scenario table; the
 * scenarios are in the *Scenarios classes, what they share in Clients.
 */
public final class Main {
    static final List<String> CODECS = List.of("none", "gzip", "snappy", "lz4", "zstd");
    static final long SCENARIO_TIMEOUT_S = 60;
    static final List<String> SECURED = List.of(
        "security-sasl-plain", "security-sasl-scram", "security-mtls", "security-acl");

    private Main() {
    }

    interface Scenario {
        /** Runs the scenario; returns the topic whose stored batches run.py should inspect, or null. */
        String run() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = requireEnv("COMPAT_BOOTSTRAP");
        String prefix = requireEnv("COMPAT_PREFIX");
        ProduceScenarios produce = new ProduceScenarios(bootstrap, prefix);
        GroupScenarios groups = new GroupScenarios(bootstrap, prefix);
        AdminScenarios admin = new AdminScenarios(bootstrap, prefix);
        TransactionScenarios transactions = new TransactionScenarios(bootstrap, prefix);
        SecurityScenarios security = new SecurityScenarios(bootstrap, prefix);
        Map<String, String> skips = parseSkips(System.getenv().getOrDefault("COMPAT_SKIP", ""));
        String only = System.getenv().getOrDefault("COMPAT_ONLY", "");
        Set<String> selected = only.isBlank() ? null : Set.of(only.split(","));

        Map<String, Scenario> scenarios = new LinkedHashMap<>();
        scenarios.put("metadata", produce::metadata);
        for (String codec : CODECS) {
            scenarios.put("produce-consume-" + codec, () -> produce.produceConsume(codec));
        }
        scenarios.put("idempotent-produce", produce::idempotentProduce);
        scenarios.put("group-rebalance", groups::groupRebalance);
        scenarios.put("commit-resume", groups::commitResume);
        scenarios.put("consumer-protocol", groups::consumerProtocol);
        Scenario share = shareScenarios(bootstrap, prefix); // null: skipped below
        scenarios.put("share-group", share);
        scenarios.put("admin-topics", admin::adminTopics);
        scenarios.put("admin-configs", admin::adminConfigs);
        scenarios.put("transactions", transactions::transactions);
        scenarios.put("txn-pipeline", transactions::txnPipeline);
        scenarios.put("security-sasl-plain", security::securitySaslPlain);
        scenarios.put("security-sasl-scram", security::securitySaslScram);
        scenarios.put("security-mtls", security::securityMtls);
        scenarios.put("security-acl", security::securityAcl);
        String version = clientVersion();
        if (version.startsWith("3.")) {
            // group.protocol=consumer is early access/preview in 3.7-3.9 and GA from 4.0.
            skips.putIfAbsent("consumer-protocol",
                "kafka-clients " + version + ": consumer protocol not GA before 4.0");
        }
        if (share == null) {
            // KafkaShareConsumer: unfinished in 3.9, early access in 4.0, preview in 4.1, GA in 4.2.
            skips.putIfAbsent("share-group",
                "kafka-clients " + version + ": share consumer (KIP-932) not GA before 4.2");
        }
        if (System.getenv("COMPAT_SASL_SSL_BOOTSTRAP") == null) {
            // Only a broker run.py starts itself has the secured listeners (not --bootstrap).
            for (String name : SECURED) {
                skips.putIfAbsent(name,
                    "no secured listeners (run.py starts them with its own broker)");
            }
        }

        System.out.println("{\"client\": \"kafka-clients\", \"version\": "
            + json(version) + "}");
        ExecutorService executor = Executors.newCachedThreadPool(runnable -> {
            Thread thread = new Thread(runnable);
            thread.setDaemon(true); // a scenario that hangs must not keep the JVM alive
            return thread;
        });
        for (Map.Entry<String, Scenario> entry : scenarios.entrySet()) {
            String name = entry.getKey();
            if (selected != null && !selected.contains(name)) {
                continue;
            }
            if (skips.containsKey(name)) {
                emit(name, "skip", skips.get(name), null, 0);
                continue;
            }
            long start = System.nanoTime();
            Future<String> future = executor.submit(entry.getValue()::run);
            try {
                String topic = future.get(SCENARIO_TIMEOUT_S, TimeUnit.SECONDS);
                emit(name, "pass", "", topic, start);
            } catch (TimeoutException e) {
                future.cancel(true);
                emit(name, "fail", "timed out after " + SCENARIO_TIMEOUT_S + " s", null, start);
            } catch (ExecutionException e) {
                emit(name, "fail", describe(e.getCause()), null, start);
            }
        }
        executor.shutdownNow();
        System.out.flush();
        System.exit(0);
    }

    /**
     * The share-group scenario where ShareScenarios is built (the kafka-4 profile) and the client
     * is 4.2 or later; null otherwise.
     */
    static Scenario shareScenarios(String bootstrap, String prefix) throws Exception {
        String[] version = clientVersion().split("\\.");
        if (version.length < 2 || !version[0].matches("\\d+") || !version[1].matches("\\d+")
            || Integer.parseInt(version[0]) * 100 + Integer.parseInt(version[1]) < 402) {
            return null;
        }
        try {
            return (Scenario) Class.forName("dev.rafka.compat.ShareScenarios")
                .getDeclaredConstructor(String.class, String.class).newInstance(bootstrap, prefix);
        } catch (ClassNotFoundException e) {
            return null;
        }
    }

    /** The kafka-clients version, from the properties file its jar carries. */
    static String clientVersion() {
        try (InputStream in =
                 KafkaProducer.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            Properties properties = new Properties();
            properties.load(in);
            return properties.getProperty("version", "unknown");
        } catch (Exception e) {
            return "unknown";
        }
    }

    static Map<String, String> parseSkips(String text) {
        Map<String, String> skips = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            int tab = line.indexOf('\t');
            if (tab > 0) {
                skips.put(line.substring(0, tab), line.substring(tab + 1));
            }
        }
        return skips;
    }

    static void emit(String scenario, String result, String reason, String topic, long startNanos) {
        double seconds = startNanos == 0 ? 0 : (System.nanoTime() - startNanos) / 1e9;
        StringBuilder line = new StringBuilder("{\"scenario\": ").append(json(scenario))
            .append(", \"result\": ").append(json(result))
            .append(", \"reason\": ").append(json(reason == null ? "" : reason))
            .append(", \"seconds\": ").append(String.format(java.util.Locale.ROOT, "%.2f", seconds));
        if (topic != null) {
            line.append(", \"topic\": ").append(json(topic));
        }
        System.out.println(line.append('}'));
        System.out.flush();
    }

    static String json(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }
}
