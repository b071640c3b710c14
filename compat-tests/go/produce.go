// The metadata, produce-consume-<codec> and idempotent-produce scenarios.

package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

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
