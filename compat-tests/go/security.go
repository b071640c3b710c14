// The security scenarios over the secured listeners run.py adds to a broker it starts:
// SASL PLAIN and SCRAM over SASL_SSL, mutual TLS, and ACLs.

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
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
