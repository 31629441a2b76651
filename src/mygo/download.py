"""Concurrent, resumable, validated image downloads.

Each URL is stored under a name derived from its hash (`<sha256(url)[:32]>.png`, with a small
`.json` record of how it was fetched), written to a temporary name and renamed once complete and
validated, so a crash or Ctrl-C never leaves a partial file and a re-run fetches only what is
missing or invalid.
"""
from __future__ import annotations

import hashlib
import io
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from mygo.io import atomic_path, read_json, write_json
from mygo.params import DownloadConfig

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


def _read_capped(stream, max_bytes: int) -> bytes:
    chunks, total = [], 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise DownloadError("too_large", f"body exceeds max_bytes={max_bytes}")
        chunks.append(chunk)


def fetch(url: str, base_dir: Path, config: DownloadConfig) -> tuple[bytes, int | None]:
    """The raw bytes behind `url` (one attempt) and the HTTP status code, if any."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        request = urllib.request.Request(to_ascii_url(url), headers={"User-Agent": config.user_agent})
        try:
            with urllib.request.urlopen(request, timeout=config.timeout) as response:
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > config.max_bytes:
                    raise DownloadError("too_large", f"Content-Length {length} exceeds max_bytes", response.status)
                return _read_capped(response, config.max_bytes), response.status
        except urllib.error.HTTPError as err:
            retry_after = err.headers.get("Retry-After") if err.headers else None
            seconds = float(retry_after) if retry_after and retry_after.strip().isdigit() else None
            raise DownloadError("http_error", f"HTTP {err.code} {err.reason}", err.code,
                                retry=err.code in RETRY_STATUS, retry_after=seconds) from None
        except urllib.error.URLError as err:
            if isinstance(err.reason, (socket.timeout, TimeoutError)):
                raise DownloadError("timeout", f"timed out after {config.timeout}s", retry=True) from None
            raise DownloadError("connection_error", str(err.reason), retry=True) from None
        except (socket.timeout, TimeoutError):
            raise DownloadError("timeout", f"timed out after {config.timeout}s", retry=True) from None
        except OSError as err:
            raise DownloadError("connection_error", str(err), retry=True) from None
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        path = path if path.is_absolute() else base_dir / path
    elif scheme in ("", ) or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):
        path = Path(url) if Path(url).is_absolute() else base_dir / url
    else:
        raise DownloadError("invalid_url", f"unsupported URL scheme {scheme!r}")
    if not path.is_file():
        raise DownloadError("missing_file", f"no such file: {path}")
    if path.stat().st_size > config.max_bytes:
        raise DownloadError("too_large", f"{path.stat().st_size} bytes exceeds max_bytes")
    return path.read_bytes(), None


def decode_image(data: bytes, max_side: int) -> Image.Image:
    """Fully decode `data` as an RGB image (rejecting HTML, truncated and corrupt files)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise DownloadError("not_an_image", f"cannot decode as an image: {err}") from None
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


def download_one(entity: int, url: str, out_dir: Path, base_dir: Path, config: DownloadConfig,
                 sleep=time.sleep) -> Result:
    name = stored_name(url)
    target = out_dir / name
    if target.exists() and _sidecar(target).exists() and is_valid_stored(target):
        # Already stored by an earlier run: report what that run recorded, so the manifest is
        # the same whether or not a run was interrupted.
        recorded = read_json(_sidecar(target))
        return Result(entity, url, "ok", recorded["http_code"], recorded["attempts"], recorded["bytes"],
                      hashlib.sha256(target.read_bytes()).hexdigest(), name)
    attempts = 0
    while True:
        attempts += 1
        code, size = None, 0
        try:
            data, code = fetch(url, base_dir, config)
            size = len(data)
            image = decode_image(data, config.max_side)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            stored = buffer.getvalue()
            with atomic_path(target) as tmp:
                tmp.write_bytes(stored)
            # written last: marks the file complete
            write_json(_sidecar(target), {"url": url, "http_code": code, "attempts": attempts, "bytes": len(data)})
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
                 config: DownloadConfig, progress: bool = True) -> list[Result]:
    """Download every (entity, url) job with a thread pool; results in job order."""
    out_dir, base_dir = Path(out_dir), Path(base_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*.tmp"):                 # left by a run that was killed
        stale.unlink()
    results: list[Result | None] = [None] * len(jobs)
    failures = 0
    bar = tqdm(total=len(jobs), desc="download_images", unit="img", disable=not progress)
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
