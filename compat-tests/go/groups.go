// The consumer-group scenarios: group-rebalance, commit-resume and consumer-protocol, and the
// group member they run.

package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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

// consumerProtocol: the consumer group protocol (KIP-848) with the broker assigning; what it
// asserts is in compat-tests/matrix/scenarios.py. franz-go speaks it with ServerSideBalancer and
// its default (cooperative sticky) balancer, whose server-side assignor is "uniform"; where the
// broker refuses ConsumerGroupHeartbeat it falls back to a classic group, which
// ConsumerGroupDescribe would then not show.
func (s *suite) consumerProtocol(ctx context.Context) (string, error) {
	topic, group := s.prefix+"-next-gen", s.prefix+"-next-gen"
	const partitions, count = 4, 40
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, partitions, nil); err != nil {
		return "", err
	}
	produceNumbered := func(from, to int) error {
		var sent []*kgo.Record
		for i := from; i < to; i++ {
			sent = append(sent, &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte("n-" + strconv.Itoa(i))})
		}
		return s.produce(ctx, sent, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	if err := produceNumbered(0, count/2); err != nil {
		return "", err
	}
	all := []int32{0, 1, 2, 3}
	owns := func(m *member, want []int32) bool {
		got := m.assigned()
		slices.Sort(got)
		return slices.Equal(got, want)
	}
	first, err := s.startNextGenMember(topic, group, "first")
	if err != nil {
		return "", err
	}
	defer first.stop()
	if err := waitFor(ctx, "the first member to own all 4 partitions", func() bool {
		return owns(first, all)
	}); err != nil {
		return "", err
	}
	second, err := s.startNextGenMember(topic, group, "second")
	if err != nil {
		return "", err
	}
	defer second.stop()
	if err := waitFor(ctx, "the partitions to be split 2/2 between the two members", func() bool {
		a, b := first.assigned(), second.assigned()
		both := append(a, b...)
		slices.Sort(both)
		return len(a) == 2 && len(b) == 2 && slices.Equal(both, all)
	}); err != nil {
		return "", err
	}
	members := map[string]*member{s.prefix + "-first": first, s.prefix + "-second": second}
	var described kadm.DescribedConsumerGroup
	var describeErr error
	if err := waitFor(ctx, "ConsumerGroupDescribe to show the split", func() bool {
		groups, err := adm.DescribeConsumerGroups(ctx, group)
		if err == nil {
			err = groups.Error()
		}
		if describeErr = err; err != nil {
			return false
		}
		described = groups[group]
		owned := map[string][]int32{}
		for _, m := range described.Members {
			if m.MemberType == 0 { // a classic-protocol member in the group: not what is tested
				return false
			}
			owned[m.ClientID] = slices.Sorted(maps.Keys(m.Assignment[topic]))
		}
		reported := map[string][]int32{}
		for id, m := range members {
			parts := m.assigned()
			slices.Sort(parts)
			reported[id] = parts
		}
		return maps.EqualFunc(owned, reported, slices.Equal)
	}); err != nil {
		return "", fmt.Errorf("%w; last described: %+v (error %v)", err, described, describeErr)
	}
	if err := produceNumbered(count/2, count); err != nil {
		return "", err
	}
	if err := waitFor(ctx, "the two members to read all 40 records", func() bool {
		seen := map[string]bool{}
		for _, m := range []*member{first, second} {
			m.mu.Lock()
			maps.Copy(seen, m.seen)
			m.mu.Unlock()
		}
		return len(seen) == count
	}); err != nil {
		return "", err
	}
	second.mu.Lock()
	secondRead := len(second.seen)
	second.mu.Unlock()
	if secondRead == 0 {
		return "", fmt.Errorf("the second member read none of the records produced after the split")
	}
	second.stop()
	if err := waitFor(ctx, "the first member to own all partitions after the second left", func() bool {
		return owns(first, all)
	}); err != nil {
		return "", err
	}
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return "", err
	}
	ends, total := map[int32]int64{}, int64(0)
	listed.Each(func(o kadm.ListedOffset) {
		ends[o.Partition] = o.Offset
		total += o.Offset
	})
	if len(ends) != partitions || total != count {
		return "", fmt.Errorf("end offsets %v", ends)
	}
	committed := map[int32]int64{}
	if err := waitFor(ctx, "the committed offsets to reach the end", func() bool {
		fetched, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		clear(committed)
		fetched.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic && o.Err == nil {
				committed[o.Partition] = o.At
			}
		})
		return maps.Equal(committed, ends)
	}); err != nil {
		return "", fmt.Errorf("%w: committed %v, ends %v; last failed commits: first %v, second %v",
			err, committed, ends, first.lastCommitError(), second.lastCommitError())
	}
	return "", nil
}

// member is one consumer-group member polling in its own goroutine.
type member struct {
	client    *kgo.Client
	mu        sync.Mutex
	owned     map[int32]bool
	seen      map[string]bool
	commitErr error // the last failed commit (consumer protocol), for the report
	cancel    context.CancelFunc
	done      chan struct{}
	stopOnce  sync.Once
}

func (s *suite) startMember(topic, group, name string) (*member, error) {
	return s.startGroupMember(topic, group, name, false,
		kgo.HeartbeatInterval(300*time.Millisecond), kgo.SessionTimeout(10*time.Second))
}

// startNextGenMember starts a member of a consumer-protocol group (KIP-848): the broker assigns
// and sets the session timeout and heartbeat interval. It commits what it read after every poll.
func (s *suite) startNextGenMember(topic, group, name string) (*member, error) {
	return s.startGroupMember(topic, group, name, true, kgo.ServerSideBalancer())
}

func (s *suite) startGroupMember(topic, group, name string, commit bool, opts ...kgo.Opt) (*member, error) {
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
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.bootstrap), kgo.ClientID(s.prefix + "-" + name),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(track(true)), kgo.OnPartitionsRevoked(track(false)),
		kgo.OnPartitionsLost(track(false))}, opts...)...)
	if err != nil {
		return nil, err
	}
	m.client = client
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		uncommitted := false
		for ctx.Err() == nil {
			pollCtx, pollCancel := context.WithTimeout(ctx, 100*time.Millisecond)
			fetches := client.PollFetches(pollCtx)
			pollCancel()
			m.mu.Lock()
			fetches.EachRecord(func(r *kgo.Record) {
				m.seen[string(r.Value)] = true
				uncommitted = commit
			})
			m.mu.Unlock()
			if uncommitted && ctx.Err() == nil {
				// A failed commit is tried again after the next poll.
				err := client.CommitUncommittedOffsets(ctx)
				m.mu.Lock()
				if err != nil {
					m.commitErr = err
				} else {
					uncommitted = false
				}
				m.mu.Unlock()
			}
		}
	}()
	return m, nil
}

func (m *member) lastCommitError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.commitErr
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
