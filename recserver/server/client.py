"""A small client of the Recommender service, and the ``recommend`` / ``check-config`` commands.

``recserver recommend --user U --surface S`` prints the answer as a table for a person at a
terminal; ``recserver check-config FILE`` validates a config file without starting anything.
The lead wires ``add_*_args`` / ``cmd_*`` into ``recserver/cli.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import grpc

from recserver.config import ConfigError, load_config
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server.auth import bearer_metadata
from recserver.server.tls import channel_credentials

#: The environment variable the CLI reads the bearer token from (never a command-line flag,
#: which other users could read in the process list).
TOKEN_ENV = "RECSERVER_TOKEN"

DEFAULT_TARGET = "127.0.0.1:50051"
_STAGE_ORDER = {
    name: i for i, name in enumerate(("queue", "admit", "seeds", "walk", "fallback", "rank"))
}


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
        if tls or ca_file is not None or cert_file is not None:
            options = [] if server_name is None else [
                ("grpc.ssl_target_name_override", server_name)]
            self._channel = grpc.secure_channel(
                target, channel_credentials(ca_file, cert_file, key_file), options=options
            )
        else:
            self._channel = grpc.insecure_channel(target)
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
        )
        if budget_ms is not None:  # leave it unset otherwise: unset means the surface's budget
            request.budget_ms = budget_ms
        response: pb.RecommendResponse = self._stub.Recommend(
            request, timeout=timeout_s, metadata=self._metadata
        )
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


def _source_name(value: int) -> str:
    return pb.Source.Name(value).lower()  # type: ignore[arg-type]  # int is a valid enum value


def budget_line(resp: pb.RecommendResponse, asked_ms: float | None = None) -> str:
    """How long the answer took, of what budget, and which limit set that budget."""
    line = f"time       {resp.server_elapsed_ms:.2f} ms of a {resp.budget_ms:.1f} ms budget"
    limit = resp.budget_limited_by or "surface"
    if asked_ms is not None and asked_ms > resp.budget_ms and limit == "surface":
        return line + f" (the surface's; the asked {asked_ms:g} ms can only lower it)"
    return line + f" (set by the {limit})"


def format_table(resp: pb.RecommendResponse, asked_budget_ms: float | None = None) -> str:
    """The answer as a readable table, then a footer on how it was produced.

    ``asked_budget_ms``: the request's ``budget_ms``, to say when the surface's budget was used
    instead of a larger one.
    """
    width = max([len("item"), *(len(item.item_id) for item in resp.items)])
    lines = [f"{'rank':>4}  {'item':<{width}}  {'score':>10}  source"]
    for rank, item in enumerate(resp.items, start=1):
        lines.append(
            f"{rank:>4}  {item.item_id:<{width}}  {item.score:>10.4g}  {_source_name(item.source)}"
        )
    if not resp.items:
        lines.append("   (no items)")
    reasons = ", ".join(resp.degraded_reasons) or "-"
    lines += [
        "",
        f"source     {_source_name(resp.source)}" + ("  (degraded)" if resp.degraded else ""),
        f"reasons    {reasons}",
        f"coverage   {resp.coverage:.1%}  ({resp.steps_done:,} of {resp.steps_planned:,} steps)",
        budget_line(resp, asked_budget_ms),
        f"snapshot   version {resp.snapshot_version}",
        f"request    {resp.request_id or '-'}",
    ]
    if resp.stage_ms:
        # Proto maps are unordered: show the pipeline's stages in request order, others after.
        names = sorted(resp.stage_ms, key=lambda n: (_STAGE_ORDER.get(n, len(_STAGE_ORDER)), n))
        stages = "  ".join(f"{name} {resp.stage_ms[name]:.2f}" for name in names)
        lines.append(f"stages ms  {stages}")
    return "\n".join(lines)


def add_recommend_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recserver recommend``."""
    parser.add_argument("--user", default="",
                        help="user id (default: none, which needs --context)")
    parser.add_argument("--surface", required=True, help="surface, e.g. home, item_page, search")
    parser.add_argument("--k", type=int, default=0, help="items wanted (0: surface default)")
    parser.add_argument("--context", nargs="*", default=[], metavar="ID",
                        help="items the user is looking at now (default: none)")
    parser.add_argument("--exclude", nargs="*", default=[], metavar="ID",
                        help="items never to recommend (default: none)")
    parser.add_argument(
        "--budget-ms", type=float, default=None,
        help="lower the surface's budget to this many ms; a larger value runs under the "
             "surface's budget and the answer says so (default: the surface's)",
    )
    parser.add_argument("--target", default=DEFAULT_TARGET,
                        help=f"server host:port (default {DEFAULT_TARGET})")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="client deadline in seconds (default 5)")
    parser.add_argument("--debug", action="store_true", help="show stage timings")
    add_connection_args(parser)


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


def cmd_recommend(args: argparse.Namespace) -> int:
    """Call the server and print the table; 2 for a bad request, 1 for other RPC failures."""
    with client_from_args(args) as client:
        try:
            resp = client.recommend(
                args.user,
                args.surface,
                k=args.k,
                context_item_ids=args.context,
                exclude_item_ids=args.exclude,
                budget_ms=args.budget_ms,
                request_id=uuid.uuid4().hex[:16],
                debug=args.debug,
                timeout_s=args.timeout,
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            print(f"recserver: {code.name}: {details}", file=sys.stderr)
            return 2 if code == grpc.StatusCode.INVALID_ARGUMENT else 1
    print(format_table(resp, args.budget_ms))
    return 0


def add_check_config_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recserver check-config``."""
    parser.add_argument("file", type=Path, metavar="FILE", help="YAML config file to validate")


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file: 0 and a summary when valid, 2 and the problems when not."""
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    names = ", ".join(config.surfaces)
    print(f"OK: {len(config.surfaces)} surfaces ({names})")
    return 0
