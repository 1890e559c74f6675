"""The strict base of every config model, and which keys a reload can change.

Every model forbids unknown keys: a typo in a YAML file is an error, not a silently ignored
setting. Each model also says whether a running server picks its values up on reload:
``reload_scope = "reload"`` (the next request uses the new value) or ``"restart"`` (read once at
start). A field can differ from its model with ``Field(json_schema_extra=RELOADS)`` or
``RESTART_ONLY``. :func:`restart_only_changes` lists the restart-only keys a new file changed,
so the reload can warn that they are not in force yet.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

ReloadScope = Literal["reload", "restart"]

#: ``json_schema_extra`` for a field a reload changes inside a restart-only section.
RELOADS: dict[str, Any] = {"reload": True}
#: ``json_schema_extra`` for a field read once inside a reloadable section.
RESTART_ONLY: dict[str, Any] = {"reload": False}


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    #: Whether a running server takes this model's values on reload (inherited by nested
    #: models unless they say otherwise).
    reload_scope: ClassVar[ReloadScope | None] = None


def field_scope(model: type[BaseModel], name: str, inherited: ReloadScope) -> ReloadScope:
    """The reload scope of ``model.name``: the field's marker, else the model's, else
    ``inherited`` (the scope of the section that holds the model)."""
    extra = model.model_fields[name].json_schema_extra
    if isinstance(extra, dict) and "reload" in extra:
        return "reload" if extra["reload"] else "restart"
    own = getattr(model, "reload_scope", None)
    return own if own is not None else inherited


def _differs(old: Any, new: Any, path: str, scope: ReloadScope, out: list[str]) -> None:
    if isinstance(old, BaseModel) and type(old) is type(new):
        own = getattr(type(old), "reload_scope", None)
        scope = own if own is not None else scope
        for name in type(old).model_fields:
            _differs(getattr(old, name), getattr(new, name), f"{path}.{name}" if path else name,
                     field_scope(type(old), name, scope), out)
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if key not in old or key not in new:
                if scope == "restart":
                    out.append(f"{path}.{key}")
                continue
            _differs(old[key], new[key], f"{path}.{key}", scope, out)
        return
    if scope == "restart" and old != new:
        out.append(path)


def restart_only_changes(old: BaseModel, new: BaseModel) -> list[str]:
    """Dotted paths (sorted) of the restart-only keys whose value differs between two configs."""
    out: list[str] = []
    _differs(old, new, "", getattr(type(old), "reload_scope", None) or "restart", out)
    return sorted(out)
