// What the scenarios share: clients for the plain listener, topic creation, produce and read-back.

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func (s *suite) admin() (*kadm.Client, func()) {
	// kgo answers Metadata requests from a cache younger than MetadataMinAge (5 s by default);
	// a short age lets the topic-deletion check see the broker's answer at once.
	client, err := kgo.NewClient(kgo.SeedBrokers(s.bootstrap), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		panic(err)
	}
	return kadm.NewClient(client), client.Close
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

func values(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
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
