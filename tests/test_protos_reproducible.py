"""The committed generated code is exactly what scripts/gen_protos.sh makes from protos/.

A failure means someone edited protos/ (or the generated files) without regenerating: run
``bash scripts/gen_protos.sh`` and commit the result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "recserver" / "proto"


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_matches_a_fresh_regeneration(tmp_path: Path) -> None:
    out = tmp_path / "proto"
    # The interpreter running the tests, so protoc and its plugins come from the same venv.
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_protos.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    fresh, committed = files_under(out), files_under(COMMITTED)
    assert sorted(fresh) == sorted(committed)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    # The output depends on the generators' versions: a different grpcio-tools or mypy-protobuf
    # than the committed files were made with shows up here first.
    tools = {name: version(name) for name in ("grpcio-tools", "mypy-protobuf", "protobuf")}
    assert stale == [], f"{stale} differ; regenerate with `bash scripts/gen_protos.sh` ({tools})"


def test_generated_modules_import_from_the_package() -> None:
    from recserver.proto.recserver.v1 import recommender_pb2, recommender_pb2_grpc

    assert recommender_pb2.DESCRIPTOR.package == "recserver.v1"
    assert hasattr(recommender_pb2_grpc, "RecommenderStub")
    assert recommender_pb2.RecommendRequest.DESCRIPTOR.fields_by_name["budget_ms"].has_presence
