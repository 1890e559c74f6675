"""Request validation: every rejection says what to fix."""

from __future__ import annotations

from recserver.catalog.items import MAX_CATEGORIES_PER_ITEM, check_categories
from recserver.config import RecServerConfig, SurfaceConfig
from recserver.core.echo import shown
from recserver.core.errors import InvalidArgument
from recserver.service.types import RecommendQuery

MAX_ID_LENGTH = 256


def _check_ids(field: str, ids: tuple[str, ...], limit: int, surface: str) -> None:
    if len(ids) > limit:
        raise InvalidArgument(
            f"{field} has {len(ids)} ids; surface '{surface}' accepts at most {limit}"
        )
    for pos, item_id in enumerate(ids):
        if not item_id:
            raise InvalidArgument(f"{field}[{pos}] is empty; send non-empty item ids")
        if len(item_id) > MAX_ID_LENGTH:
            raise InvalidArgument(
                f"{field}[{pos}] is {len(item_id):,} characters; ids are at most {MAX_ID_LENGTH}"
            )


def validate_query(query: RecommendQuery, config: RecServerConfig) -> tuple[SurfaceConfig, int]:
    """The surface config and the effective ``k``; raises ``InvalidArgument`` otherwise."""
    surface = config.surface(query.surface)
    if surface is None:
        known = ", ".join(sorted(config.surfaces))  # the config's names: bounded by the operator
        # The name is the client's, of any length: shown cut, or the message could pass gRPC's
        # metadata limit and arrive as RESOURCE_EXHAUSTED instead of this.
        name = shown(query.surface) if query.surface else "'(empty)'"
        raise InvalidArgument(f"unknown surface {name}; known surfaces: {known}")
    if not query.user_id and not query.context_item_ids:
        raise InvalidArgument(
            "user_id is empty and no context_item_ids were given; send a user_id, "
            "context items, or both"
        )
    if len(query.user_id) > MAX_ID_LENGTH:
        raise InvalidArgument(
            f"user_id is {len(query.user_id):,} characters; ids are at most {MAX_ID_LENGTH}"
        )
    k = query.k or surface.k_default
    if k < 0:
        raise InvalidArgument(
            f"k={query.k} is negative; ask for 1..{surface.k_max} items, or 0 for the "
            f"surface default ({surface.k_default})"
        )
    if k > surface.k_max:
        raise InvalidArgument(
            f"k={k} exceeds k_max={surface.k_max} for surface '{query.surface}'; "
            f"ask for at most {surface.k_max}"
        )
    _check_ids("context_item_ids", query.context_item_ids,
               surface.filters.max_context_items, query.surface)
    _check_ids("exclude_item_ids", query.exclude_item_ids,
               surface.filters.max_exclude_items, query.surface)
    if len(query.categories) > MAX_CATEGORIES_PER_ITEM:
        raise InvalidArgument(f"categories has {len(query.categories)} names; ask for at most "
                              f"{MAX_CATEGORIES_PER_ITEM} (any-of)")
    check_categories(query.categories, "categories")
    if query.budget_ms is not None and not query.budget_ms > 0:  # NaN fails this too
        # Capping, not rejecting, a larger value is the documented contract (the answer's
        # budget_limited_by says "surface"): a client may send one budget to every surface,
        # and a reload that lowers a surface's budget must not start failing its calls.
        raise InvalidArgument(
            f"budget_ms={query.budget_ms} is invalid; leave it unset or give a value > 0 ms "
            f"(a request can only lower its surface's budget: a larger value runs under the "
            f"{surface.budget_ms:g} ms of surface '{query.surface}')"
        )
    return surface, k
