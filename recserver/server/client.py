"""A small client of the Recommender service, and the TLS/token options of the client commands.

``RecommendClient`` calls a running server; ``add_connection_args`` + ``client_from_args`` give
every client command (``recommend`` and the operator commands) the same TLS and token options.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import grpc

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server.auth import bearer_metadata
from recserver.server.tls import channel_credentials

#: The environment variable the CLI reads the bearer token from (never a command-line flag,
#: which other users could read in the process list).
TOKEN_ENV = "RECSERVER_TOKEN"

DEFAULT_TARGET = "127.0.0.1:50051"



#: A node refuses a Recommend at once (RESOURCE_EXHAUSTED, nothing computed) while its event loop
#: runs late, and says to retry after a short backoff: this client does, a few times (gRPC's
#: retry policy; round_robin sends the retry to the next worker).
RETRY_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [{
    "name": [{"service": "recserver.v1.Recommender", "method": "Recommend"}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.2s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["RESOURCE_EXHAUSTED"]},
}]})

class RecommendClient:
    """A channel and stub to one server; use as a context manager to close the channel."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        tls: bool = False,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        token: str | None = None,
        server_name: str | None = None,
    ) -> None:
        """Plaintext by default; ``tls`` (implied by ``ca_file`` or a client cert) dials TLS,
        trusting ``ca_file`` (else the system roots). ``token`` is sent as a bearer token on
        every call; ``server_name`` overrides the name the server's certificate is checked for."""
        self.target = target
        # A target naming several addresses (a node's worker ports) gets every call spread
        # over them; one address is one address either way.
        options = [("grpc.lb_policy_name", "round_robin"), ("grpc.service_config", RETRY_CONFIG)]
        if tls or ca_file is not None or cert_file is not None:
            if server_name is not None:
                options.append(("grpc.ssl_target_name_override", server_name))
            self._channel = grpc.secure_channel(
                target, channel_credentials(ca_file, cert_file, key_file), options=options
            )
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._metadata = None if token is None else bearer_metadata(token)
        self._stub = pb_grpc.RecommenderStub(self._channel)

    def recommend(
        self,
        user_id: str,
        surface: str,
        *,
        k: int = 0,
        context_item_ids: Sequence[str] = (),
        exclude_item_ids: Sequence[str] = (),
        budget_ms: float | None = None,
        request_id: str = "",
        debug: bool = False,
        timeout_s: float | None = None,
        categories: Sequence[str] = (),
    ) -> pb.RecommendResponse:
        """One Recommend call; raises ``grpc.RpcError`` on a non-OK status."""
        request = pb.RecommendRequest(
            user_id=user_id,
            surface=surface,
            k=k,
            context_item_ids=list(context_item_ids),
            exclude_item_ids=list(exclude_item_ids),
            request_id=request_id,
            debug=debug,
            categories=list(categories),
        )
        if budget_ms is not None:  # leave it unset otherwise: unset means the surface's budget
            request.budget_ms = budget_ms
        response: pb.RecommendResponse = self._stub.Recommend(
            request, timeout=timeout_s, metadata=self._metadata
        )
        return response

    def update_items(self, items: Sequence[pb.ItemInfo], *, request_id: str = "",
                     timeout_s: float | None = None) -> pb.UpdateItemsResponse:
        """One UpdateItems call; raises ``grpc.RpcError`` on a non-OK status."""
        response: pb.UpdateItemsResponse = self._stub.UpdateItems(
            pb.UpdateItemsRequest(items=list(items), request_id=request_id), timeout=timeout_s,
            metadata=self._metadata)
        return response

    def call(self, method: str, request: object, *, timeout_s: float | None = None) -> object:
        """Any other RPC of the service by name (``"DeleteUser"``), with the token; raises
        ``grpc.RpcError`` on a non-OK status."""
        response: object = getattr(self._stub, method)(request, timeout=timeout_s,
                                                       metadata=self._metadata)
        return response

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RecommendClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """TLS and token options of the client commands."""
    parser.add_argument("--tls", action="store_true", help="dial TLS (system root CAs)")
    parser.add_argument("--ca", type=Path, help="PEM CA of the server cert (implies --tls)")
    parser.add_argument("--cert", type=Path, help="client certificate, for mutual TLS")
    parser.add_argument("--key", type=Path, help="client private key, for mutual TLS")
    parser.add_argument("--server-name", help="name to check the server certificate against")
    parser.add_argument(
        "--token-file", type=Path, help=f"file holding the bearer token (else ${TOKEN_ENV})"
    )


def client_from_args(args: argparse.Namespace) -> RecommendClient:
    """A client for ``--target`` with the TLS and token options of :func:`add_connection_args`."""
    token_file = getattr(args, "token_file", None)
    if token_file is not None:
        try:
            token: str | None = Path(token_file).read_text().strip()
        except OSError as exc:
            raise ValueError(f"--token-file {token_file}: cannot read it ({exc.strerror})"
                             ) from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip() or None
    return RecommendClient(
        args.target, tls=getattr(args, "tls", False), ca_file=getattr(args, "ca", None),
        cert_file=getattr(args, "cert", None), key_file=getattr(args, "key", None), token=token,
        server_name=getattr(args, "server_name", None),
    )
