"""A sandbox cloud kept in a JSON file, shared by several processes."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .clock import SystemClock
from .cloud import SandboxCloud


class FileBackedSandbox:
    """Answer API requests from a SandboxCloud whose state lives in a JSON file.

    The web process and the reconciler each build one on the same path: every request
    takes an exclusive lock on ``<path>.lock``, reloads the file if another process
    changed it, and writes it back atomically. user_data and request bodies stay in
    memory: user_data carries secrets.
    """

    def __init__(self, path: str | os.PathLike[str], **cloud_kwargs: Any) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        cloud_kwargs.setdefault("clock", SystemClock())
        self.cloud = SandboxCloud(**cloud_kwargs)
        self._stamp: tuple[int, int, int] | None = None
        self._saved: str | None = None

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        """Answer one API request against the shared state."""
        with self._locked():
            self._load()
            try:
                return self.cloud.handle(method, path, query, body, headers)
            finally:
                self._save()  # also after a simulated timeout: a lost response still had effects

    def latency_for(self, method: str, path: str) -> float:
        """Return how long the answer travels (this process's setting: latency is not shared state)."""
        return self.cloud.latency_for(method, path)

    def refresh(self) -> SandboxCloud:
        """Reload the shared state into ``self.cloud`` and return it, for inspection."""
        with self._locked():
            self._load()
            return self.cloud

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _load(self) -> None:
        stamp = self._current_stamp()
        if stamp is not None and stamp == self._stamp:
            return
        if stamp is None:
            text = None
            state: dict[str, Any] = {}
        else:
            text = self.path.read_text(encoding="utf-8")
            state = json.loads(text)
        self.cloud.from_state(state)
        self._stamp = stamp
        self._saved = text

    def _save(self) -> None:
        text = json.dumps(self.cloud.to_state(), sort_keys=True)
        if text == self._saved and self._current_stamp() == self._stamp:
            return
        fd, temp_name = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as temp_file:
                temp_file.write(text)
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        self._stamp = self._current_stamp()
        self._saved = text
