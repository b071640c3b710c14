// The consumer-group scenarios: group-rebalance and commit-resume, and the group member they run.

package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

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
