"""``recserver build-ann`` and where the Redis URL comes from (flag > environment > file)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recserver.ann.codec import Keys, parse_pointer
from recserver.cli import main
from recserver.core.redis_url import ENV_VAR
from tests.redis_fixture import RedisServer, need_redis

SIZE = "20000"


def write_config(tmp_path: Path, **ann: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "surfaces": {"home": {"k_max": 50, "fallback": {"tiers": ["ann", "popular"]}}},
        "ann": {"top_k": 50, "embeddings": {"dim": 16}, **ann},
    }))
    return path


@pytest.fixture
def secured(tmp_path: Path):
    need_redis()
    server = RedisServer(tmp_path / "a", password="pw-never-shown")
    (tmp_path / "a").mkdir()
    server.start()
    yield server
    server.stop()


def pointer(server: RedisServer, prefix: str = "recserver:ann") -> int | None:
    with server.client() as raw:
        return parse_pointer(raw.get(Keys(prefix).pointer))


def test_build_ann_publishes_with_a_report_and_never_shows_the_password(
    secured: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["build-ann", "--synthetic", SIZE, "--config", str(write_config(tmp_path)),
               "--redis-url", secured.url, "--save-vectors", str(tmp_path / "vec")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "pw-never-shown" not in out.out + out.err
    assert "redis://***@127.0.0.1" in out.out and "(from --redis-url)" in out.out
    for field in ("bytes/entry", "users/s", "left out by the cap", "MiB cap"):
        assert field in out.out
    assert "ann precompute" in out.err  # the progress bar
    version = pointer(secured)
    assert version is not None
    with secured.client() as raw:
        assert 0 < raw.ttl(Keys("recserver:ann").pointer) <= 86_400
        assert raw.exists(Keys("recserver:ann", version).user("u1"))
    assert (tmp_path / "vec" / "item_vectors.npy").exists()
    # The saved vectors are a valid embeddings source for the next build.
    config = write_config(tmp_path, embeddings={
        "dim": 16, "path": str(tmp_path / "vec" / "item_vectors.npy"),
        "ids_path": str(tmp_path / "vec" / "item_ids.txt")})
    assert main(["build-ann", "--synthetic", SIZE, "--config", str(config), "--redis-url",
                 secured.url, "--no-progress"]) == 0
    assert "vectors from " + str(tmp_path / "vec" / "item_vectors.npy") in capsys.readouterr().out
    assert pointer(secured) != version


def test_flag_beats_environment_beats_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    need_redis()
    servers = {}
    for name in ("file", "env", "flag"):
        (tmp_path / name).mkdir()
        servers[name] = RedisServer(tmp_path / name).start()
    try:
        config = write_config(tmp_path, redis_url=servers["file"].url)
        args = ["build-ann", "--synthetic", SIZE, "--config", str(config), "--no-progress"]
        monkeypatch.delenv(ENV_VAR, raising=False)
        assert main(args) == 0
        assert pointer(servers["file"]) is not None and pointer(servers["env"]) is None
        monkeypatch.setenv(ENV_VAR, servers["env"].url)
        assert main(args) == 0
        assert pointer(servers["env"]) is not None and pointer(servers["flag"]) is None
        assert main([*args, "--redis-url", servers["flag"].url]) == 0
        assert pointer(servers["flag"]) is not None
        assert f"(from {ENV_VAR})" in capsys.readouterr().out
    finally:
        for server in servers.values():
            server.stop()


def test_bad_ann_config_is_a_message_not_a_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, redis_url="http://nope")
    assert main(["build-ann", "--synthetic", SIZE, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "ann.redis_url" in err and "redis://" in err and "Traceback" not in err
