"""(p) The cluster's admin requests a tool sends before it changes anything: DescribeCluster,
DescribeLogDirs, partition reassignments, moving a replica to a log dir that does not exist,
SCRAM credentials, client quotas, the legacy AlterConfigs, ACLs on a broker without an
authorizer, and DescribeQuorum; with the refusals a mistyped command gets."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

import raw
from context import Context
from kio.schema.alter_configs.v2 import request as alter_configs_req
from kio.schema.alter_configs.v2.response import AlterConfigsResponse
from kio.schema.alter_partition_reassignments.v0 import request as reassign_req
from kio.schema.alter_partition_reassignments.v0.response import (
    AlterPartitionReassignmentsResponse,
)
from kio.schema.alter_replica_log_dirs.v2 import request as move_req
from kio.schema.alter_replica_log_dirs.v2.response import AlterReplicaLogDirsResponse
from kio.schema.alter_user_scram_credentials.v0 import request as scram_alter_req
from kio.schema.alter_user_scram_credentials.v0.response import (
    AlterUserScramCredentialsResponse,
)
from kio.schema.create_acls.v3 import request as create_acls_req
from kio.schema.create_acls.v3.response import CreateAclsResponse
from kio.schema.delete_acls.v3 import request as delete_acls_req
from kio.schema.delete_acls.v3.response import DeleteAclsResponse
from kio.schema.describe_acls.v3.request import DescribeAclsRequest
from kio.schema.describe_acls.v3.response import DescribeAclsResponse
from kio.schema.describe_client_quotas.v1.request import DescribeClientQuotasRequest
from kio.schema.describe_client_quotas.v1.response import DescribeClientQuotasResponse
from kio.schema.describe_cluster.v1.request import DescribeClusterRequest
from kio.schema.describe_cluster.v1.response import DescribeClusterResponse
from kio.schema.describe_log_dirs.v4 import request as log_dirs_req
from kio.schema.describe_log_dirs.v4.response import DescribeLogDirsResponse
from kio.schema.describe_quorum.v2 import request as quorum_req
from kio.schema.describe_quorum.v2.response import DescribeQuorumResponse
from kio.schema.describe_user_scram_credentials.v0 import request as scram_describe_req
from kio.schema.describe_user_scram_credentials.v0.response import (
    DescribeUserScramCredentialsResponse,
)
from kio.schema.list_partition_reassignments.v0 import request as list_reassign_req
from kio.schema.list_partition_reassignments.v0.response import (
    ListPartitionReassignmentsResponse,
)

TOPIC = "cluster-admin"
TIMEOUT = timedelta(seconds=10)
SHA256, SHA512, UNKNOWN_MECHANISM = 1, 2, 0
TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4
ACL_TOPIC, ACL_LITERAL, ACL_READ, ACL_ALLOW, ACL_ANY = 2, 3, 3, 3, 1


def run(ctx: Context) -> None:
    b = ctx.bootstrap
    ctx.record("create", raw.create_topic(b, TOPIC, 2))
    raw.await_partitions(b, TOPIC, 2)
    ctx.record("produce", raw.produce(b, TOPIC, 0, raw.batch([(None, b"x" * 100)], ctx.base_ts)))
    _cluster(ctx, b)
    _log_dirs(ctx, b)
    _reassignments(ctx, b)
    _scram(ctx, b)
    _quotas_and_configs(ctx, b)
    _acls(ctx, b)
    _quorum(ctx, b)


def _cluster(ctx: Context, b: str) -> None:
    for name, include, endpoint in (("DescribeCluster", True, 1),
                                    ("DescribeCluster of the controllers", False, 2)):
        answer = raw.request(b, DescribeClusterRequest(
            include_cluster_authorized_operations=include, endpoint_type=endpoint),
            DescribeClusterResponse)
        ctx.record(name, {
            "error_code": answer.error_code, "endpoint_type": answer.endpoint_type,
            "brokers": len(answer.brokers),
            "controller is a broker": answer.controller_id in {n.broker_id for n in answer.brokers},
            "authorized_operations": answer.cluster_authorized_operations,
        })


def _log_dirs(ctx: Context, b: str) -> None:
    def describe(topics: Any) -> Any:
        answer = raw.request(b, log_dirs_req.DescribeLogDirsRequest(topics=topics),
                             DescribeLogDirsResponse)
        return {
            "error_code": answer.error_code,
            "dirs": [(d.error_code, sorted(
                (t.name, p.partition_index, p.partition_size, p.offset_lag, p.is_future_key)
                for t in d.topics if t.name == TOPIC for p in t.partitions))
                for d in answer.results],
        }

    ctx.record("DescribeLogDirs of every topic (this one's partitions)", describe(None))
    ctx.record("DescribeLogDirs of one partition", describe(
        (log_dirs_req.DescribableLogDirTopic(topic=TOPIC, partitions=(1,)),)))
    ctx.record("DescribeLogDirs of an unknown topic", describe(
        (log_dirs_req.DescribableLogDirTopic(topic="no-such-topic", partitions=(0,)),)))
    answer = raw.request(b, move_req.AlterReplicaLogDirsRequest(dirs=(move_req.AlterReplicaLogDir(
        path="/no/such/dir", topics=(move_req.AlterReplicaLogDirTopic(
            name=TOPIC, partitions=(0,)),)),)), AlterReplicaLogDirsResponse)
    ctx.record("AlterReplicaLogDirs to a directory that is not a log dir",
               [(t.topic_name, p.partition_index, p.error_code)
                for t in answer.results for p in t.partitions])


def _reassignments(ctx: Context, b: str) -> None:
    def listed(topics: Any) -> Any:
        answer = raw.request(b, list_reassign_req.ListPartitionReassignmentsRequest(
            timeout=TIMEOUT, topics=topics), ListPartitionReassignmentsResponse)
        return {"error_code": answer.error_code,
                "topics": [(t.name, len(t.partitions)) for t in answer.topics]}

    ctx.record("ListPartitionReassignments", listed(None))
    ctx.record("ListPartitionReassignments of an unknown topic", listed(
        (list_reassign_req.ListPartitionReassignmentsTopics(
            name="no-such-topic", partition_indexes=(0,)),)))

    def alter(name: str, partition: int, replicas: tuple[int, ...] | None) -> Any:
        answer = raw.request(b, reassign_req.AlterPartitionReassignmentsRequest(
            timeout=TIMEOUT, topics=(reassign_req.ReassignableTopic(
                name=name, partitions=(reassign_req.ReassignablePartition(
                    partition_index=partition, replicas=replicas),)),)),
            AlterPartitionReassignmentsResponse)
        return {"error_code": answer.error_code,
                "partitions": [(p.partition_index, p.error_code)
                               for t in answer.responses for p in t.partitions]}

    ctx.record("reassign to a broker that does not exist", alter(TOPIC, 0, (99,)))
    ctx.record("reassign to no replica", alter(TOPIC, 0, ()))
    ctx.record("reassign to one broker twice", alter(TOPIC, 0, (99, 99)))
    ctx.record("reassign a partition that does not exist", alter(TOPIC, 7, (99,)))
    ctx.record("reassign an unknown topic", alter("no-such-topic", 0, (99,)))
    ctx.record("cancel a reassignment that is not there", alter(TOPIC, 0, None))


def _scram(ctx: Context, b: str) -> None:
    def describe(users: list[str] | None) -> Any:
        body = scram_describe_req.DescribeUserScramCredentialsRequest(
            users=None if users is None else tuple(
                scram_describe_req.UserName(name=u) for u in users))
        answer = raw.request(b, body, DescribeUserScramCredentialsResponse)
        return {"error_code": answer.error_code,
                "results": [(r.user, r.error_code,
                             sorted((c.mechanism, c.iterations) for c in r.credential_infos))
                            for r in answer.results]}

    def upsert(user: str, mechanism: int = SHA256, iterations: int = 4096,
               salt: bytes = b"salt") -> Any:
        digest = "sha512" if mechanism == SHA512 else "sha256"
        salted = hashlib.pbkdf2_hmac(digest, b"secret", salt, max(iterations, 1))
        return scram_alter_req.ScramCredentialUpsertion(
            name=user, mechanism=mechanism, iterations=iterations, salt=salt,
            salted_password=hmac.new(salted, b"", digest).digest())

    def alter(deletions: tuple = (), upsertions: tuple = ()) -> Any:
        answer = raw.request(b, scram_alter_req.AlterUserScramCredentialsRequest(
            deletions=deletions, upsertions=upsertions), AlterUserScramCredentialsResponse)
        # Kafka lists the results from hash maps (successes, then refusals): sorted here.
        return sorted((r.user, r.error_code) for r in answer.results)

    def delete(user: str, mechanism: int = SHA256) -> Any:
        return scram_alter_req.ScramCredentialDeletion(name=user, mechanism=mechanism)

    ctx.record("DescribeUserScramCredentials of everyone, none yet", describe(None))
    ctx.record("DescribeUserScramCredentials of an unknown user", describe(["nobody"]))
    ctx.record("DescribeUserScramCredentials naming a user twice", describe(["al", "al"]))
    ctx.record("upsert with too few iterations", alter(upsertions=(upsert("al", iterations=10),)))
    ctx.record("upsert with too many iterations",
               alter(upsertions=(upsert("al", iterations=16385),)))
    ctx.record("upsert an unknown mechanism",
               alter(upsertions=(upsert("al", UNKNOWN_MECHANISM),)))
    ctx.record("upsert an empty user name", alter(upsertions=(upsert(""),)))
    ctx.record("upsert and delete one user in one request",
               alter(deletions=(delete("al"),), upsertions=(upsert("al"),)))
    ctx.record("delete a credential that does not exist", alter(deletions=(delete("nobody"),)))
    ctx.record("upsert two mechanisms", alter(upsertions=(upsert("al"), upsert("al", SHA512))))
    ctx.record("upsert another user", alter(upsertions=(upsert("bo", iterations=8192),)))
    # Kafka's brokers learn of credentials from the controller after it answers the alter:
    # wait (at most 5 s) for the describe to show the change, as the next steps do.
    ctx.record("DescribeUserScramCredentials after the upserts",
               raw.settled(lambda: describe(None), lambda d: len(d["results"]) == 1))
    ctx.record("delete one mechanism", alter(deletions=(delete("al", SHA512),)))
    ctx.record("DescribeUserScramCredentials of the user", describe(["al", "nobody"]))
    ctx.record("delete the rest", alter(deletions=(delete("al"), delete("bo"))))
    ctx.record("DescribeUserScramCredentials at the end",
               raw.settled(lambda: describe(None), lambda d: not d["results"]))


def _quotas_and_configs(ctx: Context, b: str) -> None:
    answer = raw.request(b, DescribeClientQuotasRequest(components=(), strict=False),
                         DescribeClientQuotasResponse)
    ctx.record("DescribeClientQuotas, none set", (answer.error_code, answer.entries))

    def alter(resource_type: int, name: str, configs: dict[str, str],
              validate_only: bool = False) -> Any:
        answer = raw.request(b, alter_configs_req.AlterConfigsRequest(
            resources=(alter_configs_req.AlterConfigsResource(
                resource_type=resource_type, resource_name=name, configs=tuple(
                    alter_configs_req.AlterableConfig(name=k, value=v)
                    for k, v in configs.items())),),
            validate_only=validate_only), AlterConfigsResponse)
        return [r.error_code for r in answer.responses]

    ctx.record("AlterConfigs (legacy) of a topic",
               alter(TOPIC_RESOURCE, TOPIC, {"retention.ms": "3600000"}))
    ctx.record("AlterConfigs with a value that is not a number",
               alter(TOPIC_RESOURCE, TOPIC, {"retention.ms": "an hour"}))
    ctx.record("AlterConfigs with an unknown key",
               alter(TOPIC_RESOURCE, TOPIC, {"no.such.config": "1"}))
    ctx.record("AlterConfigs of an unknown topic",
               alter(TOPIC_RESOURCE, "no-such-topic", {"retention.ms": "1"}))
    ctx.record("AlterConfigs validate-only",
               alter(TOPIC_RESOURCE, TOPIC, {"cleanup.policy": "compact"}, validate_only=True))
    ctx.record("AlterConfigs of the broker with a static key",
               alter(BROKER_RESOURCE, "", {"log.dirs": "/tmp"}))


def _acls(ctx: Context, b: str) -> None:
    create = raw.request(b, create_acls_req.CreateAclsRequest(creations=(
        create_acls_req.AclCreation(
            resource_type=ACL_TOPIC, resource_name=TOPIC, resource_pattern_type=ACL_LITERAL,
            principal="User:al", host="*", operation=ACL_READ, permission_type=ACL_ALLOW),)),
        CreateAclsResponse)
    ctx.record("CreateAcls without an authorizer", [r.error_code for r in create.results])
    describe = raw.request(b, DescribeAclsRequest(
        resource_type_filter=ACL_ANY, resource_name_filter=None, pattern_type_filter=ACL_ANY,
        principal_filter=None, host_filter=None, operation=ACL_ANY, permission_type=ACL_ANY),
        DescribeAclsResponse)
    ctx.record("DescribeAcls without an authorizer", (describe.error_code, describe.resources))
    delete = raw.request(b, delete_acls_req.DeleteAclsRequest(filters=(
        delete_acls_req.DeleteAclsFilter(
            resource_type_filter=ACL_ANY, resource_name_filter=None, pattern_type_filter=ACL_ANY,
            principal_filter=None, host_filter=None, operation=ACL_ANY,
            permission_type=ACL_ANY),)), DeleteAclsResponse)
    ctx.record("DeleteAcls without an authorizer",
               [(r.error_code, len(r.matching_acls)) for r in delete.filter_results])


def _quorum(ctx: Context, b: str) -> None:
    def describe(topic: str, *partitions: int) -> Any:
        answer = raw.request(b, quorum_req.DescribeQuorumRequest(topics=(quorum_req.TopicData(
            topic_name=topic, partitions=tuple(quorum_req.PartitionData(partition_index=p)
                                               for p in partitions)),)), DescribeQuorumResponse)
        return {
            "error_code": answer.error_code,
            "partitions": [(t.topic_name, p.partition_index, p.error_code,
                            p.leader_id in {v.replica_id for v in p.current_voters},
                            len(p.current_voters), len(p.observers),
                            p.high_watermark > 0 if p.error_code == 0 else p.high_watermark)
                           for t in answer.topics for p in t.partitions],
            # Not "nodes" (the voters' controller listeners): a single rafka node has none.
        }

    ctx.record("DescribeQuorum", describe("__cluster_metadata", 0))
    ctx.record("DescribeQuorum of another partition", describe("__cluster_metadata", 1))
    ctx.record("DescribeQuorum of a data topic", describe(TOPIC, 0))
    ctx.record("DescribeQuorum of the metadata partition and another",
               describe("__cluster_metadata", 0, 1))
