"""Logging set-up and the boundary of every stage: a ValueError, or an OSError from the machine
(a full disk, no permission, a directory in the way), ends it with one clear line and exit 1."""
from __future__ import annotations

import logging
import os
import sys


def is_out_of_memory(err: BaseException) -> bool:
    """An allocation failure: MemoryError, torch's (CUDA) OutOfMemoryError, or the CPU allocator's
    RuntimeError."""
    text = str(err)
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or (
        isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower()))


def setup_logging() -> None:
    """Log lines to stderr; without a terminal, no third-party progress bars (tqdm's carriage
    returns would fill a log file: mygo.progress writes heartbeat lines instead)."""
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run_main(main) -> None:
    """Run a stage's main(); boundary errors (ValueError) print one clear line and exit 1."""
    setup_logging()
    try:
        main()
    except BrokenPipeError:                 # `mygo compare | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except ValueError as err:
        logging.getLogger("mygo").error("%s", err)
        sys.exit(1)
    except OSError as err:
        from mygo.io import describe_os_error
        logging.getLogger("mygo").error("%s", describe_os_error(err))
        sys.exit(1)
    except KeyboardInterrupt:
        logging.getLogger("mygo").error("interrupted")
        sys.exit(130)

