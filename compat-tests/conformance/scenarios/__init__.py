"""The scenarios, in running order; each is `run(ctx)` recording its steps on ctx."""

from __future__ import annotations

from collections.abc import Callable

from context import Context

from . import (
    admin,
    classic,
    cluster_admin,
    compacted,
    consumer_errors,
    delete_records,
    errors,
    fetch_sessions,
    groups,
    member_epochs,
    producers,
    records,
    restart,
    share,
    static,
    topics,
    transactions,
)

SCENARIOS: dict[str, Callable[[Context], None]] = {
    "restart": restart.run,
    "delete-records": delete_records.run,
    "groups": groups.run,
    "transactions": transactions.run,
    "errors": errors.run,
    "compacted": compacted.run,
    "member-epochs": member_epochs.run,
    "admin": admin.run,
    "classic": classic.run,
    "records": records.run,
    "producers": producers.run,
    "consumer-errors": consumer_errors.run,
    "share": share.run,
    "topics": topics.run,
    "fetch-sessions": fetch_sessions.run,
    "cluster-admin": cluster_admin.run,
    "static": static.run,
}
