// The franz-go compatibility suite: each scenario listed in compat-tests/matrix/scenarios.py as
// a small application with assertions, one JSON line per scenario on stdout. Configuration comes
// from the environment (COMPAT_BOOTSTRAP, COMPAT_PREFIX, COMPAT_SKIP, COMPAT_ONLY) as run.py
// sets it; the security scenarios also read the secured listeners, CA, client certificate and
// credentials run.py adds when it starts the broker itself (compat-tests/matrix/security.py).
// This file is the runner and the scenario table; the scenarios are in produce.go, groups.go,
// share.go, admin.go, transactions.go and security.go, what they share in client.go.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

const (
	records         = 100
	wait            = 30 * time.Second
	scenarioTimeout = 60 * time.Second
)

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
		scenario{"consumer-protocol", s.consumerProtocol},
		scenario{"share-group", s.shareGroup},
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
