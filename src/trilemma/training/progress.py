"""What the user sees and does while a run trains: the progress bar and Ctrl-C."""

from __future__ import annotations

import signal
import sys
import time

from trilemma.training.budget import Budget


class StopFlag:
    """Ctrl-C asks the loop to finish its step and save, rather than dying mid-update."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        def handler(signum, frame):
            if self.requested:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self.requested = True

        try:
            self._previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: no signal handling
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class ProgressBar:
    """A tqdm bar in steps (step budgets) or training seconds (time budgets), on stderr,
    refreshed at most twice a second."""

    def __init__(self, budget: Budget, start_step: int, start_elapsed: float, enabled: bool, label: str):
        self.enabled = enabled
        self.last = 0.0
        if not enabled:
            return
        from tqdm import tqdm

        self.by_steps = budget.steps is not None and budget.seconds is None
        if self.by_steps:
            self.bar = tqdm(total=budget.steps, initial=start_step, desc=label, unit="step",
                            file=sys.stderr, dynamic_ncols=True)
        else:
            self.bar = tqdm(total=round(budget.seconds), initial=round(start_elapsed), desc=label, unit="s",
                            file=sys.stderr, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f}s "
                                       "[{elapsed}<{remaining}{postfix}]")
            self.shown = round(start_elapsed)

    def update(self, step: int, elapsed: float, losses: dict[str, float], force: bool = False) -> None:
        if not self.enabled or (time.monotonic() - self.last < 0.5 and not force):
            return
        self.last = time.monotonic()
        self.bar.set_postfix({"step": step, **{k: f"{v:.4g}" for k, v in losses.items()}}, refresh=False)
        if self.by_steps:
            self.bar.update(step - self.bar.n)
        else:
            now = min(round(elapsed), self.bar.total)
            self.bar.update(now - self.shown)
            self.shown = now

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
