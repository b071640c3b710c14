// The share-group scenario (KIP-932): two kgo share consumers (kgo.ShareGroup) in one share
// group, and the ledger of what each was delivered and accepted.

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const shareRecords, shareBatch = 200, 10

// shareGroup: what it asserts is in compat-tests/matrix/scenarios.py.
func (s *suite) shareGroup(ctx context.Context) (string, error) {
	topic, group := s.prefix+"-share", s.prefix+"-share"
	adm, closeAdm := s.admin()
	defer closeAdm()
	if err := createTopic(ctx, adm, topic, 1, nil); err != nil {
		return "", err
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(s.bootstrap), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return "", err
	}
	defer producer.Close()
	led := &ledger{deliveries: map[string][]delivery{}, accepted: map[string]int{}}
	first, err := s.startShareMember(topic, group, "first", false, led)
	if err != nil {
		return "", err
	}
	defer first.stop()
	second, err := s.startShareMember(topic, group, "second", true, led)
	if err != nil {
		return "", err
	}
	defer second.stop()
	members := []*shareMember{first, second}

	// The share partition starts at its end offset when a member first fetches it: once each
	// member has a probe, both fetch and nothing produced later is missed.
	probes := 0
	var produceErr error
	if err := waitFor(ctx, "each member to receive a probe record", func() bool {
		if first.probeCount() > 0 && second.probeCount() > 0 {
			return true
		}
		produceErr = producer.ProduceSync(ctx, kgo.StringRecord("probe-"+strconv.Itoa(probes))).FirstErr()
		probes++
		time.Sleep(100 * time.Millisecond)
		return false
	}); err != nil {
		return "", fmt.Errorf("%w (first %d, second %d of %d; last produce error %v)%s", err,
			first.probeCount(), second.probeCount(), probes, produceErr, shareErrors(members))
	}

	want := map[string][]int32{first.clientID: {0}, second.clientID: {0}}
	owned := map[string][]int32{}
	var describeErr error
	if err := waitFor(ctx, "ShareGroupDescribe to show both members assigned the partition", func() bool {
		groups, err := adm.DescribeShareGroups(ctx, group)
		if err == nil {
			err = groups.Error()
		}
		if describeErr = err; err != nil {
			return false
		}
		clear(owned)
		for _, m := range groups[group].Members {
			owned[m.ClientID] = slices.Sorted(maps.Keys(m.Assignment[topic]))
		}
		return maps.EqualFunc(owned, want, slices.Equal)
	}); err != nil {
		return "", fmt.Errorf("%w: shows %v (error %v)", err, owned, describeErr)
	}

	for b := 0; b < shareRecords/shareBatch; b++ {
		var batch []*kgo.Record
		for i := b * shareBatch; i < (b+1)*shareBatch; i++ {
			batch = append(batch, kgo.StringRecord("s-"+strconv.Itoa(i)))
		}
		if err := producer.ProduceSync(ctx, batch...).FirstErr(); err != nil { // one batch of 10
			return "", err
		}
	}
	err = waitFor(ctx, "every record to be accepted", func() bool {
		return led.acceptedValues() == shareRecords || shareFailed(members)
	})
	if err == nil && shareFailed(members) {
		err = errors.New("an acknowledgement failed")
	}
	if err != nil {
		return "", fmt.Errorf("%w: %d of %d accepted%s", err, led.acceptedValues(), shareRecords,
			shareErrors(members))
	}
	delivered := led.count()
	time.Sleep(time.Second)
	if after := led.since(delivered); len(after) > 0 {
		return "", fmt.Errorf("delivered again after all were accepted: %v", after)
	}
	second.stop()
	first.stop()
	return "", led.verify(first, second)
}

func (s *suite) startShareMember(topic, group, name string, releases bool, led *ledger) (*shareMember, error) {
	m := &shareMember{name: name, clientID: s.prefix + "-" + name, releases: releases, ledger: led,
		done: make(chan struct{})}
	client, err := kgo.NewClient(kgo.SeedBrokers(s.bootstrap), kgo.ClientID(m.clientID),
		kgo.ShareGroup(group), kgo.ConsumeTopics(topic), kgo.ShareMaxRecords(shareBatch),
		kgo.ShareAckCallback(func(_ *kgo.Client, results kgo.ShareAckResults) {
			if err := results.Error(); err != nil {
				m.mu.Lock()
				m.ackErr = err
				m.mu.Unlock()
			}
		}))
	if err != nil {
		return nil, err
	}
	m.client = client
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.loop(ctx)
	return m, nil
}

// shareMember is one share consumer polling in its own goroutine, 10 records a fetch. It
// accepts every record, except that a releasing member releases those whose number ends in 3
// on their first delivery. After each poll it flushes its acknowledgements (FlushAcks waits
// for the broker's answers, which ShareAckCallback reports); the acceptances of a flush that
// reported no error are confirmed.
type shareMember struct {
	name, clientID string
	releases       bool
	ledger         *ledger
	client         *kgo.Client
	mu             sync.Mutex
	probes         int
	accepts        int   // confirmed acceptances of the scenario's records
	ackErr         error // the last failed acknowledgement
	fetchErr       error // the last fetch error
	cancel         context.CancelFunc
	done           chan struct{}
	stopOnce       sync.Once
}

func (m *shareMember) loop(ctx context.Context) {
	defer close(m.done)
	for ctx.Err() == nil {
		pollCtx, pollCancel := context.WithTimeout(ctx, 100*time.Millisecond)
		fetches := m.client.PollFetches(pollCtx)
		pollCancel()
		if ctx.Err() != nil {
			return // records polled now are released when the client closes
		}
		for _, e := range fetches.Errors() {
			if e.Err != context.DeadlineExceeded {
				m.mu.Lock()
				m.fetchErr = fmt.Errorf("fetch %s[%d]: %w", e.Topic, e.Partition, e.Err)
				m.mu.Unlock()
			}
		}
		var accepting []string
		records := 0
		fetches.EachRecord(func(r *kgo.Record) {
			records++
			value, count := string(r.Value), r.DeliveryCount()
			status := kgo.AckAccept
			if m.releases && count == 1 && strings.HasPrefix(value, "s-") && strings.HasSuffix(value, "3") {
				status = kgo.AckRelease
			}
			r.Ack(status)
			if strings.HasPrefix(value, "probe-") {
				m.mu.Lock()
				m.probes++
				m.mu.Unlock()
				return
			}
			m.ledger.delivered(value, delivery{m.name, count, status})
			if status == kgo.AckAccept {
				accepting = append(accepting, value)
			}
		})
		if records == 0 {
			continue
		}
		m.mu.Lock()
		before := m.ackErr
		m.mu.Unlock()
		err := m.client.FlushAcks(ctx)
		m.mu.Lock()
		if err == nil && m.ackErr == before {
			m.accepts += len(accepting)
			m.ledger.confirmed(accepting)
		} else if err != nil && ctx.Err() == nil {
			m.ackErr = fmt.Errorf("FlushAcks: %w", err)
		}
		m.mu.Unlock()
	}
}

func (m *shareMember) probeCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.probes
}

// stop ends polling and closes the client, which leaves the share group.
func (m *shareMember) stop() {
	m.stopOnce.Do(func() {
		m.cancel()
		<-m.done
		m.client.Close()
	})
}

// shareFailed: a member's acknowledgement failed, which the scenario cannot recover from.
func shareFailed(members []*shareMember) bool {
	for _, m := range members {
		m.mu.Lock()
		failed := m.ackErr != nil
		m.mu.Unlock()
		if failed {
			return true
		}
	}
	return false
}

func shareErrors(members []*shareMember) string {
	out := ""
	for _, m := range members {
		m.mu.Lock()
		if m.ackErr != nil || m.fetchErr != nil {
			out += fmt.Sprintf("; %s: acknowledgement error %v, fetch error %v", m.name, m.ackErr, m.fetchErr)
		}
		m.mu.Unlock()
	}
	return out
}

// delivery is one delivery of a record to a member, and what the member answered.
type delivery struct {
	member string
	count  int32
	status kgo.AckStatus
}

func (d delivery) String() string { return fmt.Sprintf("%s#%d:%v", d.member, d.count, d.status) }

// ledger holds every delivery of the scenario's records, and the acceptances the broker confirmed.
type ledger struct {
	mu         sync.Mutex
	deliveries map[string][]delivery
	order      []string
	accepted   map[string]int
}

func (l *ledger) delivered(value string, d delivery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deliveries[value] = append(l.deliveries[value], d)
	l.order = append(l.order, value+" "+d.String())
}

func (l *ledger) confirmed(values []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range values {
		l.accepted[v]++
	}
}

func (l *ledger) acceptedValues() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.order)
}

func (l *ledger) since(index int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.order[index:])
}

func (l *ledger) verify(first, second *shareMember) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wrong []string
	released := 0
	for i := 0; i < shareRecords; i++ {
		value := "s-" + strconv.Itoa(i)
		got, accepts := l.deliveries[value], l.accepted[value]
		var right bool
		if len(got) > 0 && got[0].status == kgo.AckRelease {
			released++
			right = len(got) == 2 && got[0].count == 1 && got[0].member == second.name &&
				got[1].count == 2 && got[1].status == kgo.AckAccept
		} else {
			right = len(got) == 1 && got[0].count == 1 && got[0].status == kgo.AckAccept
		}
		if !right || accepts != 1 {
			wrong = append(wrong, fmt.Sprintf("%s=%v accepted %dx", value, got, accepts))
		}
	}
	if len(wrong) > 0 {
		more := ""
		if len(wrong) > 10 {
			more = fmt.Sprintf(" and %d more", len(wrong)-10)
			wrong = wrong[:10]
		}
		return fmt.Errorf("records not delivered and accepted as expected (member#delivery count:answer): %v%s", wrong, more)
	}
	if released == 0 {
		return fmt.Errorf("the second member released no record")
	}
	if first.accepts == 0 || second.accepts == 0 {
		return fmt.Errorf("not both members accepted records: first %d, second %d", first.accepts, second.accepts)
	}
	fmt.Fprintf(os.Stderr, "share-group: first accepted %d, second %d; %d released and redelivered\n",
		first.accepts, second.accepts, released)
	return nil
}
