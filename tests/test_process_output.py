"""The test helper that runs real processes stops one whose expected line never comes."""

from __future__ import annotations

import sys

import pytest

from tests.process_output import CollectedProcess


def test_a_line_that_never_comes_fails_and_stops_the_process() -> None:
    proc = CollectedProcess([sys.executable, "-c",
                             "import time; print('started', flush=True); time.sleep(120)"])
    assert proc.wait_for("^started$", 30).group(0) == "started"
    with pytest.raises(AssertionError, match="no such line within"):
        proc.wait_for("^never$", 0.5)
    assert proc.proc.poll() is not None  # not left running behind the failed test
