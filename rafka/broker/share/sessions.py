"""Share sessions (KIP-932): one per (group, member) on the partitions' leader, remembering the
partitions the member fetches so that later ShareFetch requests only name what changes.

ShareSessionEpoch 0 opens a session (replacing any the member had), -1 closes it; any other
epoch must be the session's next one (SHARE_SESSION_NOT_FOUND without a session,
INVALID_SHARE_SESSION_EPOCH with another epoch), and each accepted request moves it on.
ShareAcknowledge never opens a session (epoch 0 is INVALID_SHARE_SESSION_EPOCH).
"""

from __future__ import annotations

import uuid

from msgspec import Struct, field

from rafka.broker.share.partition_state import AckError
from rafka.protocol.errors import ErrorCode

INITIAL_EPOCH = 0
FINAL_EPOCH = -1
INT32_MAX = 2**31 - 1

TopicPartition = tuple[uuid.UUID, int]


class SessionError(AckError):
    """A request refused as a whole for its share session epoch."""


class ShareSession(Struct):
    group_id: str
    member_id: str
    epoch: int = 1  # the epoch the next request must carry
    partitions: dict[TopicPartition, None] = field(default_factory=dict)  # ordered set

    def advance(self) -> None:
        self.epoch = 1 if self.epoch >= INT32_MAX else self.epoch + 1


class ShareSessions:
    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self.sessions: dict[tuple[str, str], ShareSession] = {}

    def for_fetch(self, group_id: str, member_id: str, epoch: int) -> ShareSession:
        """The session a ShareFetch continues, or the one it opens (epoch 0). A closing
        request (epoch -1) gets its session, still registered: `close` removes it."""
        key = (group_id, member_id)
        if epoch == INITIAL_EPOCH:
            if key not in self.sessions and len(self.sessions) >= self.max_sessions:
                raise SessionError(
                    ErrorCode.share_session_limit_reached, "Too many share sessions."
                )
            session = self.sessions[key] = ShareSession(group_id, member_id)
            return session
        return self._existing(key, epoch)

    def for_acknowledge(self, group_id: str, member_id: str, epoch: int) -> ShareSession:
        if epoch == INITIAL_EPOCH:
            raise SessionError(
                ErrorCode.invalid_share_session_epoch,
                "ShareAcknowledge cannot open a share session.",
            )
        return self._existing((group_id, member_id), epoch)

    def _existing(self, key: tuple[str, str], epoch: int) -> ShareSession:
        session = self.sessions.get(key)
        if session is None:
            raise SessionError(
                ErrorCode.share_session_not_found,
                f"No share session for member {key[1]} of group {key[0]}.",
            )
        if epoch != FINAL_EPOCH:
            if epoch != session.epoch:
                raise SessionError(
                    ErrorCode.invalid_share_session_epoch,
                    f"Share session epoch {epoch}, expected {session.epoch}.",
                )
            session.advance()
        return session

    def close(self, group_id: str, member_id: str) -> ShareSession | None:
        return self.sessions.pop((group_id, member_id), None)
