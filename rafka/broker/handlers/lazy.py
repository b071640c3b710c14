"""The handler modules imported at their first request, with the coordinators they drive: the
group, transaction and share coordinators are a third of the broker's imports, which a broker
serving only produce and fetch never needs (apis.py registers their handlers lazily)."""

from __future__ import annotations

from types import ModuleType


def groups() -> ModuleType:
    from rafka.broker.handlers import groups

    return groups


def offsets_commit() -> ModuleType:
    from rafka.broker.handlers import offsets_commit

    return offsets_commit


def consumer_groups() -> ModuleType:
    from rafka.broker.handlers import consumer_groups

    return consumer_groups


def txn() -> ModuleType:
    from rafka.broker.handlers import txn

    return txn
