package dev.rafka.compat;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.security.plain.PlainLoginModule;
import org.apache.kafka.common.security.scram.ScramLoginModule;

/**
 * The security scenarios, over the secured listeners and with the credentials described in
 * compat-tests/matrix/security.py: SASL PLAIN and SCRAM over SASL_SSL, mutual TLS, and ACLs.
 */
final class SecurityScenarios extends Clients {
    static final int SECURED_RECORDS = 10;

    SecurityScenarios(String bootstrap, String prefix) {
        super(bootstrap, prefix);
    }

    String securitySaslPlain() throws Exception {
        String user = requireEnv("COMPAT_PLAIN_USER");
        securedRoundtrip("security-sasl-plain",
            sasl("PLAIN", PlainLoginModule.class, user, requireEnv("COMPAT_PLAIN_PASSWORD")));
        checkRefused(sasl("PLAIN", PlainLoginModule.class, user, "wrong"), "a wrong password");
        return null;
    }

    String securitySaslScram() throws Exception {
        String user = requireEnv("COMPAT_SCRAM_USER");
        String password = requireEnv("COMPAT_SCRAM_PASSWORD");
        securedRoundtrip("security-sasl-scram",
            sasl("SCRAM-SHA-512", ScramLoginModule.class, user, password));
        checkRefused(sasl("SCRAM-SHA-512", ScramLoginModule.class, user, "wrong"),
            "a wrong password");
        return null;
    }

    String securityMtls() throws Exception {
        Map<String, Object> tls = Map.of(
            CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, requireEnv("COMPAT_MTLS_BOOTSTRAP"),
            CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SSL",
            SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM",
            SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, requireEnv("COMPAT_CA_PEM"));
        Map<String, Object> withCertificate = new LinkedHashMap<>(tls);
        // Key and chain in one unencrypted PEM file: no ssl.key.password.
        withCertificate.put(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM");
        withCertificate.put(
            SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG, requireEnv("COMPAT_CLIENT_PEM"));
        securedRoundtrip("security-mtls", withCertificate);
        checkRefused(tls, "a client without a certificate");
        return null;
    }

    /**
     * An ACL for another principal closes the topic to the SASL_SSL PLAIN user (the broker allows
     * what no ACL names); once ACLs allow it WRITE and READ, it produces and reads back.
     */
    String securityAcl() throws Exception {
        String user = requireEnv("COMPAT_PLAIN_USER");
        Map<String, Object> security =
            sasl("PLAIN", PlainLoginModule.class, user, requireEnv("COMPAT_PLAIN_PASSWORD"));
        String topic = prefix + "-security-acl";
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of());
            // An ACL for someone else names the topic: from now on it is closed to everyone else.
            createAcls(admin, List.of(
                topicAcl(topic, "User:compat-someone-else", AclOperation.WRITE)));
            Map<String, Object> bounded = new LinkedHashMap<>(security);
            bounded.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 10000);
            bounded.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 10000);
            bounded.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000);
            try (KafkaProducer<String, String> producer = producer(bounded)) {
                Throwable error = null;
                try {
                    producer.send(new ProducerRecord<>(topic, 0, null, "refused"))
                        .get(30, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    error = e.getCause();
                } catch (TopicAuthorizationException e) {
                    error = e; // refused with the metadata, before send() returned
                }
                check(error != null, "produce without WRITE was acknowledged");
                check(error instanceof TopicAuthorizationException,
                    "produce without WRITE failed with " + describe(error)
                        + ", not TopicAuthorizationException");
            }
            createAcls(admin, List.of(
                topicAcl(topic, "User:" + user, AclOperation.WRITE),
                topicAcl(topic, "User:" + user, AclOperation.READ)));
        }
        // The read-back assigns manually without a group.id: no coordinator lookup, so no
        // GROUP ACL is needed.
        securedTransfer(topic, "security-acl", security);
        return null;
    }

    /** SASL_SSL on the secured listener, the broker's certificate checked against the run's CA. */
    static Map<String, Object> sasl(String mechanism, Class<?> loginModule, String user,
                                    String password) {
        return Map.of(
            CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, requireEnv("COMPAT_SASL_SSL_BOOTSTRAP"),
            CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_SSL",
            SaslConfigs.SASL_MECHANISM, mechanism,
            SaslConfigs.SASL_JAAS_CONFIG, loginModule.getName() + " required username=\""
                + user + "\" password=\"" + password + "\";",
            SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM",
            SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, requireEnv("COMPAT_CA_PEM"));
    }

    /**
     * Creates `<prefix>-<scenario>` on the plain listener, then produces SECURED_RECORDS to its
     * partition 0 and reads them back, both with `security` (which names the secured listener).
     */
    void securedRoundtrip(String scenario, Map<String, Object> security) throws Exception {
        String topic = prefix + "-" + scenario;
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1, Map.of());
        }
        securedTransfer(topic, scenario, security);
    }

    /** Produces SECURED_RECORDS to the topic's partition 0 and reads them back, with `security`. */
    void securedTransfer(String topic, String scenario, Map<String, Object> security)
            throws Exception {
        List<String> sent = IntStream.range(0, SECURED_RECORDS)
            .mapToObj(i -> prefix + " " + scenario + " " + i).toList();
        Map<String, Object> config = new LinkedHashMap<>(security);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> producer = producer(config)) {
            List<Future<?>> acks = new ArrayList<>();
            for (String value : sent) {
                acks.add(producer.send(new ProducerRecord<>(topic, 0, null, value)));
            }
            for (Future<?> ack : acks) {
                ack.get(30, TimeUnit.SECONDS);
            }
        }
        List<String> got = values(readAll(topic, 1, security));
        check(got.equals(sent), "read back " + got.subList(0, Math.min(3, got.size()))
            + "... instead of the " + sent.size() + " records");
    }

    /** An Admin client with `security` must fail to list topics, within a few seconds. */
    static void checkRefused(Map<String, Object> security, String who) throws Exception {
        Properties props = new Properties();
        props.putAll(security);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 5000);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 5000);
        try (Admin admin = Admin.create(props)) {
            admin.listTopics().names().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            // Under TLS 1.3 a client without a certificate finishes its handshake before the broker
            // drops the connection, so it sees no authentication error, only retries until timeout.
            Throwable cause = e.getCause();
            check(cause instanceof AuthenticationException
                    || cause instanceof org.apache.kafka.common.errors.TimeoutException,
                who + " failed with " + describe(cause) + ", not as refused");
            return;
        }
        throw new AssertionError(who + " was accepted");
    }

    /** An ALLOW ACL for `principal` on the literal topic `topic`, from any host. */
    static AclBinding topicAcl(String topic, String principal, AclOperation operation) {
        return new AclBinding(
            new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL),
            new AccessControlEntry(principal, "*", operation, AclPermissionType.ALLOW));
    }

    static void createAcls(Admin admin, Collection<AclBinding> acls) throws Exception {
        admin.createAcls(acls).all().get(30, TimeUnit.SECONDS);
    }
}
