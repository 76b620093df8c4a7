"""The progress bar: on a terminal only, updated per batch, always on standard error.

Updating per batch rather than per event keeps the bar's cost out of the hot loop; writing
to stderr keeps ``--out -`` clean for the alerts.
"""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A tqdm bar showing events read, events per second and alerts (or messages) so far.

    Parameters
    ----------
    enabled : bool, optional
        ``None`` (the default) shows the bar only when standard error is a terminal, so logs
        of batch jobs and CI stay free of carriage-return noise.
    desc : str
        Label in front of the bar.
    counter : str
        Name of the second counter shown after the rate (``alerts``, ``sent``).
    """

    def __init__(
        self,
        enabled: bool | None = None,
        *,
        desc: str = "replay",
        counter: str = "alerts",
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.counter = counter
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                desc=desc,
                unit=" ev",
                unit_scale=True,
                file=self.stream,
                mininterval=0.25,
                dynamic_ncols=True,
                leave=True,
            )

    def update(self, events: int, count: int) -> None:
        """Advance by ``events`` and show the running ``count`` of alerts or messages."""
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.counter}={count}", refresh=False)
            self._bar.update(events)

    def write(self, text: str) -> None:
        """Print a message line on stderr without breaking the bar."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
