// The admin scenarios: admin-topics and admin-configs.

package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

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
