// The franz-go compatibility suite: each scenario listed in compat-tests/matrix/scenarios.py as
// a small application with assertions, one JSON line per scenario on stdout. Configuration comes
// from the environment (COMPAT_BOOTSTRAP, COMPAT_PREFIX, COMPAT_SKIP, COMPAT_ONLY) as run.py
// sets it; the security scenarios also read the secured listeners, CA, client certificate and
// credentials run.py adds when it starts the broker itself (compat-tests/matrix/security.py).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	records         = 100
	wait            = 30 * time.Second
	scenarioTimeout = 60 * time.Second
)

// The security scenarios: records sent over a secured listener, and how long a client that
// should be refused gets before its silence counts as a refusal.
const (
	securedRecords = 10
	refusalWait    = 8 * time.Second
	noSecured      = "no secured listeners (run.py starts them with its own broker)"
)

// security-acl: how long the produce the ACLs refuse may take (context, request and delivery
// timeouts), and the principal whose ACL closes the topic to everyone else.
const (
	aclRefusalWait = 10 * time.Second
	aclOther       = "User:compat-someone-else"
)

var securityScenarios = []string{"security-sasl-plain", "security-sasl-scram", "security-mtls", "security-acl"}

// txn-pipeline: transactions of txnPipelinePerPartition records to each of txnPipelinePartitions.
const (
	txnPipelinePartitions   = 8
	txnPipelineTransactions = 20
	txnPipelinePerPartition = 20
	txnPipelineBatchBytes   = 1024
)

// About 4 records fill a batch of txnPipelineBatchBytes.
var txnPipelinePadding = strings.Repeat("pipelined ", 20)

var codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

type suite struct {
	bootstrap string
	prefix    string
}

// A scenario returns the topic whose stored batches run.py should inspect ("" for none).
type scenario struct {
	name string
	run  func(ctx context.Context) (string, error)
}

type result struct {
	Scenario string  `json:"scenario"`
	Result   string  `json:"result"`
	Reason   string  `json:"reason"`
	Seconds  float64 `json:"seconds"`
	Topic    string  `json:"topic,omitempty"`
}

func main() {
	s := &suite{bootstrap: mustEnv("COMPAT_BOOTSTRAP"), prefix: mustEnv("COMPAT_PREFIX")}
	skips := map[string]string{}
	for _, line := range strings.Split(os.Getenv("COMPAT_SKIP"), "\n") {
		if name, reason, ok := strings.Cut(line, "\t"); ok {
			skips[name] = reason
		}
	}
	var only []string
	if v := os.Getenv("COMPAT_ONLY"); v != "" {
		only = strings.Split(v, ",")
	}
	// run.py adds the secured listeners only to a broker it starts (not with --bootstrap).
	if os.Getenv("COMPAT_SASL_SSL_BOOTSTRAP") == "" {
		for _, name := range securityScenarios {
			if _, ok := skips[name]; !ok {
				skips[name] = noSecured
			}
		}
	}

	scenarios := []scenario{{"metadata", s.metadata}}
	for _, codec := range codecs {
		scenarios = append(scenarios, scenario{"produce-consume-" + codec, func(ctx context.Context) (string, error) {
			return s.produceConsume(ctx, codec)
		}})
	}
	scenarios = append(scenarios,
		scenario{"idempotent-produce", s.idempotentProduce},
		scenario{"group-rebalance", s.groupRebalance},
		scenario{"commit-resume", s.commitResume},
		scenario{"admin-topics", s.adminTopics},
		scenario{"admin-configs", s.adminConfigs},
		scenario{"transactions", s.transactions},
		scenario{"txn-pipeline", s.txnPipeline},
		scenario{"security-sasl-plain", s.securitySaslPlain},
		scenario{"security-sasl-scram", s.securitySaslScram},
		scenario{"security-mtls", s.securityMtls},
		scenario{"security-acl", s.securityAcl},
	)

	out := json.NewEncoder(os.Stdout)
	_ = out.Encode(map[string]string{"client": "franz-go", "version": franzVersion()})
	for _, sc := range scenarios {
		if only != nil && !slices.Contains(only, sc.name) {
			continue
		}
		if reason, ok := skips[sc.name]; ok {
			_ = out.Encode(result{Scenario: sc.name, Result: "skip", Reason: reason})
			continue
		}
		start := time.Now()
		topic, err := runBounded(sc)
		r := result{Scenario: sc.name, Result: "pass", Seconds: time.Since(start).Seconds(), Topic: topic}
		if err != nil {
			r.Result, r.Reason, r.Topic = "fail", err.Error(), ""
		}
		_ = out.Encode(r)
	}
}

// runBounded runs one scenario under a deadline; a scenario stuck past it is reported and left behind.
func runBounded(sc scenario) (topic string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		topic, err = sc.run(ctx)
	}()
	select {
	case <-done:
		return topic, err
	case <-time.After(scenarioTimeout + 5*time.Second):
		return "", fmt.Errorf("timed out after %s", scenarioTimeout)
	}
}

// -- scenarios ----------------------------------------------------------------------------------

func (s *suite) metadata(ctx context.Context) (string, error) {
	topic := s.prefix + "-metadata"
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, 3, nil); err != nil {
		return "", err
	}
	meta, err := adm.Metadata(ctx, topic)
	if err != nil {
		return "", err
	}
	if len(meta.Brokers) != 1 {
		return "", fmt.Errorf("expected one broker, got %v", meta.Brokers)
	}
	broker := meta.Brokers[0]
	if addr := fmt.Sprintf("%s:%d", broker.Host, broker.Port); addr != s.bootstrap {
		return "", fmt.Errorf("broker advertised as %s, not %s", addr, s.bootstrap)
	}
	if meta.Cluster == "" || meta.Controller != broker.NodeID {
		return "", fmt.Errorf("cluster id %q, controller %d", meta.Cluster, meta.Controller)
	}
	detail, ok := meta.Topics[topic]
	if !ok || detail.Err != nil || len(detail.Partitions) != 3 {
		return "", fmt.Errorf("topic metadata %+v (err %v)", detail, detail.Err)
	}
	for _, p := range detail.Partitions {
		if p.Err != nil || p.Leader != broker.NodeID || len(p.Replicas) != 1 {
			return "", fmt.Errorf("partition %+v", p)
		}
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return "", err
	}
	if !topics.Has(topic) {
		return "", fmt.Errorf("topic %s not listed", topic)
	}
	return "", nil
}

func (s *suite) produceConsume(ctx context.Context, codec string) (string, error) {
	topic := s.prefix + "-pc-" + codec
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
		return "", err
	}
	sent := make([]*kgo.Record, records)
	for i := range sent {
		sent[i] = sampleRecord(topic, i, codec)
	}
	compression := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}[codec]
	if err := s.produce(ctx, sent, kgo.ProducerBatchCompression(compression), kgo.ProducerLinger(20*time.Millisecond)); err != nil {
		return "", err
	}
	got, err := s.readAll(ctx, topic, 1, len(sent), false)
	if err != nil {
		return "", err
	}
	for i, want := range sent {
		if string(got[i].Key) != string(want.Key) || (got[i].Key == nil) != (want.Key == nil) {
			return "", fmt.Errorf("record %d key %q != %q", i, got[i].Key, want.Key)
		}
		if string(got[i].Value) != string(want.Value) {
			return "", fmt.Errorf("record %d value differs", i)
		}
		if a, b := headerList(got[i].Headers), headerList(want.Headers); !slices.Equal(a, b) {
			return "", fmt.Errorf("record %d headers %v != %v", i, a, b)
		}
	}
	return topic, s.checkNothingAfter(ctx, adm, topic, got[len(got)-1].Offset)
}

func (s *suite) idempotentProduce(ctx context.Context) (string, error) {
	topic := s.prefix + "-idempotent"
	count := 500
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
		return "", err
	}
	sent := make([]*kgo.Record, count)
	for i := range sent {
		sent[i] = &kgo.Record{Topic: topic, Key: []byte("k" + strconv.Itoa(i%5)), Value: []byte("idem-" + strconv.Itoa(i))}
	}
	// franz-go is idempotent unless told otherwise; small batches make many requests.
	if err := s.produce(ctx, sent, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchMaxBytes(2048)); err != nil {
		return "", err
	}
	got, err := s.readAll(ctx, topic, 1, count, false)
	if err != nil {
		return "", err
	}
	for i, r := range got {
		if want := "idem-" + strconv.Itoa(i); string(r.Value) != want {
			return "", fmt.Errorf("record %d is %q, want %q", i, r.Value, want)
		}
	}
	return topic, s.checkNothingAfter(ctx, adm, topic, got[len(got)-1].Offset)
}

func (s *suite) groupRebalance(ctx context.Context) (string, error) {
	topic, group := s.prefix+"-group", s.prefix+"-group"
	const partitions, count = 4, 40
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, partitions, nil); err != nil {
		return "", err
	}
	var sent []*kgo.Record
	for i := 0; i < count; i++ {
		sent = append(sent, &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte("g-" + strconv.Itoa(i))})
	}
	if err := s.produce(ctx, sent, kgo.RecordPartitioner(kgo.ManualPartitioner())); err != nil {
		return "", err
	}
	first, err := s.startMember(topic, group, "first")
	if err != nil {
		return "", err
	}
	defer first.stop()
	if err := waitFor(ctx, "the first member to own all 4 partitions", func() bool {
		return len(first.assigned()) == partitions
	}); err != nil {
		return "", err
	}
	second, err := s.startMember(topic, group, "second")
	if err != nil {
		return "", err
	}
	defer second.stop()
	if err := waitFor(ctx, "the partitions to be split between two members", func() bool {
		a, b := first.assigned(), second.assigned()
		union := map[int32]bool{}
		for _, p := range append(a, b...) {
			union[p] = true
		}
		return len(a) > 0 && len(b) > 0 && len(a)+len(b) == partitions && len(union) == partitions
	}); err != nil {
		return "", err
	}
	if err := waitFor(ctx, "the two members to consume all 40 records", func() bool {
		seen := map[string]bool{}
		for _, m := range []*member{first, second} {
			m.mu.Lock()
			for v := range m.seen {
				seen[v] = true
			}
			m.mu.Unlock()
		}
		return len(seen) == count
	}); err != nil {
		return "", err
	}
	second.stop()
	if err := waitFor(ctx, "the first member to own all partitions after the second left", func() bool {
		return len(first.assigned()) == partitions
	}); err != nil {
		return "", err
	}
	return "", nil
}

func (s *suite) commitResume(ctx context.Context) (string, error) {
	topic, group := s.prefix+"-commit", s.prefix+"-commit"
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
		return "", err
	}
	var sent []*kgo.Record
	for i := 0; i < 20; i++ {
		sent = append(sent, &kgo.Record{Topic: topic, Value: []byte("c-" + strconv.Itoa(i))})
	}
	if err := s.produce(ctx, sent); err != nil {
		return "", err
	}
	groupClient := func() (*kgo.Client, error) {
		return kgo.NewClient(kgo.SeedBrokers(s.bootstrap), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	}
	consumer, err := groupClient()
	if err != nil {
		return "", err
	}
	got, err := pollRecords(ctx, consumer, 10)
	if err != nil {
		consumer.Close()
		return "", err
	}
	tenth := got[9]
	if string(tenth.Value) != "c-9" {
		consumer.Close()
		return "", fmt.Errorf("10th record is %q", tenth.Value)
	}
	committed := tenth.Offset + 1
	var commitErr error
	consumer.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{
		topic: {0: {Epoch: tenth.LeaderEpoch, Offset: committed}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		commitErr = firstCommitError(resp, err)
	})
	consumer.Close()
	if commitErr != nil {
		return "", fmt.Errorf("commit: %w", commitErr)
	}
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return "", err
	}
	if o, ok := offsets.Lookup(topic, 0); !ok || o.Err != nil || o.At != committed {
		return "", fmt.Errorf("committed offset %+v, expected %d", o, committed)
	}
	consumer, err = groupClient()
	if err != nil {
		return "", err
	}
	defer consumer.Close()
	got, err = pollRecords(ctx, consumer, 10)
	if err != nil {
		return "", err
	}
	if got[0].Offset != committed {
		return "", fmt.Errorf("resumed at offset %d, committed %d", got[0].Offset, committed)
	}
	for i, r := range got {
		if want := "c-" + strconv.Itoa(10+i); string(r.Value) != want {
			return "", fmt.Errorf("resumed record %d is %q, want %q", i, r.Value, want)
		}
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		return "", err
	}
	offsets, err = adm.FetchOffsets(ctx, group)
	if err != nil {
		return "", err
	}
	if o, _ := offsets.Lookup(topic, 0); o.At != got[9].Offset+1 {
		return "", fmt.Errorf("final committed offset %d, expected %d", o.At, got[9].Offset+1)
	}
	return "", nil
}

func (s *suite) adminTopics(ctx context.Context) (string, error) {
	topic := s.prefix + "-admin"
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, 3, nil); err != nil {
		return "", err
	}
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return "", err
	}
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return "", err
	}
	detail := details[topic]
	if detail.Err != nil || len(detail.Partitions) != 3 {
		return "", fmt.Errorf("described %+v (err %v)", detail, detail.Err)
	}
	for _, p := range detail.Partitions {
		if p.Leader != meta.Brokers[0].NodeID {
			return "", fmt.Errorf("leader of partition %d is %d", p.Partition, p.Leader)
		}
	}
	all, err := adm.ListTopics(ctx)
	if err != nil || !all.Has(topic) {
		return "", fmt.Errorf("created topic not listed (err %v)", err)
	}
	if err := createTopic(ctx, adm, topic, 3, nil); !errors.Is(err, kerr.TopicAlreadyExists) {
		return "", fmt.Errorf("re-creating the topic: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	deleted, err := adm.DeleteTopics(ctx, topic)
	if err != nil {
		return "", err
	}
	if err := deleted.Error(); err != nil {
		return "", fmt.Errorf("delete: %w", err)
	}
	if err := waitFor(ctx, "the deleted topic to leave the list", func() bool {
		all, err := adm.ListTopics(ctx)
		return err == nil && !all.Has(topic)
	}); err != nil {
		return "", err
	}
	details, err = adm.ListTopics(ctx, topic)
	if err != nil {
		return "", err
	}
	if !errors.Is(details[topic].Err, kerr.UnknownTopicOrPartition) {
		return "", fmt.Errorf("describing the deleted topic: %v", details[topic].Err)
	}
	return "", nil
}

func (s *suite) adminConfigs(ctx context.Context) (string, error) {
	topic := s.prefix + "-configs"
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}); err != nil {
		return "", err
	}
	retention, err := topicConfig(ctx, adm, topic, "retention.ms")
	if err != nil {
		return "", err
	}
	if retention.MaybeValue() != "3600000" || retention.Source.String() != "DYNAMIC_TOPIC_CONFIG" {
		return "", fmt.Errorf("retention.ms after create: %q from %s", retention.MaybeValue(), retention.Source)
	}
	cleanup, err := topicConfig(ctx, adm, topic, "cleanup.policy")
	if err != nil || cleanup.MaybeValue() != "delete" {
		return "", fmt.Errorf("cleanup.policy %q (err %v)", cleanup.MaybeValue(), err)
	}
	altered, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("7200000")},
	}, topic)
	if err != nil {
		return "", err
	}
	for _, a := range altered {
		if a.Err != nil {
			return "", fmt.Errorf("alter: %w", a.Err)
		}
	}
	retention, err = topicConfig(ctx, adm, topic, "retention.ms")
	if err != nil || retention.MaybeValue() != "7200000" {
		return "", fmt.Errorf("retention.ms after alter: %q (err %v)", retention.MaybeValue(), err)
	}
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return "", err
	}
	brokerConfigs, err := adm.DescribeBrokerConfigs(ctx, meta.Brokers[0].NodeID)
	if err != nil {
		return "", err
	}
	found := false
	for _, rc := range brokerConfigs {
		if rc.Err != nil {
			return "", fmt.Errorf("broker configs: %w", rc.Err)
		}
		for _, c := range rc.Configs {
			found = found || c.Key == "num.partitions"
		}
	}
	if !found {
		return "", errors.New("broker config lacks num.partitions")
	}
	_, err = adm.DeleteTopics(ctx, topic)
	return "", err
}

func (s *suite) transactions(ctx context.Context) (string, error) {
	topic := s.prefix + "-txn"
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
		return "", err
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(s.bootstrap), kgo.TransactionalID(s.prefix+"-txn"),
		kgo.DefaultProduceTopic(topic), kgo.TransactionTimeout(30*time.Second))
	if err != nil {
		return "", err
	}
	defer producer.Close()
	transaction := func(values []string, commit kgo.TransactionEndTry) error {
		if err := producer.BeginTransaction(); err != nil {
			return err
		}
		for _, v := range values {
			if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				return err
			}
		}
		return producer.EndTransaction(ctx, commit)
	}
	if err := transaction(numbered("committed-", 0, 5), kgo.TryCommit); err != nil {
		return "", fmt.Errorf("first transaction: %w", err)
	}
	if err := transaction(numbered("aborted-", 0, 3), kgo.TryAbort); err != nil {
		return "", fmt.Errorf("aborted transaction: %w", err)
	}
	if err := transaction(numbered("committed-", 5, 6), kgo.TryCommit); err != nil {
		return "", fmt.Errorf("last transaction: %w", err)
	}
	committed, err := s.readAll(ctx, topic, 1, 6, true)
	if err != nil {
		return "", err
	}
	if got := values(committed); !slices.Equal(got, numbered("committed-", 0, 6)) {
		return "", fmt.Errorf("read_committed saw %v", got)
	}
	everything, err := s.readAll(ctx, topic, 1, 9, false)
	if err != nil {
		return "", err
	}
	want := append(append(numbered("committed-", 0, 5), numbered("aborted-", 0, 3)...), "committed-5")
	if got := values(everything); !slices.Equal(got, want) {
		return "", fmt.Errorf("read_uncommitted saw %v", got)
	}
	return topic, nil
}

// txnPipeline: every transaction's records go to all partitions at once, without waiting, right
// after the previous commit (under KIP-890 part 2 that commit bumped the epoch, so each partition's
// first batch of the new transaction restarts at sequence 0 while later ones are in flight behind it).
func (s *suite) txnPipeline(ctx context.Context) (string, error) {
	topic := s.prefix + "-txn-pipeline"
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, txnPipelinePartitions, nil); err != nil {
		return "", err
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(s.bootstrap), kgo.TransactionalID(s.prefix+"-txn-pipeline"),
		kgo.DefaultProduceTopic(topic), kgo.TransactionTimeout(30*time.Second), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// Several batches per partition, so several produce requests are in flight at once.
		kgo.ProducerBatchMaxBytes(txnPipelineBatchBytes))
	if err != nil {
		return "", err
	}
	defer producer.Close()
	var want []string
	for txn := 0; txn < txnPipelineTransactions; txn++ {
		if err := producer.BeginTransaction(); err != nil {
			return "", fmt.Errorf("transaction %d: begin: %w", txn, err)
		}
		var mu sync.Mutex
		var produceErr error
		for i := 0; i < txnPipelinePerPartition; i++ {
			for p := 0; p < txnPipelinePartitions; p++ {
				value := fmt.Sprintf("t%d-p%d-%d %s", txn, p, i, txnPipelinePadding)
				want = append(want, value)
				producer.Produce(ctx, &kgo.Record{Partition: int32(p), Value: []byte(value)}, func(_ *kgo.Record, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err != nil && produceErr == nil {
						produceErr = err
					}
				})
			}
		}
		if err := producer.Flush(ctx); err != nil {
			return "", fmt.Errorf("transaction %d: flush: %w", txn, err)
		}
		mu.Lock()
		failed := produceErr
		mu.Unlock()
		if failed != nil {
			return "", fmt.Errorf("transaction %d: produce: %w", txn, failed)
		}
		if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return "", fmt.Errorf("transaction %d: commit: %w", txn, err)
		}
	}
	got, err := s.readAll(ctx, topic, txnPipelinePartitions, len(want), true)
	if err != nil {
		return "", err
	}
	return topic, exactlyOnce(values(got), want)
}

// exactlyOnce: got holds every value of want once and nothing else.
func exactlyOnce(got, want []string) error {
	seen := map[string]int{}
	for _, v := range got {
		seen[v]++
	}
	for _, v := range want {
		if seen[v] != 1 {
			return fmt.Errorf("read_committed saw %q %d times (of %d records read, %d produced)", v, seen[v], len(got), len(want))
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("read_committed saw %d records, %d produced", len(got), len(want))
	}
	return nil
}

func (s *suite) securitySaslPlain(ctx context.Context) (string, error) {
	user := os.Getenv("COMPAT_PLAIN_USER")
	return "", s.saslScenario(ctx, "security-sasl-plain", os.Getenv("COMPAT_PLAIN_PASSWORD"), func(password string) sasl.Mechanism {
		return plain.Auth{User: user, Pass: password}.AsMechanism()
	})
}

func (s *suite) securitySaslScram(ctx context.Context) (string, error) {
	user := os.Getenv("COMPAT_SCRAM_USER")
	return "", s.saslScenario(ctx, "security-sasl-scram", os.Getenv("COMPAT_SCRAM_PASSWORD"), func(password string) sasl.Mechanism {
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	})
}

func (s *suite) securityMtls(ctx context.Context) (string, error) {
	bootstrap := os.Getenv("COMPAT_MTLS_BOOTSTRAP")
	withCertificate, err := securedTLS(true)
	if err != nil {
		return "", err
	}
	if err := s.securedRoundtrip(ctx, "security-mtls", bootstrap, kgo.DialTLSConfig(withCertificate)); err != nil {
		return "", err
	}
	without, err := securedTLS(false)
	if err != nil {
		return "", err
	}
	if !refused(ctx, bootstrap, kgo.DialTLSConfig(without)) {
		return "", errors.New("a client without a certificate was accepted")
	}
	return "", nil
}

// securityAcl: an ACL for another principal closes the topic, so the SASL_SSL PLAIN user's
// produce is refused with TOPIC_AUTHORIZATION_FAILED; once ACLs allow that user WRITE and READ
// on the topic, its records go through and come back.
func (s *suite) securityAcl(ctx context.Context) (string, error) {
	const name = "security-acl"
	topic := s.prefix + "-" + name
	bootstrap := os.Getenv("COMPAT_SASL_SSL_BOOTSTRAP")
	user := os.Getenv("COMPAT_PLAIN_USER")
	config, err := securedTLS(false)
	if err != nil {
		return "", err
	}
	security := []kgo.Opt{
		kgo.DialTLSConfig(config),
		kgo.SASL(plain.Auth{User: user, Pass: os.Getenv("COMPAT_PLAIN_PASSWORD")}.AsMechanism()),
	}
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
		return "", err
	}
	// From now on an ACL names the topic: it is closed to everyone it does not allow.
	if err := createTopicACLs(ctx, adm, topic, aclOther, kadm.OpWrite); err != nil {
		return "", err
	}
	refusedCtx, cancel := context.WithTimeout(ctx, aclRefusalWait)
	err = s.produce(refusedCtx, []*kgo.Record{{Topic: topic, Partition: 0, Value: []byte("refused")}},
		slices.Concat([]kgo.Opt{kgo.SeedBrokers(bootstrap)}, security, []kgo.Opt{
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProduceRequestTimeout(aclRefusalWait), kgo.RecordDeliveryTimeout(aclRefusalWait),
		})...)
	cancel()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		return "", fmt.Errorf("produce without WRITE: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := createTopicACLs(ctx, adm, topic, "User:"+user, kadm.OpWrite, kadm.OpRead); err != nil {
		return "", err
	}
	if err := s.securedTransfer(ctx, name, bootstrap, security...); err != nil {
		return "", fmt.Errorf("after the ACLs allowed it: %w", err)
	}
	return "", nil
}

// saslScenario: the round trip over SASL_SSL with the right password, then a refusal with a wrong one.
func (s *suite) saslScenario(ctx context.Context, name, password string, mechanism func(password string) sasl.Mechanism) error {
	bootstrap := os.Getenv("COMPAT_SASL_SSL_BOOTSTRAP")
	config, err := securedTLS(false)
	if err != nil {
		return err
	}
	if err := s.securedRoundtrip(ctx, name, bootstrap, kgo.DialTLSConfig(config), kgo.SASL(mechanism(password))); err != nil {
		return err
	}
	if !refused(ctx, bootstrap, kgo.DialTLSConfig(config), kgo.SASL(mechanism("wrong-"+password))) {
		return errors.New("a wrong password was accepted")
	}
	return nil
}

// securedRoundtrip creates the scenario's topic over the plain listener, then produces
// securedRecords to it and reads them back, both through bootstrap with the security options.
func (s *suite) securedRoundtrip(ctx context.Context, name, bootstrap string, security ...kgo.Opt) error {
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, s.prefix+"-"+name, 1, nil); err != nil {
		return err
	}
	return s.securedTransfer(ctx, name, bootstrap, security...)
}

// securedTransfer produces securedRecords to the scenario's topic (which exists) and reads them
// back from the start, both through bootstrap with the security options.
func (s *suite) securedTransfer(ctx context.Context, name, bootstrap string, security ...kgo.Opt) error {
	topic := s.prefix + "-" + name
	var sent []*kgo.Record
	var want []string
	for i := 0; i < securedRecords; i++ {
		value := fmt.Sprintf("%s %s %d", s.prefix, name, i)
		want = append(want, value)
		sent = append(sent, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(value)})
	}
	// The later SeedBrokers replaces the plain listener that produce and readAll start from.
	secured := append([]kgo.Opt{kgo.SeedBrokers(bootstrap)}, security...)
	if err := s.produce(ctx, sent, slices.Concat(secured, []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
	})...); err != nil {
		return fmt.Errorf("produce over %s: %w", bootstrap, err)
	}
	got, err := s.readAll(ctx, topic, 1, len(want), false, secured...)
	if err != nil {
		return fmt.Errorf("consume over %s: %w", bootstrap, err)
	}
	if got := values(got); !slices.Equal(got, want) {
		return fmt.Errorf("read back %q, want %q", got, want)
	}
	return nil
}

// -- group member -------------------------------------------------------------------------------

// member is one consumer-group member polling in its own goroutine.
type member struct {
	client   *kgo.Client
	mu       sync.Mutex
	owned    map[int32]bool
	seen     map[string]bool
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

func (s *suite) startMember(topic, group, name string) (*member, error) {
	m := &member{owned: map[int32]bool{}, seen: map[string]bool{}, done: make(chan struct{})}
	track := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range parts[topic] {
				if add {
					m.owned[p] = true
				} else {
					delete(m.owned, p)
				}
			}
		}
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(s.bootstrap), kgo.ClientID(s.prefix+"-"+name),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(300*time.Millisecond), kgo.SessionTimeout(10*time.Second),
		kgo.OnPartitionsAssigned(track(true)), kgo.OnPartitionsRevoked(track(false)),
		kgo.OnPartitionsLost(track(false)))
	if err != nil {
		return nil, err
	}
	m.client = client
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fetches := client.PollFetches(ctx)
			m.mu.Lock()
			fetches.EachRecord(func(r *kgo.Record) { m.seen[string(r.Value)] = true })
			m.mu.Unlock()
		}
	}()
	return m, nil
}

func (m *member) assigned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.owned {
		out = append(out, p)
	}
	return out
}

// stop ends polling and closes the client, which leaves the group.
func (m *member) stop() {
	m.stopOnce.Do(func() {
		m.cancel()
		<-m.done
		m.client.Close()
	})
}

// -- helpers ------------------------------------------------------------------------------------

func (s *suite) admin() (*kadm.Client, func()) {
	// kgo answers Metadata requests from a cache younger than MetadataMinAge (5 s by default);
	// a short age lets the topic-deletion check see the broker's answer at once.
	client, err := kgo.NewClient(kgo.SeedBrokers(s.bootstrap), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		panic(err)
	}
	return kadm.NewClient(client), client.Close
}

// securedTLS trusts the run's CA (kgo sets ServerName to the dialed host, 127.0.0.1, which the
// broker's certificate names) and presents the client certificate when asked to.
func securedTLS(withCertificate bool) (*tls.Config, error) {
	caFile := os.Getenv("COMPAT_CA_PEM")
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	config := &tls.Config{RootCAs: pool}
	if withCertificate {
		cert, err := tls.LoadX509KeyPair(os.Getenv("COMPAT_CLIENT_CERT_PEM"), os.Getenv("COMPAT_CLIENT_KEY_PEM"))
		if err != nil {
			return nil, err
		}
		config.Certificates = []tls.Certificate{cert}
	}
	return config, nil
}

// refused: a Metadata request through bootstrap with these options fails within refusalWait; an
// authentication or TLS error counts, and so does no answer at all (kgo retries some failures).
func refused(ctx context.Context, bootstrap string, opts ...kgo.Opt) bool {
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(bootstrap)}, opts...)...)
	if err != nil {
		panic(err) // a bad option, not a refusal
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, refusalWait)
	defer cancel()
	_, err = kadm.NewClient(client).ListBrokers(ctx)
	return err != nil
}

// createTopicACLs allows principal the operations on the topic (literal name, any host) and
// checks every ACL's creation.
func createTopicACLs(ctx context.Context, adm *kadm.Client, topic, principal string, ops ...kadm.ACLOperation) error {
	acls := kadm.NewACLs().Allow(principal).AllowHosts("*").Topics(topic).
		Operations(ops...).ResourcePatternType(kadm.ACLPatternLiteral)
	results, err := adm.CreateACLs(ctx, acls)
	if err != nil {
		return fmt.Errorf("create ACLs for %s: %w", principal, err)
	}
	if len(results) != len(ops) {
		return fmt.Errorf("create ACLs for %s: %d results for %d operations", principal, len(results), len(ops))
	}
	for _, r := range results {
		if r.Err != nil {
			return fmt.Errorf("create ACL %s %s for %s: %w (%s)", r.Operation, r.Name, r.Principal, r.Err, r.ErrMessage)
		}
	}
	return nil
}

func createTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) error {
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, topic)
	if err != nil {
		return err
	}
	return resp.Err
}

func (s *suite) produce(ctx context.Context, recs []*kgo.Record, opts ...kgo.Opt) error {
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.bootstrap)}, opts...)...)
	if err != nil {
		return err
	}
	defer client.Close()
	return client.ProduceSync(ctx, recs...).FirstErr()
}

// readAll reads the first count records of the topic's partitions from the start; extra options
// come last, so they override the defaults.
func (s *suite) readAll(ctx context.Context, topic string, partitions, count int, committed bool, extra ...kgo.Opt) ([]*kgo.Record, error) {
	offsets := map[int32]kgo.Offset{}
	for p := 0; p < partitions; p++ {
		offsets[int32(p)] = kgo.NewOffset().AtStart()
	}
	opts := []kgo.Opt{kgo.SeedBrokers(s.bootstrap), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets})}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	client, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	return pollRecords(ctx, client, count)
}

func pollRecords(ctx context.Context, client *kgo.Client, count int) ([]*kgo.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var got []*kgo.Record
	for len(got) < count {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("received %d of %d records within %s", len(got), count, wait)
		}
		for _, e := range fetches.Errors() {
			return nil, fmt.Errorf("fetch %s[%d]: %w", e.Topic, e.Partition, e.Err)
		}
		got = append(got, fetches.Records()...)
	}
	return got[:count], nil
}

// checkNothingAfter: the partition ends right after the last record read, so nothing was duplicated.
func (s *suite) checkNothingAfter(ctx context.Context, adm *kadm.Client, topic string, last int64) error {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return err
	}
	end, _ := ends.Lookup(topic, 0)
	if end.Err != nil || end.Offset != last+1 {
		return fmt.Errorf("high watermark %d (err %v), but the last expected record is at %d", end.Offset, end.Err, last)
	}
	return nil
}

func topicConfig(ctx context.Context, adm *kadm.Client, topic, name string) (kadm.Config, error) {
	configs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return kadm.Config{}, err
	}
	rc, err := configs.On(topic, nil)
	if err != nil {
		return kadm.Config{}, err
	}
	if rc.Err != nil {
		return kadm.Config{}, rc.Err
	}
	for _, c := range rc.Configs {
		if c.Key == name {
			return c, nil
		}
	}
	return kadm.Config{}, fmt.Errorf("%s not described", name)
}

func sampleRecord(topic string, i int, codec string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("record %d %s", i, strings.Repeat("lorem ipsum dolor sit amet ", 8)))}
	if i%10 != 9 {
		r.Key = []byte("key-" + strconv.Itoa(i%7))
	}
	r.Headers = []kgo.RecordHeader{{Key: "index", Value: []byte(strconv.Itoa(i))}, {Key: "codec", Value: []byte(codec)}}
	if i%3 == 0 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "dup", Value: []byte("a")}, kgo.RecordHeader{Key: "dup", Value: []byte("b")})
	}
	return r
}

func headerList(headers []kgo.RecordHeader) []string {
	var out []string
	for _, h := range headers {
		out = append(out, h.Key+"="+string(h.Value))
	}
	return out
}

func values(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return out
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, prefix+strconv.Itoa(i))
	}
	return out
}

// waitFor polls a condition other goroutines change; there is no single event to await.
func waitFor(ctx context.Context, what string, condition func() bool) error {
	deadline := time.Now().Add(wait)
	for !condition() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("timed out after %s waiting for %s", wait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// franzVersion is the franz-go module version this binary was built with.
func franzVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/twmb/franz-go" {
				return dep.Version
			}
		}
	}
	return "unknown"
}

func mustEnv(name string) string {
	v := os.Getenv(name)
	if v == "" {
		fmt.Fprintf(os.Stderr, "%s is not set (run.py sets it)\n", name)
		os.Exit(2)
	}
	return v
}

// firstCommitError: the request's error, or the first partition's error code in the response.
func firstCommitError(resp *kmsg.OffsetCommitResponse, err error) error {
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}
