"""The former console entry point, kept so that installs made before it moved still start.

``pyproject.toml`` names ``recserver.cli:main``: ``recserver serve`` is parsed there like every
other command (``cli.serve``) and run by ``node.commands``, importing nothing heavy.
"""

from __future__ import annotations

from recserver.cli import main

__all__ = ["main"]
