"""Concurrent, resumable, validated image downloads.

Each URL is stored under a name derived from its hash (`<sha256(url)[:32]>.png`, with a small
`.json` record of how it was fetched), written to a temporary name and renamed once complete and
validated, so a crash or Ctrl-C never leaves a partial file and a re-run fetches only what is
missing or invalid.
"""
from __future__ import annotations

import collections
import hashlib
import http.client
import io
import logging
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from mygo import tables
from mygo.progress import bar as progress_bar

from mygo.io import atomic_path, describe_os_error, read_json, write_json
from mygo.params import DownloadImagesParams

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}


@dataclass
class Result:
    entity: int
    url: str
    status: str
    http_code: int | None = None
    attempts: int = 0
    bytes: int = 0
    sha256: str | None = None
    path: str | None = None
    error: str | None = None


class DownloadError(Exception):
    def __init__(self, status: str, message: str, http_code: int | None = None, retry: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status, self.http_code, self.retry, self.retry_after = status, http_code, retry, retry_after


class LocalFault(ValueError):
    """A problem of this machine, not of one URL: ends the stage with a clear message."""


def stored_name(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:32] + ".png"


def to_ascii_url(url: str) -> str:
    """Percent-encode non-ASCII characters of path and query, IDNA-encode the host."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname.encode("idna").decode("ascii") if parts.hostname else ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.username:
        netloc = f"{parts.username}{':' + parts.password if parts.password else ''}@{netloc}"
    path = urllib.parse.quote(parts.path, safe="/%:@!$&'()*+,;=~")
    query = urllib.parse.quote(parts.query, safe="=&%:@!$'()*+,;/?~")
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, ""))


class _Deadline:
    """A whole-request time limit: when it passes, every socket the request opened is shut down,
    so a slow connect, trickled headers or a body that drips a few bytes a second all end."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


_request_state = threading.local()      # the running request's _Deadline, per worker thread


class _HTTPConnection(http.client.HTTPConnection):
    def connect(self):
        super().connect()
        _request_state.deadline.register(self.sock)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self):
        super().connect()
        _request_state.deadline.register(self.sock)


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_HTTPSConnection, req, context=self._context)


_OPENER = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)


def _read_capped(stream, max_bytes: int) -> bytes:
    chunks, total = [], 0
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise DownloadError("too_large", f"body exceeds max_bytes={max_bytes}")
        chunks.append(chunk)


def _fetch_http(url: str, config: DownloadImagesParams) -> tuple[bytes, int | None]:
    """One HTTP(S) attempt under a whole-request deadline of `config.timeout` seconds."""
    try:
        request = urllib.request.Request(to_ascii_url(url), headers={"User-Agent": config.user_agent})
    except (ValueError, UnicodeError) as err:
        raise DownloadError("invalid_url", f"malformed URL: {err}") from None
    deadline = _Deadline(config.timeout)
    _request_state.deadline = deadline
    try:
        with deadline, _OPENER.open(request, timeout=config.timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > config.max_bytes:
                raise DownloadError("too_large", f"Content-Length {length} exceeds max_bytes", response.status)
            data = _read_capped(response, config.max_bytes)
            if deadline.expired:
                raise TimeoutError
            if length and length.isdigit() and len(data) < int(length):
                raise http.client.IncompleteRead(data, int(length) - len(data))
            return data, response.status
    except DownloadError:
        raise
    except urllib.error.HTTPError as err:
        retry_after = err.headers.get("Retry-After") if err.headers else None
        seconds = float(retry_after) if retry_after and retry_after.strip().isdigit() else None
        raise DownloadError("http_error", f"HTTP {err.code} {err.reason}", err.code,
                            retry=err.code in RETRY_STATUS, retry_after=seconds) from None
    except Exception as err:  # every failure of one URL becomes its manifest row
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        if deadline.expired or isinstance(reason, (socket.timeout, TimeoutError)):
            raise DownloadError("timeout", f"request exceeded the {config.timeout}s deadline "
                                           f"(connect + headers + body)", retry=True) from None
        if isinstance(reason, (ValueError, UnicodeError)) or isinstance(err, http.client.InvalidURL):
            raise DownloadError("invalid_url", f"malformed URL: {reason}") from None
        if isinstance(err, http.client.HTTPException) or isinstance(reason, http.client.HTTPException):
            raise DownloadError("protocol_error", f"{type(reason).__name__}: {reason}", retry=True) from None
        raise DownloadError("connection_error", f"{type(reason).__name__}: {reason}", retry=True) from None
    finally:
        _request_state.deadline = None


def fetch(url: str, base_dir: Path, config: DownloadImagesParams) -> tuple[bytes, int | None]:
    """The raw bytes behind `url` (one attempt) and the HTTP status code, if any."""
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
    except ValueError as err:
        raise DownloadError("invalid_url", f"malformed URL: {err}") from None
    if scheme in ("http", "https"):
        return _fetch_http(url, config)
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        path = path if path.is_absolute() else base_dir / path
    elif scheme in ("", ) or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):
        path = Path(url) if Path(url).is_absolute() else base_dir / url
    else:
        raise DownloadError("invalid_url", f"unsupported URL scheme {scheme!r}")
    try:
        if not path.is_file():
            raise DownloadError("missing_file", f"no such file: {path}")
        if path.stat().st_size > config.max_bytes:
            raise DownloadError("too_large", f"{path.stat().st_size} bytes exceeds max_bytes")
        return path.read_bytes(), None
    except OSError as err:
        raise DownloadError("unreadable_file", f"{path}: {err}") from None


def to_rgb8(image: Image.Image) -> Image.Image:
    """8-bit RGB with the image's values kept, from any mode Pillow opens.

    Pillow's own convert("RGB") clips 16- and 32-bit greyscale (I;16, I, F) to 255, turning a
    0x8080 grey white; those are rescaled instead (16-bit by 1/257, float in [0, 1] by 255).
    Transparency is composited onto white.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) if array.size else 0.0
        if mode == "F" and top <= 1.0:
            array = array * 255.0
        elif top > 255.0 or mode.startswith("I;16"):
            array = array / 257.0
        grey = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info) \
            or (mode in ("L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, max_side: int) -> Image.Image:
    """Fully decode `data` (the first frame of an animation) as 8-bit RGB, rejecting HTML,
    truncated and corrupt files."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)
            image.load()
            image = to_rgb8(image)
    except (UnidentifiedImageError, OSError, ValueError, EOFError, SyntaxError, TypeError,
            Image.DecompressionBombError) as err:
        raise DownloadError("not_an_image", f"cannot decode as an image: {type(err).__name__}: {err}") from None
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def is_valid_stored(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:
        return False


def _sidecar(target: Path) -> Path:
    return target.with_suffix(".json")


def _recorded(target: Path) -> dict | None:
    """The record of a complete earlier download of `target`, or None (absent, partial, corrupt)."""
    if not (target.exists() and _sidecar(target).exists() and is_valid_stored(target)):
        return None
    try:
        recorded = read_json(_sidecar(target))
        return recorded if {"http_code", "attempts", "bytes"} <= set(recorded) else None
    except (ValueError, TypeError):
        return None


def _local_source_digest(url: str, base_dir: Path) -> str | None:
    """sha256 of a local image file (a path or file:// URL), so a changed file is stored again;
    None for http(s), whose stored copy is final (a finished URL is never requested again)."""
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme in ("http", "https"):
            return None
        if scheme == "file":
            path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        else:
            path = Path(url)
        path = path if path.is_absolute() else base_dir / path
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    except (ValueError, OSError):
        return None


def download_one(entity: int, url: str, out_dir: Path, base_dir: Path, config: DownloadImagesParams,
                 sleep=time.sleep) -> Result:
    name = stored_name(url)
    target = out_dir / name
    source = _local_source_digest(url, base_dir)
    recorded = _recorded(target)
    if recorded is not None and recorded.get("source_sha256") != source:
        recorded = None     # a local file that changed since it was stored: store it again
    if recorded is not None:
        # Already stored by an earlier run: report what that run recorded, so the manifest is
        # the same whether or not a run was interrupted.
        return Result(entity, url, "ok", recorded["http_code"], recorded["attempts"], recorded["bytes"],
                      hashlib.sha256(target.read_bytes()).hexdigest(), name)
    attempts = 0
    while True:
        attempts += 1
        code, size = None, 0
        try:
            try:
                data, code = fetch(url, base_dir, config)
                size = len(data)
                image = decode_image(data, config.max_side)
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                stored = buffer.getvalue()
            except DownloadError:
                raise
            except Exception as err:  # anything else about this URL's bytes is still this URL's row
                raise DownloadError("error", f"{type(err).__name__}: {err}") from None
            try:
                with atomic_path(target) as tmp:
                    tmp.write_bytes(stored)
                # written last: marks the file complete
                write_json(_sidecar(target), {"url": url, "http_code": code, "attempts": attempts,
                                              "bytes": len(data), "source_sha256": source})
            except OSError as err:      # a local fault (disk full, unwritable dir): the stage stops
                raise LocalFault(describe_os_error(err, target, "store this image")) from None
            except ValueError as err:   # the same, as described by the write path
                raise LocalFault(str(err)) from None
            return Result(entity, url, "ok", code, attempts, len(data), hashlib.sha256(stored).hexdigest(), name)
        except DownloadError as err:
            if err.retry and attempts <= config.retries:
                delay = config.backoff * 2 ** (attempts - 1)
                if err.retry_after is not None:
                    delay = min(max(delay, err.retry_after), config.max_retry_after)
                sleep(delay)
                continue
            return Result(entity, url, err.status, err.http_code if err.http_code is not None else code,
                          attempts, size, error=str(err))


def download_all(jobs: list[tuple[int, str]], out_dir: str | Path, base_dir: str | Path,
                 config: DownloadImagesParams, progress: bool = True) -> list[Result]:
    """Download every (entity, url) job with a thread pool; results in job order."""
    out_dir, base_dir = Path(out_dir), Path(base_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LocalFault(describe_os_error(err, out_dir, "create the image directory")) from None
    for stale in out_dir.glob(".*.tmp"):                 # left by a run that was killed
        stale.unlink()
    results: list[Result | None] = [None] * len(jobs)
    failures = 0
    bar = progress_bar(total=len(jobs), desc="download_images", unit="img", enabled=progress)
    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool:
        futures = {pool.submit(download_one, e, u, out_dir, base_dir, config): i for i, (e, u) in enumerate(jobs)}
        for future in as_completed(futures):
            result = future.result()
            results[futures[future]] = result
            failures += result.status != "ok"
            bar.set_postfix(failed=failures)
            bar.update()
    bar.close()
    return results  # type: ignore[return-value]


def select_jobs(image_urls: list[list[str]], max_per_entity: int) -> list[tuple[int, str]]:
    """(entity, url) pairs: at most `max_per_entity` per entity, first listed first, no repeats."""
    jobs = []
    for entity, urls in enumerate(image_urls):
        seen: list[str] = []
        for url in urls:
            if url not in seen:
                seen.append(url)
        jobs.extend((entity, u) for u in seen[:max_per_entity])
    return jobs


def download_images(image_urls: list[list[str]], images_dir: str | Path, base_dir: str | Path,
                    config: DownloadImagesParams, progress: bool = True) -> tuple[pa.Table, dict]:
    """Download (or copy, for local paths) each entity's images into the store `images_dir`.

    Files of URLs no longer listed are removed first, so the store holds exactly this dataset's
    images; finished files are kept across runs. Returns the manifest (one row per URL, in
    tables.IMAGE_MANIFEST's schema) and a summary with counts by status."""
    images_dir = Path(images_dir)
    jobs = select_jobs(image_urls, config.max_images_per_entity)
    wanted = {stored_name(url) for _, url in jobs}
    if images_dir.exists():
        for path in [*images_dir.glob("*.png"), *images_dir.glob("*.json")]:
            if path.with_suffix(".png").name not in wanted:
                path.unlink()
    results = download_all(jobs, images_dir, base_dir, config, progress)
    table = pa.table({
        "entity": [r.entity for r in results], "url": [r.url for r in results],
        "status": [r.status for r in results], "http_code": pa.array([r.http_code for r in results], pa.int32()),
        "attempts": [r.attempts for r in results], "bytes": [r.bytes for r in results],
        "sha256": [r.sha256 for r in results], "path": [r.path for r in results],
        "error": [r.error for r in results],
    }) if results else tables.IMAGE_MANIFEST.empty_table()
    counts = collections.Counter(r.status for r in results)
    failed = len(results) - counts.get("ok", 0)
    summary = {"urls": len(results), "ok": counts.get("ok", 0), "failed": failed,
               "failure_rate": failed / len(results) if results else 0.0,
               "entities_with_images": len({r.entity for r in results if r.status == "ok"}),
               "by_status": dict(sorted(counts.items()))}
    return table, summary
