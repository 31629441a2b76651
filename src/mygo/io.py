"""Atomic file and directory writes: a crash never leaves a half-written output behind, and the
machine's faults (a full disk, a read-only filesystem, no permission, a quota) become one line
naming the path, the cause and the remedy (a ValueError, which every stage's boundary prints)."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


# errno -> (cause, remedy); pyarrow's I/O errors carry no errno, only the system's message
_FAULTS = {
    errno.ENOSPC: ("no space left on the device", "free space on that filesystem (or write the outputs "
                   "elsewhere) and run again"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota (or write the outputs elsewhere) "
                   "and run again"),
    errno.EROFS: ("the filesystem is read-only", "write the outputs to a writable folder"),
    errno.EACCES: ("permission denied", "give this user access to that path (or use another folder)"),
    errno.EPERM: ("operation not permitted", "give this user access to that path (or use another folder)"),
    errno.EFBIG: ("file too large for this filesystem or limit", "raise the limit or write elsewhere"),
    errno.EISDIR: ("a directory is where a file is expected", "remove or rename that directory"),
    errno.ENOTDIR: ("a file is where a directory is expected", "remove or rename that file"),
    errno.ENOENT: ("no such file or directory", "check the path (run the stage that writes it first)"),
}
_MESSAGES = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
             "Read-only file system": errno.EROFS, "Permission denied": errno.EACCES,
             "File too large": errno.EFBIG, "Is a directory": errno.EISDIR}


def first_line(err: BaseException, limit: int | None = None) -> str:
    """An exception's first line (its type name when it has no message), at most `limit` characters."""
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]


def describe_os_error(err: OSError, path: str | os.PathLike | None = None, action: str = "access it") -> str:
    """One line for an OSError: the path, what failed, the cause and the remedy."""
    code = err.errno if err.errno in _FAULTS else next(
        (c for text, c in _MESSAGES.items() if text in str(err)), None)
    where = path if path is not None else (err.filename or "a file")
    if code is None:
        return f"{where}: cannot {action}: {err.strerror or err}"
    cause, remedy = _FAULTS[code]
    return f"{where}: cannot {action}: {cause}; {remedy}"


@contextlib.contextmanager
def _write_faults(path: Path, tmp_holder: list) -> Iterator[None]:
    """OSErrors about writing `path` (or its temporary twin) become one clear ValueError; others
    (an input that cannot be read inside the block) pass on unchanged."""
    try:
        yield
    except OSError as err:
        names = {str(path), *map(str, tmp_holder)}
        if err.filename is None or str(err.filename) in names or any(
                str(err.filename).startswith(f"{t}{os.sep}") for t in tmp_holder):
            raise ValueError(describe_os_error(err, path, "write it")) from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.
    On any failure the temporary file is removed and `path` is left as it was."""
    path = Path(path)
    made: list[Path] = []
    with _write_faults(path, made):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        made.append(tmp)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory; it replaces `path` only if the block succeeds. On any
    failure the temporary directory is removed and the folder at `path` is left as it was."""
    path = Path(path)
    made: list[Path] = []
    with _write_faults(path, made):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        made.append(tmp)
        with _swap_in(tmp, path):
            yield tmp


@contextlib.contextmanager
def _swap_in(tmp: Path, path: Path) -> Iterator[None]:
    try:
        yield
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_file(path: str | os.PathLike, what: str = "a file", remedy: str = "") -> Path:
    """`path` as a Path when it is a readable file; else a ValueError naming it and what is wrong."""
    path = Path(path)
    tail = f"; {remedy}" if remedy else ""
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected {what}{tail}")
    if not path.is_file():
        raise ValueError(f"{path}: {what} not found{tail}")
    return path


def read_json(path: str | os.PathLike):
    """Parse a JSON file (a UTF-8 BOM is accepted); errors name the file and line."""
    path = check_file(path, "a JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}: invalid JSON: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from None


def load_torch(path: str | os.PathLike, what: str, remedy: str, map_location="cpu"):
    """torch.load(weights_only=True) of a pipeline artifact; any failure (missing, truncated,
    foreign) is a ValueError naming the file, what it should hold and what to do about it."""
    import torch

    path = check_file(path, what, remedy)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as err:
        raise ValueError(describe_os_error(err, path, "read it")) from None
    except Exception as err:  # torch raises many types for truncated or foreign files
        reason = first_line(err)
        if "Weights only load failed" in reason:
            reason = "it holds pickled objects, not plain tensors, and is refused for safety"
        raise ValueError(f"{path}: cannot read {what} ({type(err).__name__}: {reason}); {remedy}") from None


def save_torch(path: str | os.PathLike, obj) -> None:
    """torch.save, atomically and byte-reproducibly.

    torch.save names the archive inside the file after the file, so saving straight to a
    temporary name would make identical checkpoints differ; serialising to memory first does not.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())      # no copy of the whole archive
