"""Exceptions of the protocol layer; Kafka's numeric error codes come from kio's ErrorCode."""

from kio.schema.errors import ErrorCode

__all__ = ["ErrorCode", "FrameTooLargeError", "MalformedRequestError", "ProtocolError"]


class ProtocolError(Exception):
    """The peer broke the protocol; the connection must be closed."""


class FrameTooLargeError(ProtocolError):
    """A size prefix above `socket.request.max.bytes` (checked before anything is allocated)."""


class MalformedRequestError(ProtocolError):
    """A request whose header or body cannot be decoded."""
