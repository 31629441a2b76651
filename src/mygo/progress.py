"""Progress bars that suit both a terminal and a log file.

In a terminal: one bar per level, resized with the window, inner bars cleared when done. When
stderr is not a terminal (`dvc queue logs`, CI, `> log.txt`), bars are off: no carriage returns
or escape codes end up in the log, and the stages' one-line log messages say what happened.
"""
from __future__ import annotations

import sys

from tqdm import tqdm


def bar(iterable=None, *, desc: str, unit: str, enabled: bool = True, inner: bool = False, **kwargs) -> tqdm:
    """A tqdm bar; `inner` bars (per batch inside an epoch) disappear when finished."""
    shown = enabled and sys.stderr.isatty()
    return tqdm(iterable, desc=desc, unit=unit, disable=not shown, dynamic_ncols=True, leave=not inner,
                file=sys.stderr, **kwargs)
