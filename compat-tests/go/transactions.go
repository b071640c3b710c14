// The transaction scenarios: transactions and txn-pipeline.

package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// txn-pipeline: transactions of txnPipelinePerPartition records to each of txnPipelinePartitions.
const (
	txnPipelinePartitions   = 8
	txnPipelineTransactions = 20
	txnPipelinePerPartition = 20
	txnPipelineBatchBytes   = 1024
)

// About 4 records fill a batch of txnPipelineBatchBytes.
var txnPipelinePadding = strings.Repeat("pipelined ", 20)

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

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, prefix+strconv.Itoa(i))
	}
	return out
}
