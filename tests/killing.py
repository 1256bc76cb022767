"""Real processes and real signals for the kill -9 tests: a CLI command started in its own
process group, its stderr read line by line as it comes, and SIGKILL to the whole group."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

SRC = Path(__file__).parent.parent / "src"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout's sources, one thread (so that its
    arithmetic is the test process's, bit for bit)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRILEMMA_TEST_CHECKPOINT_PAUSE", "TRILEMMA_FAULT_NAN_AT_STEP")}
    path = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


class Watched:
    """`python -m trilemma ARGS` in a process group of its own."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "trilemma", *map(str, args)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.stderr: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_line(self, wanted: Callable[[str], bool], timeout: float) -> str | None:
        """The first stderr line from now on for which `wanted` holds; None if the process
        closed stderr (exited) first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no such line within {timeout} s; stderr: {''.join(self.stderr)[-2000:]}") from None
            if line is None:
                return None
            if wanted(line):
                return line

    def wait_until(self, condition: Callable[[], bool], timeout: float, poll: float = 0.005) -> bool:
        """Poll `condition` until it holds (True) or the process exits (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            if self.proc.poll() is not None:
                return condition()
            time.sleep(poll)
        raise TimeoutError(f"condition not met within {timeout} s; stderr: {''.join(self.stderr)[-2000:]}")

    def kill(self) -> bool:
        """SIGKILL to the process group; True if the process was still running."""
        running = self.proc.poll() is None
        if running:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                running = False
        self.proc.wait(timeout=60)
        return running and self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout: float) -> tuple[int, str]:
        """Wait for a normal exit; returns (exit code, stdout + stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(timeout=30)
        return self.proc.returncode, self.proc.stdout.read() + "".join(self.stderr)
