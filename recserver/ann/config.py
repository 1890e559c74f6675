"""The ``ann`` section of the config file: the cache, the index, the embeddings, the breaker.

It is a process setting: the server reads it at start (a reload does not rebuild the cache or
reconnect). ``redis_url`` is a secret (it may hold a password): it never appears in a repr.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from recserver.core.model import ReloadScope, StrictModel
from recserver.core.redis_url import REDIS_SCHEMES


class AnnIndexConfig(StrictModel):
    """Which FAISS index serves the nearest-neighbour search, and its settings."""

    kind: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        default="auto", description="auto: flat up to flat_max_items, IVF from ivf_min_items, "
        "HNSW in between"
    )
    flat_max_items: int = Field(default=50_000, ge=1, description="exact search up to this size")
    ivf_min_items: int = Field(default=2_000_000, ge=1, description="IVF from this size on")
    hnsw_m: int = Field(default=32, ge=4, le=256)
    hnsw_ef_construction: int = Field(default=200, ge=8, le=4_096)
    hnsw_ef_search: int = Field(default=128, ge=8, le=4_096)
    ivf_nlist: int = Field(default=0, ge=0, description="IVF lists; 0 picks 4 * sqrt(items)")
    ivf_nprobe: int = Field(default=32, ge=1, le=65_536)

    @model_validator(mode="after")
    def _sizes(self) -> AnnIndexConfig:
        if self.ivf_min_items <= self.flat_max_items:
            raise ValueError(
                f"ivf_min_items ({self.ivf_min_items}) must be above flat_max_items "
                f"({self.flat_max_items}); raise ivf_min_items"
            )
        return self


class AnnEmbeddingConfig(StrictModel):
    """Item vectors: ALS or a randomized truncated SVD of the graph, or a ``.npy`` file."""

    method: Literal["als", "svd"] = Field(
        default="als", description="als: implicit-feedback ALS (user vectors solved from the "
        "user's items); svd: normalised-matrix SVD (user vector = mean of item vectors)")
    als_regularization: float = Field(default=0.05, ge=0, le=100)
    als_alpha: float = Field(default=5.0, gt=0, le=1_000, description="confidence per interaction")
    als_iterations: int = Field(default=15, ge=1, le=200)
    dim: int = Field(default=64, ge=2, le=1_024, description="vector dimensions")
    power_iterations: int = Field(default=4, ge=0, le=20)
    oversample: int = Field(default=16, ge=0, le=512)
    seed: int = Field(default=0)
    path: str | None = Field(default=None, description=".npy float32 [items, dim]; null: learn")
    ids_path: str | None = Field(default=None, description="item ids, one a line, row order")

    @model_validator(mode="after")
    def _both_or_neither(self) -> AnnEmbeddingConfig:
        if (self.path is None) != (self.ids_path is None):
            raise ValueError(
                "path and ids_path go together: give both (vectors and their item ids) or neither "
                "(learn vectors from the graph)"
            )
        return self


class AnnBreakerConfig(StrictModel):
    """The circuit breaker in front of the cache."""

    failure_threshold: int = Field(default=3, ge=1, le=1_000, description="failures in a row")
    open_s: float = Field(default=1.0, gt=0, le=600, description="open this long, then a probe")


class AnnConfig(StrictModel):
    """Cache, index and rebuild settings of the ANN fallback tier."""

    reload_scope: ClassVar[ReloadScope | None] = "restart"  # read once at start

    redis_url: SecretStr | None = Field(
        default=None, description="redis://, rediss:// or unix://; null: files in "
        "the node's run dir (--single-process: an in-process LRU)"
    )
    key_prefix: str = Field(default="recserver:ann", min_length=1, max_length=100)
    ttl_s: int = Field(default=86_400, ge=60, le=30 * 86_400, description="every key expires")
    top_k: int = Field(default=100, ge=1, le=4_096, description="results kept per key")
    max_memory_mb: float = Field(default=512.0, gt=0, description="cap on one version's bytes")
    max_users: int = Field(default=1_000_000, ge=0, description="most active users precomputed")
    min_user_items: int = Field(default=1, ge=1, description="a user needs this many items")
    user_recent_items: int = Field(default=50, ge=1, le=10_000, description="a user vector is "
                                   "the weighted mean of the user's strongest (recent) items")
    max_context_keys: int = Field(default=16, ge=1, le=1_000, description="context keys per MGET")
    rebuild_interval_s: float = Field(default=3_600.0, ge=0, description="0: build once only")
    fold_new_items_s: float = Field(
        default=60.0, ge=0, description="between builds, give items born since the build a "
        "vector from their first users this often (a process that builds); 0: off")
    fold_min_users: int = Field(default=2, ge=1, description="users a new item needs first")
    pointer_poll_s: float = Field(default=2.0, gt=0, description="adopt another builder's version")
    old_version_grace_s: int = Field(default=120, ge=1, description="old keys live on this long")
    socket_timeout_ms: float = Field(default=1.0, gt=0, le=10_000,
                                     description="cap; a read gets min(this, budget left)")
    connect_timeout_ms: float = Field(default=1.0, gt=0, le=10_000)
    build_timeout_s: float = Field(default=10.0, gt=0, le=600, description="bulk writes")
    max_idle_connections: int = Field(default=32, ge=1, le=1_024)
    lru_max_mb: float = Field(default=64.0, gt=0, description="the in-process LRU's size "
                              "(--single-process and the offline commands; no Redis)")
    compute_on_miss: bool = Field(default=True, description="search in-process when time allows")
    write_back: bool = Field(default=True, description="store computed results, off the path")
    write_back_queue: int = Field(default=1_024, ge=1)
    build_threads: int = Field(default=1, ge=1, le=256, description="FAISS threads of a build")
    index: AnnIndexConfig = Field(default_factory=AnnIndexConfig)
    embeddings: AnnEmbeddingConfig = Field(default_factory=AnnEmbeddingConfig)
    breaker: AnnBreakerConfig = Field(default_factory=AnnBreakerConfig)

    @field_validator("redis_url")
    @classmethod
    def _scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(REDIS_SCHEMES):
            raise ValueError(
                "must start with redis://, rediss:// (TLS) or unix://; e.g. "
                "redis://:password@host:6379/0, or null for the in-process cache"
            )
        return value

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if any(ch.isspace() for ch in value) or value.endswith(":"):
            raise ValueError("no whitespace and no trailing ':'; e.g. recserver:ann")
        return value

    @model_validator(mode="after")
    def _rebuild_before_expiry(self) -> AnnConfig:
        if self.rebuild_interval_s and self.rebuild_interval_s >= self.ttl_s:
            raise ValueError(
                f"rebuild_interval_s ({self.rebuild_interval_s:g}) is not below ttl_s "
                f"({self.ttl_s}): results would expire before the next rebuild; lower "
                "rebuild_interval_s or raise ttl_s"
            )
        return self

    def url(self) -> str | None:
        return None if self.redis_url is None else self.redis_url.get_secret_value()
