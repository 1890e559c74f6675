"""Typed domain errors; the gRPC layer maps each to one status code in a single interceptor."""

from __future__ import annotations


class RecServerError(Exception):
    """Base of every error the domain raises on purpose; the message is safe to show clients."""


class InvalidArgument(RecServerError):
    """The request is malformed; the message says what to fix (INVALID_ARGUMENT)."""


class FailedPrecondition(RecServerError):
    """The server is not set up for this call (e.g. ingest is off); retrying will not help
    until it is reconfigured (FAILED_PRECONDITION)."""


class Unavailable(RecServerError):
    """The server cannot answer now (not loaded yet, shutting down, log down) (UNAVAILABLE)."""


class ResourceExhausted(RecServerError):
    """Overloaded beyond what even the fallback can absorb (RESOURCE_EXHAUSTED)."""


class Unauthenticated(RecServerError):
    """Missing or wrong credentials (UNAUTHENTICATED)."""


#: Why a call was refused at the door with ``ResourceExhausted`` (the refusal counter's labels).
REFUSAL_REASONS: tuple[str, ...] = ("queue_full", "queue_slow")
