"""Progress that suits both a terminal and a log file.

In a terminal: one tqdm bar per level (rate and ETA in the bar), resized with the window, inner
bars cleared when done. When stderr is not a terminal (`dvc queue logs`, CI, `> log.txt`) there
are no bars, no carriage returns or escape codes: instead a heartbeat line every
`MYGO_HEARTBEAT_SECONDS` (default 120) says where a long loop is, how fast it goes and when it
will end (`train epoch 3: 17/39 batches, 31.2 s/batch, ETA of this loop 11m 26s`).
"""
from __future__ import annotations

import logging
import os
import sys
import time

from tqdm import tqdm

log = logging.getLogger("mygo.progress")


def duration(seconds: float) -> str:
    """A duration for people: 42 s, 3m 07s, 2h 05m, 4d 03h."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def heartbeat_seconds() -> float:
    value = os.environ.get("MYGO_HEARTBEAT_SECONDS", "120")
    try:
        return max(0.0, float(value))
    except ValueError:
        raise ValueError(f"MYGO_HEARTBEAT_SECONDS = {value!r}: expected a number of seconds") from None


def plural(unit: str) -> str:
    """batch -> batches, epoch -> epochs, query -> queries, image -> images."""
    if unit.endswith(("tch", "sh", "s", "x")):
        return unit + "es"
    if unit.endswith("y") and unit[-2:-1] not in ("a", "e", "i", "o", "u"):
        return unit[:-1] + "ies"
    return unit + "s"


class LogBar:
    """The bar's interface (iterate, update, set_postfix, close) for a log file: a line every
    heartbeat interval with the position, the rate and the ETA of the loop."""

    def __init__(self, iterable=None, *, desc: str, unit: str, total: int | None = None, initial: int = 0,
                 interval: float | None = None):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.start_n = initial, initial
        self.interval = heartbeat_seconds() if interval is None else interval
        self.started = self.last = time.monotonic()
        self.postfix = ""

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.interval and now - self.last >= self.interval:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        done = self.n - self.start_n
        rate = (now - self.started) / done if done else float("nan")
        where = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        text = f"{self.desc}: {where} {plural(self.unit)}, {rate:.3g} s/{self.unit}"
        if self.total is not None and done:
            text += f", ETA of this loop {duration(rate * (self.total - self.n))}"
        return text + (f" ({self.postfix})" if self.postfix else "")

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        pass


def bar(iterable=None, *, desc: str, unit: str, enabled: bool = True, inner: bool = False, **kwargs):
    """A tqdm bar in a terminal (`inner` bars, per batch inside an epoch, disappear when
    finished); heartbeat log lines otherwise; nothing when not `enabled`."""
    if enabled and not sys.stderr.isatty():
        return LogBar(iterable, desc=desc, unit=unit, total=kwargs.get("total"), initial=kwargs.get("initial", 0))
    return tqdm(iterable, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True, leave=not inner,
                file=sys.stderr, **kwargs)
