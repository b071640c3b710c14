/* The benchmark's load generator: `rafka bench produce` and `rafka bench consume` without the
 * Python interpreter.
 *
 * One confluent-kafka call per record costs microseconds of Python, so on the one client core the
 * Python generator, not the broker, set the produce and consume figures (both brokers met the
 * same ceiling, the client's core at 100 %). This program drives the same librdkafka (the
 * benchmark links the copy that confluent-kafka bundles) with the same settings, and prints the
 * same JSON object as `rafka bench ... --json`, so the rows measure the broker.
 *
 *   generator produce BOOTSTRAP TOPIC NUM_RECORDS RECORD_SIZE [property value]...
 *   generator consume BOOTSTRAP TOPIC NUM_RECORDS TIMEOUT_S GROUP|- [property value]...
 *
 * produce: the topic must exist (the runner creates it); the clock starts once its metadata is
 * known and stops when every record is acknowledged.
 * consume: from the start of every partition, by assignment ("-") or as a member of GROUP; the
 * clock runs from the poll that returned the first record to the last record, as
 * `rafka bench consume` (the wait before it, and a group's join, are reported apart). */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* A point in time on three clocks: interval timing, the wall, and this process's CPU. */
struct moment {
    double mono, wall, cpu;
};

static double clock_s(clockid_t clock) {
    struct timespec now;
    clock_gettime(clock, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static struct moment moment_now(void) {
    struct rusage usage; /* every thread: the application's and librdkafka's */
    getrusage(RUSAGE_SELF, &usage);
    struct moment now = {clock_s(CLOCK_MONOTONIC), clock_s(CLOCK_REALTIME), 0};
    now.cpu = (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
              (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    return now;
}

static int fail(const char *what, const char *why) {
    fprintf(stderr, "rafka: error: %s: %s\n", what, why);
    return 1;
}

/* bootstrap.servers, the generator's own settings, then the caller's (which win). */
static rd_kafka_conf_t *configure(const char *bootstrap, const char *const *own, int argc,
                                  char **argv) {
    char error[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, error, sizeof error)) {
        fail("bootstrap.servers", error);
        return NULL;
    }
    for (int i = 0; own[i]; i += 2)
        if (rd_kafka_conf_set(conf, own[i], own[i + 1], error, sizeof error)) {
            fail(own[i], error);
            return NULL;
        }
    for (int i = 0; i + 1 < argc; i += 2)
        if (rd_kafka_conf_set(conf, argv[i], argv[i + 1], error, sizeof error)) {
            fail(argv[i], error);
            return NULL;
        }
    return conf;
}

/* The topic's partition count from a Metadata answer, or -1 (with the reason printed). */
static int partition_count(rd_kafka_t *client, const char *topic_name) {
    rd_kafka_topic_t *topic = rd_kafka_topic_new(client, topic_name, NULL);
    const struct rd_kafka_metadata *metadata = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(client, 0, topic, &metadata, 30000);
    rd_kafka_topic_destroy(topic);
    if (err)
        return fail("no metadata within 30 s", rd_kafka_err2str(err)), -1;
    int count = -1;
    if (metadata->topic_cnt == 1 && !metadata->topics[0].err)
        count = metadata->topics[0].partition_cnt;
    else
        fail(topic_name, "topic not found");
    rd_kafka_metadata_destroy(metadata);
    return count;
}

static void print_result(const char *workload, long records, long bytes, struct moment from,
                         double to, double cpu_to, long errors, const char *first_error,
                         const char *extra) {
    double elapsed = to - from.mono, cpu = cpu_to - from.cpu;
    printf("{\"workload\": \"%s\", \"records\": %ld, \"bytes\": %ld, \"elapsed_s\": %.6f, "
           "\"client_cpu_s\": %.6f, \"errors\": %ld, \"first_error\": ",
           workload, records, bytes, elapsed, cpu, errors);
    if (first_error) /* librdkafka's error texts hold no quote or backslash */
        printf("\"%s\"", first_error);
    else
        printf("null");
    printf(", \"latency_ms\": null, \"started_at\": %.6f, \"extra\": {%s}, "
           "\"settings\": {\"librdkafka\": \"%s\", \"generator\": \"native\"}, "
           "\"records_per_sec\": %.3f, \"mb_per_sec\": %.3f, \"client_cpu_pct\": %.3f}\n",
           from.wall, extra, rd_kafka_version_str(), records / elapsed,
           (double)bytes / 1048576.0 / elapsed, 100.0 * cpu / elapsed);
}

/* -- produce ------------------------------------------------------------------------------- */

static long delivery_errors;
static char first_delivery_error[256];

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque) {
    (void)rk;
    (void)opaque;
    if (message->err && delivery_errors++ == 0)
        snprintf(first_delivery_error, sizeof first_delivery_error, "%s",
                 rd_kafka_err2str(message->err));
}

/* Upper-case letters, as Kafka's producer perf tool and `rafka bench` send: compressible, not
 * trivially. A fixed LCG: the bytes need not match Python's, only be alike for every broker. */
static char *payload(int size) {
    char *value = malloc((size_t)size);
    unsigned int state = 1;
    for (int i = 0; value && i < size; i++) {
        state = state * 1103515245u + 12345u;
        value[i] = (char)('A' + (state >> 16) % 26);
    }
    return value;
}

static int produce(int argc, char **argv) {
    if (argc < 4 || argc % 2)
        return fail("usage", "produce BOOTSTRAP TOPIC NUM_RECORDS RECORD_SIZE [property value]...");
    const char *topic_name = argv[1];
    long records = atol(argv[2]);
    int size = atoi(argv[3]);
    if (records < 1 || size < 1)
        return fail("usage", "NUM_RECORDS and RECORD_SIZE must be positive");
    /* as `rafka bench produce`: only failed deliveries are reported */
    static const char *const own[] = {"delivery.report.only.error", "true", NULL};
    rd_kafka_conf_t *conf = configure(argv[0], own, argc - 4, argv + 4);
    if (!conf)
        return 1;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char error[512];
    rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (!producer)
        return fail("producer", error);
    char *value = payload(size);
    if (!value)
        return fail("payload", "out of memory");
    if (partition_count(producer, topic_name) < 1)
        return 1;
    rd_kafka_topic_t *topic = rd_kafka_topic_new(producer, topic_name, NULL);

    struct moment start = moment_now();
    /* No copy flag: librdkafka references the one payload buffer, as it may for any caller
     * that keeps the bytes alive (it still copies them into the batch it sends). */
    for (long sent = 0; sent < records;) {
        if (rd_kafka_produce(topic, RD_KAFKA_PARTITION_UA, 0, value, (size_t)size, NULL, 0,
                             NULL)) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                return fail("produce", rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_poll(producer, 1); /* the queue is full: let it drain */
        } else if ((++sent & 1023) == 0) {
            rd_kafka_poll(producer, 0);
        }
    }
    while (rd_kafka_outq_len(producer) > 0)
        rd_kafka_poll(producer, 5);
    struct moment end = moment_now();

    long delivered = records - delivery_errors;
    print_result("produce", delivered, delivered * size, start, end.mono, end.cpu,
                 delivery_errors, delivery_errors ? first_delivery_error : NULL, "");
    free(value);
    rd_kafka_topic_destroy(topic);
    rd_kafka_destroy(producer);
    return 0;
}

/* -- consume ------------------------------------------------------------------------------- */

static struct moment joined;
static int has_joined;

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *partitions, void *opaque) {
    (void)opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (!has_joined) {
            joined = moment_now();
            has_joined = 1;
        }
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, partitions));
        else
            rd_kafka_assign(rk, partitions);
    } else if (cooperative) {
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, partitions));
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static int consume(int argc, char **argv) {
    if (argc < 5 || argc % 2 == 0)
        return fail("usage", "consume BOOTSTRAP TOPIC NUM_RECORDS TIMEOUT_S GROUP|- [property value]...");
    const char *topic_name = argv[1], *group = strcmp(argv[4], "-") ? argv[4] : NULL;
    long wanted = atol(argv[2]);
    double timeout_s = atof(argv[3]);
    if (wanted < 1 || timeout_s <= 0)
        return fail("usage", "NUM_RECORDS and TIMEOUT_S must be positive");
    /* librdkafka wants a group id even for assign(); a unique one leaves no trace */
    char unique[64];
    snprintf(unique, sizeof unique, "rafka-bench-%lx", (long)(clock_s(CLOCK_REALTIME) * 1e6));
    const char *own[] = {"group.id", group ? group : unique, "auto.offset.reset", "earliest",
                         "enable.auto.commit", group ? "true" : "false", NULL};
    rd_kafka_conf_t *conf = configure(argv[0], own, argc - 5, argv + 5);
    if (!conf)
        return 1;
    if (group)
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    char error[512];
    struct moment opened = moment_now();
    rd_kafka_t *consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    if (!consumer)
        return fail("consumer", error);
    rd_kafka_poll_set_consumer(consumer);
    int partitions = partition_count(consumer, topic_name);
    if (partitions < 1)
        return 1;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(partitions);
    if (group) {
        rd_kafka_topic_partition_list_add(list, topic_name, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer, list);
        if (err)
            return fail("subscribe", rd_kafka_err2str(err));
    } else {
        for (int p = 0; p < partitions; p++)
            rd_kafka_topic_partition_list_add(list, topic_name, p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_resp_err_t err = rd_kafka_assign(consumer, list);
        if (err)
            return fail("assign", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(list);

    /* Batches of up to 10,000 records, as `rafka bench consume` polls them: a call per
     * record would cost the client core more than the records do. */
    enum { BATCH = 10000 };
    static rd_kafka_message_t *batch[BATCH];
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(consumer);
    long received = 0, bytes = 0, failed = 0;
    char last_error[256] = "";
    struct moment first = {0}, polled;
    double last = 0, idle_since = clock_s(CLOCK_MONOTONIC);
    while (received < wanted) {
        if (!received)
            polled = moment_now(); /* the first record's poll starts the clock */
        long room = wanted - received < BATCH ? wanted - received : BATCH;
        ssize_t count = rd_kafka_consume_batch_queue(queue, 10, batch, (size_t)room);
        double now = clock_s(CLOCK_MONOTONIC);
        if (count <= 0) {
            if (now - idle_since > timeout_s) {
                char why[512];
                snprintf(why, sizeof why, "only %ld of %ld records arrived; none for %.0f s%s%s",
                         received, wanted, timeout_s, *last_error ? ": " : "", last_error);
                return fail("consume", why);
            }
            continue;
        }
        idle_since = now;
        long before = received;
        for (ssize_t i = 0; i < count; i++) {
            rd_kafka_message_t *message = batch[i];
            if (message->err) {
                if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                    failed++;
                    snprintf(last_error, sizeof last_error, "%s",
                             rd_kafka_message_errstr(message));
                }
            } else {
                received++;
                bytes += (long)message->len;
            }
            rd_kafka_message_destroy(message);
        }
        if (received > before) {
            if (!before)
                first = polled;
            last = now;
        }
    }
    rd_kafka_queue_destroy(queue);
    struct moment end = moment_now();
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);

    char extra[128];
    int n = snprintf(extra, sizeof extra, "\"time_to_first_record_ms\": %.3f",
                     (first.mono - opened.mono) * 1e3);
    if (has_joined)
        snprintf(extra + n, sizeof extra - (size_t)n, ", \"join_ms\": %.3f",
                 (joined.mono - opened.mono) * 1e3);
    print_result(group ? "group-consume" : "consume", received, bytes, first, last, end.cpu,
                 failed, failed ? last_error : NULL, extra);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "produce"))
        return produce(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "consume"))
        return consume(argc - 2, argv + 2);
    return fail("usage", "generator produce|consume BOOTSTRAP TOPIC ...");
}
