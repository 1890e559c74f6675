"""Access control and limits: TLS, mutual TLS, the bearer token, secrets never shown.

Certificates are made at test time with the ``openssl`` command (a throwaway CA, a server
certificate for localhost/127.0.0.1, a client certificate). In-process nodes (a builder and a
worker, ``tests.node_harness``) on free loopback ports are called over gRPC; no test depends on
the machine's speed.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recserver.cli.recommend import add_arguments as add_recommend_args
from recserver.cli.recommend import run as cmd_recommend
from recserver.config import ConfigError, load_config
from recserver.core.errors import Unauthenticated
from recserver.eventlog.registry import choose, describe
from recserver.ingest.config import IngestConfig
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server.auth import AuthInterceptor, bearer_metadata, protected_methods
from recserver.server.client import RecommendClient
from recserver.server.tls import channel_credentials
from tests.node_harness import DataSource, InProcessNode
from tests.server_fixtures import KNOWN_USER, SYNTHETIC_SIZE, config_document, write_config

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

TOKEN = "t0k3n-" + "a1b2c3d4e5f6a7b8c9d0"
CALL_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting it must fail


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(folder: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={name}", cwd=folder)


def _signed(folder: Path, name: str, ext: str) -> None:
    (folder / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
             cwd=folder)


def make_certs(folder: Path) -> Certs:
    folder.mkdir(parents=True, exist_ok=True)
    _ca(folder, "ca")
    _ca(folder, "other")
    _signed(folder, "server", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
            "extendedKeyUsage=serverAuth\n")
    _signed(folder, "client", "extendedKeyUsage=clientAuth\n")
    return Certs(folder / "ca.pem", folder / "server.pem", folder / "server.key",
                 folder / "client.pem", folder / "client.key", folder / "other.pem")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def _start(root: Path, server: dict[str, Any]) -> InProcessNode:
    doc = config_document()
    doc["server"].update(server)
    path = write_config(root / "config.yaml", doc)
    app = InProcessNode(path, root)
    try:
        app.start(DataSource(synthetic=SYNTHETIC_SIZE))
    except BaseException:
        app.stop(grace=0.5)
        raise
    return app


@pytest.fixture(scope="module")
def tls_app(
    certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessNode]:
    """TLS (no client certs), a token from a file for writes and admin; Recommend open."""
    root = tmp_path_factory.mktemp("tls")
    token_file = root / "token"
    token_file.write_text(TOKEN + "\n")
    app = _start(root, {
        "tls": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)},
        "auth": {"token_file": str(token_file)},
    })
    try:
        yield app
    finally:
        app.stop(grace=1.0)


@pytest.fixture(scope="module")
def mtls_app(
    certs: Certs, tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: Any
) -> Iterator[InProcessNode]:
    """Mutual TLS, the token from an environment variable, required for Recommend too."""
    monkeypatch_module.setenv("RECSERVER_TEST_AUTH_TOKEN", TOKEN)
    root = tmp_path_factory.mktemp("mtls")
    app = _start(root, {
        "tls": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key),
                "client_ca_file": str(certs.ca)},
        "auth": {"token_env": "RECSERVER_TEST_AUTH_TOKEN", "require_for_recommend": True},
    })
    try:
        yield app
    finally:
        app.stop(grace=1.0)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def tls_stub(app: InProcessNode, certs: Certs, *, client_cert: bool = False,
             ca: Path | None = None) -> tuple[grpc.Channel, Any]:
    creds = channel_credentials(ca or certs.ca, certs.client_cert if client_cert else None,
                                certs.client_key if client_cert else None)
    channel = grpc.secure_channel(f"127.0.0.1:{app.server.port}", creds)
    return channel, pb_grpc.RecommenderStub(channel)


def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), str(err.value.details())


def recommend_request() -> pb.RecommendRequest:
    return pb.RecommendRequest(user_id=KNOWN_USER, surface="home", k=5)


def an_event(event_id: str) -> pb.RecordEventsRequest:
    return pb.RecordEventsRequest(events=[
        pb.Event(event_id=event_id, user_id="sec-u", item_id="sec-i", event="view")])


# -- TLS --------------------------------------------------------------------------------------


def test_a_plaintext_client_cannot_talk_to_a_tls_port(tls_app: InProcessNode) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{tls_app.server.port}") as channel:
        code, _ = code_of(lambda: pb_grpc.RecommenderStub(channel).Recommend(
            recommend_request(), timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_a_client_trusting_another_ca_is_refused(tls_app: InProcessNode, certs: Certs) -> None:
    channel, stub = tls_stub(tls_app, certs, ca=certs.other_ca)
    with channel:
        code, _ = code_of(lambda: stub.Recommend(recommend_request(), timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_tls_recommend_is_open_without_a_token(tls_app: InProcessNode, certs: Certs) -> None:
    channel, stub = tls_stub(tls_app, certs)
    with channel:
        answer = stub.Recommend(recommend_request(), timeout=CALL_TIMEOUT_S)
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S)
    assert len(answer.items) == 5
    assert health.status == health_pb2.HealthCheckResponse.SERVING  # probes need no token


# -- the bearer token -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["RecordEvents", "GetIngestStatus", "DescribeUser",
                                    "DescribeItems", "UpdateItems", "DeleteUser"])
def test_writes_and_admin_rpcs_need_the_token(
    tls_app: InProcessNode, certs: Certs, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    requests = {
        "RecordEvents": an_event(f"tok-{method}"),
        "GetIngestStatus": pb.GetIngestStatusRequest(),
        "DeleteUser": pb.DeleteUserRequest(user_id=f"tok-{method}"),
        "DescribeUser": pb.DescribeUserRequest(user_id=KNOWN_USER),
        "UpdateItems": pb.UpdateItemsRequest(items=[pb.ItemInfo(item_id="tok", hidden=True)]),
        "DescribeItems": pb.DescribeItemsRequest(item_ids=["tok"]),
    }
    caplog.set_level(logging.DEBUG)
    channel, stub = tls_stub(tls_app, certs)
    with channel:
        call = getattr(stub, method)
        code, details = code_of(lambda: call(requests[method], timeout=CALL_TIMEOUT_S))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert "needs a bearer token" in details and "authorization: Bearer" in details
        wrong = bearer_metadata("x" * len(TOKEN))
        code, details = code_of(
            lambda: call(requests[method], timeout=CALL_TIMEOUT_S, metadata=wrong))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "token is wrong" in details
        call(requests[method], timeout=CALL_TIMEOUT_S, metadata=bearer_metadata(TOKEN))
    assert TOKEN not in caplog.text and TOKEN not in details


def test_nothing_is_written_without_the_token(tls_app: InProcessNode, certs: Certs) -> None:
    channel, stub = tls_stub(tls_app, certs)
    ok = bearer_metadata(TOKEN)
    with channel:
        before = stub.GetIngestStatus(pb.GetIngestStatusRequest(), metadata=ok,
                                      timeout=CALL_TIMEOUT_S)
        code_of(lambda: stub.RecordEvents(an_event("nw-1"), timeout=CALL_TIMEOUT_S))
        answer = stub.RecordEvents(an_event("nw-1"), metadata=ok, timeout=CALL_TIMEOUT_S)
    # The refused call appended nothing: the same event id is new, not a duplicate.
    assert answer.accepted == 1 and answer.duplicates == 0
    assert answer.log_position > before.visible_position or not before.visible_position


def test_unauthenticated_recommend_calls_are_counted(mtls_app: InProcessNode, certs: Certs) -> None:
    channel, stub = tls_stub(mtls_app, certs, client_cert=True)
    with channel:
        code_of(lambda: stub.Recommend(recommend_request(), timeout=CALL_TIMEOUT_S))
    samples = [s for metric in mtls_app.metrics.registry.collect() for s in metric.samples
               if "UNAUTHENTICATED" in s.labels.values()]
    assert samples and max(s.value for s in samples) >= 1


def test_mutual_tls_needs_a_client_certificate(mtls_app: InProcessNode, certs: Certs) -> None:
    channel, stub = tls_stub(mtls_app, certs, client_cert=False)
    with channel:
        code, _ = code_of(lambda: stub.Recommend(recommend_request(), timeout=5,
                                                 metadata=bearer_metadata(TOKEN)))
    assert code == grpc.StatusCode.UNAVAILABLE  # the handshake fails; no handler ran


def test_recommend_can_require_the_token(mtls_app: InProcessNode, certs: Certs) -> None:
    channel, stub = tls_stub(mtls_app, certs, client_cert=True)
    with channel:
        code, details = code_of(lambda: stub.Recommend(recommend_request(), timeout=5))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "Recommend needs" in details
        answer = stub.Recommend(recommend_request(), timeout=CALL_TIMEOUT_S,
                                metadata=bearer_metadata(TOKEN))
    assert len(answer.items) == 5
    assert "TLS + client certificates" in mtls_app.server.security_summary


def test_the_recommend_command_speaks_tls_and_sends_the_token(
    mtls_app: InProcessNode, certs: Certs, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    parser = argparse.ArgumentParser()
    add_recommend_args(parser)
    base = ["--user", KNOWN_USER, "--surface", "home", "--k", "3",
            "--target", f"127.0.0.1:{mtls_app.server.port}", "--ca", str(certs.ca),
            "--cert", str(certs.client_cert), "--key", str(certs.client_key)]
    monkeypatch.delenv("RECSERVER_TOKEN", raising=False)
    assert cmd_recommend(parser.parse_args(base)) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    assert cmd_recommend(parser.parse_args([*base, "--token-file", str(token_file)])) == 0
    assert "source" in capsys.readouterr().out
    monkeypatch.setenv("RECSERVER_TOKEN", TOKEN)
    assert cmd_recommend(parser.parse_args(base)) == 0


def test_the_client_class_takes_tls_and_a_token(mtls_app: InProcessNode, certs: Certs) -> None:
    with RecommendClient(f"localhost:{mtls_app.server.port}", ca_file=certs.ca,
                         cert_file=certs.client_cert, key_file=certs.client_key,
                         token=TOKEN) as client:
        assert len(client.recommend(KNOWN_USER, "home", k=2, timeout_s=CALL_TIMEOUT_S).items) == 2


def test_the_interceptor_table_and_scheme() -> None:
    auth = AuthInterceptor(TOKEN, protected_methods(require_for_recommend=False))
    open_method = "/recserver.v1.Recommender/Recommend"
    auth.check(open_method, ())  # open: no token needed
    auth.check("/grpc.health.v1.Health/Check", ())
    auth.check("/recserver.v1.Recommender/RecordEvents", (("authorization", f"bearer {TOKEN}"),))
    for metadata in [(), (("authorization", TOKEN),), (("authorization", f"Basic {TOKEN}"),),
                     (("authorization", f"Bearer {TOKEN}x"),)]:
        with pytest.raises(Unauthenticated):
            auth.check("/recserver.v1.Recommender/DescribeUser", metadata)


# -- config: strict, and secrets never shown ---------------------------------------------------


def _config_with(tmp_path: Path, server: dict[str, Any]) -> Path:
    doc = config_document()
    doc["server"].update(server)
    return write_config(tmp_path / "config.yaml", doc)


@pytest.mark.parametrize(("server", "message"), [
    ({"tls": {"cert_file": "/nope.pem", "key_file": "/nope.key"}},
     "tls.cert_file: no such file '/nope.pem'"),
    ({"tls": {"cert_file": "CERT"}}, "set both cert_file and key_file"),
    ({"tls": {"client_ca_file": "CERT"}}, "client_ca_file needs tls.cert_file"),
    ({"auth": {"token": "short"}}, "shorter than 16 characters"),
    ({"auth": {"token": TOKEN, "token_env": "X"}}, "token and token_env are both set"),
    ({"auth": {"token_file": "/no/token"}}, "auth.token_file: no such file"),
    ({"auth": {"tokn": "x"}}, "unknown key"),
    ({"max_message_bytes": 10}, "max_message_bytes"),
    ({"max_concurrent_rpcs": 0}, "max_concurrent_rpcs"),
])
def test_bad_security_settings_name_the_field_and_the_fix(
    tmp_path: Path, certs: Certs, server: dict[str, Any], message: str
) -> None:
    server = {key: {k: str(certs.server_cert) if v == "CERT" else v for k, v in value.items()}
              if isinstance(value, dict) else value for key, value in server.items()}
    with pytest.raises(ConfigError) as err:
        load_config(_config_with(tmp_path, server))
    assert message in str(err.value)
    assert TOKEN not in str(err.value)


def test_the_token_is_never_shown_by_the_config(tmp_path: Path) -> None:
    config = load_config(_config_with(tmp_path, {"auth": {"token": TOKEN}}))
    assert config.server.auth.resolve() == TOKEN
    assert TOKEN not in repr(config) and TOKEN not in str(config.model_dump())


def test_a_token_env_that_is_unset_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECSERVER_TEST_UNSET_TOKEN", raising=False)
    path = _config_with(tmp_path, {"auth": {"token_env": "RECSERVER_TEST_UNSET_TOKEN"}})
    with pytest.raises(ValueError, match=r"\$RECSERVER_TEST_UNSET_TOKEN.*missing or shorter"):
        # The worker's door resolves the token as it binds: a node must not go SERVING.
        InProcessNode(path, tmp_path).start(DataSource(synthetic=SYNTHETIC_SIZE))


def test_metrics_bind_to_loopback_unless_configured() -> None:
    config = load_config(None)
    assert config.server.metrics_host == "127.0.0.1" and config.server.host == "127.0.0.1"


def test_event_log_redis_passwords_are_redacted() -> None:
    for url in ("redis://:s3cret@10.0.0.1:6379/0", "rediss://user:s3cret@cache:6380/1"):
        cfg = IngestConfig.model_validate({"redis_url": url})
        assert "s3cret" not in repr(cfg)
        choice = choose(cfg, env={})
        assert choice.backend == "redis" and "s3cret" not in describe(choice)
        flagged = choose(IngestConfig(), url_flag=url, env={})
        assert "s3cret" not in describe(flagged) and "s3cret" not in flagged.why
