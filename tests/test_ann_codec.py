"""ANN cache keys, the packed payload, URL handling and the ``ann`` config section."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from recserver.ann.codec import (
    HEADER,
    Keys,
    PayloadError,
    decode,
    decode_items,
    encode,
    encode_items,
    encode_rows,
    parse_pointer,
)
from recserver.config import ConfigError, config_from_document
from recserver.core.redis_url import ENV_VAR, redact_url, resolve_redis_url


def test_key_bytes_are_exact() -> None:
    keys = Keys("recserver:ann")
    assert keys.pointer == b"recserver:ann:ptr"
    v = keys.at(1700000000123)
    assert v.user("17850") == b"recserver:ann:1700000000123:u:17850"
    assert v.item("85123A") == b"recserver:ann:1700000000123:i:85123A"
    assert v.meta == b"recserver:ann:1700000000123:meta"
    assert v.items == b"recserver:ann:1700000000123:items"
    assert v.namespace == b"recserver:ann:1700000000123:"
    assert v.user("ü") == "recserver:ann:1700000000123:u:ü".encode()
    with pytest.raises(ValueError, match="no version"):
        _ = keys.meta


def test_payload_bytes_and_round_trip() -> None:
    payload = encode(7, [3, 1, 2], [0.9, 0.5, -0.25])
    assert len(payload) == 16 + 6 * 3
    assert payload[:16] == struct.pack("<2sBBQH2x", b"RA", 1, 0, 7, 3)
    assert payload[16:28] == np.array([3, 1, 2], "<i4").tobytes()
    assert payload[28:] == np.array([0.9, 0.5, -0.25], "<f2").tobytes()
    ids, scores = decode(payload, 7)
    assert ids.tolist() == [3, 1, 2] and ids.dtype == np.int32
    assert scores == pytest.approx([0.9, 0.5, -0.25], abs=1e-3)
    empty_ids, empty_scores = decode(encode(7, [], []), 7)
    assert empty_ids.shape == (0,) and empty_scores.shape == (0,)


def test_rows_encode_like_single_payloads() -> None:
    ids = np.array([[5, 6, 7], [8, 9, -1]], np.int32)
    scores = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, -np.inf]], np.float32)
    rows = encode_rows(3, ids, scores, np.array([3, 2]))
    assert rows[0] == encode(3, [5, 6, 7], [0.9, 0.8, 0.7])
    assert rows[1] == encode(3, [8, 9], [0.6, 0.5])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "shorter than its header"),
        (b"XX" + bytes(14), "unknown payload"),
        (HEADER.pack(b"RA", 2, 0, 7, 0), "unknown payload"),
        (encode(8, [1], [0.5]), "version 8, expected 7"),
        (encode(7, [1, 2], [0.5, 0.4])[:-1], "does not hold 2 entries"),
        (encode(7, [1], [0.5]) + b"x", "does not hold 1 entries"),
    ],
)
def test_corrupt_or_foreign_payloads_are_rejected(payload: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        decode(payload, 7)


def test_item_table_and_pointer() -> None:
    names = ["85123A", "ü-item", "a,b"]
    assert decode_items(encode_items(names)) == names
    with pytest.raises(PayloadError):
        decode_items(b"not zlib")
    assert parse_pointer(b"123") == 123
    assert parse_pointer(None) is None and parse_pointer(b"junk") is None


def test_redis_url_precedence_flag_env_file() -> None:
    env = {ENV_VAR: "redis://env:6379/0"}
    assert resolve_redis_url("redis://flag/0", "redis://file/0", env) == (
        "redis://flag/0", "--redis-url")
    assert resolve_redis_url(None, "redis://file/0", env) == ("redis://env:6379/0", ENV_VAR)
    assert resolve_redis_url("", "redis://file/0", {}) == ("redis://file/0", "config file")
    assert resolve_redis_url(None, None, {ENV_VAR: ""})[0] is None


def test_urls_are_redacted() -> None:
    assert redact_url("redis://:s3cret@db:6380/2") == "redis://***@db:6380/2"
    assert redact_url("rediss://user:s3cret@db/0") == "rediss://***@db/0"
    assert redact_url("redis://db:6379/0") == "redis://db:6379/0"
    assert "s3cret" not in redact_url("unix:///tmp/r.sock?password=s3cret")
    assert redact_url(None) == "(none)"


def document(**ann: object) -> dict[str, object]:
    return {"surfaces": {"home": {"k_max": 50, "fallback": {"tiers": ["ann", "popular"]}}},
            "ann": ann}


def test_ann_section_defaults_and_secret_url() -> None:
    config = config_from_document(document(redis_url="redis://:pw@db:6379/0"))
    assert config.ann.url() == "redis://:pw@db:6379/0"
    assert "pw" not in repr(config.ann) and "pw" not in str(config)
    assert config_from_document(document()).ann.url() is None


@pytest.mark.parametrize(
    ("ann", "field", "fix"),
    [
        ({"redis_url": "http://db"}, "ann.redis_url", "redis://"),
        ({"ttl_s": 3600, "rebuild_interval_s": 7200}, "ann", "lower rebuild_interval_s"),
        ({"top_k": 20}, "(top level)", "raise ann.top_k"),
        ({"key_prefix": "bad prefix"}, "ann.key_prefix", "no whitespace"),
        ({"index": {"kind": "lsh"}}, "ann.index.kind", "'auto'"),
        ({"index": {"flat_max_items": 10, "ivf_min_items": 5}}, "ann.index", "ivf_min_items"),
        ({"embeddings": {"path": "v.npy"}}, "ann.embeddings", "ids_path"),
        ({"breaker": {"open_s": 0}}, "ann.breaker.open_s", "use a value > 0"),
        ({"redis": "x"}, "ann.redis", "unknown key"),
    ],
)
def test_bad_ann_settings_name_the_field_and_the_fix(ann: dict, field: str, fix: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_document(document(**ann), "cfg.yaml")
    text = str(err.value)
    assert "cfg.yaml" in text and f"  {field}:" in text and fix in text, text


def test_blend_policy_is_per_surface() -> None:
    config = config_from_document({"surfaces": {
        "home": {"fallback": {"blend": {"mode": "score", "fallback_weight": 0.5}}},
        "search": {},
    }})
    assert config.surfaces["home"].fallback.blend.mode == "score"
    assert config.surfaces["search"].fallback.blend.mode == "slots"
    with pytest.raises(ConfigError, match=r"surfaces\.home\.fallback\.blend\.mode"):
        config_from_document({"surfaces": {"home": {"fallback": {"blend": {"mode": "mix"}}}}})


def test_the_example_config_documents_every_ann_key() -> None:
    from pathlib import Path

    import yaml

    from recserver.ann.config import AnnConfig
    from recserver.config import load_config

    example = Path(__file__).resolve().parent.parent / "deploy" / "config.example.yaml"
    config = load_config(example)
    assert config.ann.url() is None and config.ann.top_k >= max(
        s.k_max for s in config.surfaces.values() if "ann" in s.fallback.tiers)
    section = yaml.safe_load(example.read_text())["ann"]

    def keys(model: type, doc: dict, prefix: str = "") -> list[str]:
        missing = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            if name not in doc:
                missing.append(prefix + name)
            elif isinstance(doc[name], dict):
                missing += keys(field.annotation, doc[name], f"{prefix}{name}.")
        return missing

    assert keys(AnnConfig, section) == []
