"""Live config reload: good files applied, bad ones rejected with the old config kept."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recserver.config import ConfigError, RecServerConfig
from recserver.config_reload import ConfigHolder, file_fingerprint


def document(home_budget_ms: float) -> str:
    return (
        f"surfaces:\n  home: {{budget_ms: {home_budget_ms}, sla_p99_ms: 100}}\n"
        "server: {reload_poll_s: 0.05}\n"
    )


def replace_text(path: Path, text: str) -> None:
    """Write like an editor that saves atomically, so the watcher never reads half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Recorder:
    """A listener that records each applied config and signals the test."""

    def __init__(self) -> None:
        self.configs: list[RecServerConfig] = []
        self.called = threading.Event()

    def __call__(self, config: RecServerConfig) -> None:
        self.configs.append(config)
        self.called.set()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(document(50))
    return path


@pytest.fixture
def holder(config_file: Path) -> Iterator[ConfigHolder]:
    holder = ConfigHolder(config_file)
    yield holder
    holder.stop_watching()
    holder.uninstall_sighup()


def home_budget(holder: ConfigHolder) -> float:
    return holder.current.surfaces["home"].budget_ms


def test_a_bad_file_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("surfaces: {home: {budgett_ms: 5}}")
    with pytest.raises(ConfigError, match="budgett_ms"):
        ConfigHolder(path)


def test_a_good_new_file_is_applied_and_listeners_told(
    holder: ConfigHolder, config_file: Path
) -> None:
    recorder = Recorder()
    holder.add_listener(recorder)
    before = holder.current
    config_file.write_text(document(30))
    assert holder.reload() is True
    assert home_budget(holder) == 30 and holder.current is not before
    assert recorder.configs == [holder.current]
    assert (holder.reloads_ok, holder.reloads_failed) == (1, 0)


def test_a_bad_new_file_is_rejected_and_the_old_config_kept(
    holder: ConfigHolder, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    holder.add_listener(recorder)
    before = holder.current
    config_file.write_text("surfaces: {home: {budget_ms: 90, sla_p99_ms: 60}}")
    with caplog.at_level(logging.ERROR, logger="recserver.config_reload"):
        assert holder.reload() is False
    assert holder.current is before and recorder.configs == []
    assert (holder.reloads_ok, holder.reloads_failed) == (0, 1)
    assert holder.last_error is not None and "raise sla_p99_ms" in holder.last_error
    assert str(config_file) in caplog.text and "previous config keeps serving" in caplog.text
    # Fixing the file is picked up by the next reload.
    config_file.write_text(document(40))
    assert holder.reload() is True and home_budget(holder) == 40
    assert (holder.reloads_ok, holder.reloads_failed, holder.last_error) == (1, 1, None)


def test_a_failing_listener_does_not_block_the_others(
    holder: ConfigHolder, config_file: Path
) -> None:
    def broken(config: RecServerConfig) -> None:
        raise RuntimeError("listener bug")

    recorder = Recorder()
    holder.add_listener(broken)
    holder.add_listener(recorder)
    config_file.write_text(document(20))
    assert holder.reload() is True and recorder.called.is_set()


def test_the_embedded_default_has_nothing_to_reload() -> None:
    holder = ConfigHolder(None)
    assert holder.reload() is False and holder.reloads_failed == 0


def test_sighup_triggers_a_reload(holder: ConfigHolder, config_file: Path) -> None:
    recorder = Recorder()
    holder.add_listener(recorder)
    holder.install_sighup()
    config_file.write_text(document(25))
    os.kill(os.getpid(), signal.SIGHUP)
    assert recorder.called.wait(10)
    assert home_budget(holder) == 25


def test_install_sighup_outside_the_main_thread_is_refused(holder: ConfigHolder) -> None:
    failures: list[BaseException] = []

    def attempt() -> None:
        try:
            holder.install_sighup()
        except RuntimeError as exc:
            failures.append(exc)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join(10)
    assert len(failures) == 1


def test_the_watcher_notices_a_changed_file(holder: ConfigHolder, config_file: Path) -> None:
    recorder = Recorder()
    holder.add_listener(recorder)
    holder.start_watching()  # the file's own reload_poll_s: 0.05 s
    replace_text(config_file, document(35))
    assert recorder.called.wait(10)
    assert home_budget(holder) == 35 and holder.reloads_ok == 1


def test_the_watcher_reports_a_bad_edit_once_then_applies_the_fix(
    holder: ConfigHolder, config_file: Path
) -> None:
    recorder = Recorder()
    holder.add_listener(recorder)
    holder.start_watching(interval_s=0.02)
    replace_text(config_file, "surfaces: {home: {k_default: 500}}")
    for _ in range(1000):  # bounded wait for the rejection
        if holder.reloads_failed:
            break
        time.sleep(0.01)
    assert holder.reloads_failed == 1 and home_budget(holder) == 50
    replace_text(config_file, document(45))
    assert recorder.called.wait(10)
    assert home_budget(holder) == 45 and holder.reloads_failed == 1


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    assert file_fingerprint(path) is None
    path.write_text("a: 1")
    first = file_fingerprint(path)
    path.write_text("a: 2")  # same size, possibly the same mtime tick
    second = file_fingerprint(path)
    assert first is not None and second is not None and first[2] != second[2]


def test_a_restart_only_change_is_warned_and_listed(
    holder: ConfigHolder, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Budgets and the per-request server keys reload quietly; a port, a graph setting or an
    ingest setting is named in a warning and stays pending until a restart."""
    replace_text(config_file, document(30).replace(
        "server: {reload_poll_s: 0.05}",
        "server: {reload_poll_s: 0.05, deadline_margin_ms: 3}",
    ))
    with caplog.at_level(logging.WARNING, logger="recserver.config_reload"):
        assert holder.reload() is True
    assert holder.restart_pending == [] and "read only at start" not in caplog.text
    replace_text(config_file, document(30).replace(
        "server: {reload_poll_s: 0.05}",
        "server: {reload_poll_s: 0.05, port: 6000}\ngraph: {publish_interval_s: 3}\n"
        "ingest: {file: {fsync: always}}",
    ))
    with caplog.at_level(logging.WARNING, logger="recserver.config_reload"):
        assert holder.reload() is True
    assert holder.restart_pending == [
        "graph.publish_interval_s", "ingest.file.fsync", "server.port"]
    assert "server.port" in caplog.text and "read only at start" in caplog.text
    # Going back to the started values clears the list.
    replace_text(config_file, document(20))
    assert holder.reload() is True and holder.restart_pending == []


def test_every_config_section_says_whether_it_reloads() -> None:
    from recserver.config import RecServerConfig, SurfaceConfig
    from recserver.core.model import field_scope

    scopes = {name: field_scope(RecServerConfig, name, "restart")
              for name in RecServerConfig.model_fields}
    assert scopes["surfaces"] == "restart"  # the dict field itself; its values say "reload"
    assert SurfaceConfig.reload_scope == "reload"
    for name, field in RecServerConfig.model_fields.items():
        if name == "surfaces":
            continue
        annotation = field.annotation
        assert getattr(annotation, "reload_scope", None) in ("reload", "restart"), name
