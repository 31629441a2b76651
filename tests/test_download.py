import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from conftest import ROOT, run_stage, write_named, write_params
from http_server import ImageServer, image_bytes
from mygo import tables
from mygo.download import DownloadImagesParams, download_all, download_one, select_jobs, stored_name

CONFIG = DownloadImagesParams(workers=4, timeout=1.0, retries=3, backoff=0.05, max_retry_after=2.0,
                        max_bytes=100_000, max_side=32, max_images_per_entity=5, max_failure_rate=0.5)


@pytest.fixture(scope="module")
def server():
    with ImageServer(slow_seconds=2.5) as s:
        yield s


def fetch(server, tmp_path, path, config=CONFIG):
    sleeps = []
    result = download_one(0, server.url + path, tmp_path, tmp_path, config, sleep=sleeps.append)
    return result, sleeps


@pytest.mark.parametrize("path", ["/good.png", "/good.jpg", "/redirect.png", "/bild-ü.png"])
def test_good_images(server, tmp_path, path):
    result, _ = fetch(server, tmp_path, path)
    assert result.status == "ok", result.error
    stored = tmp_path / result.path
    assert stored.name == stored_name(server.url + path)
    with Image.open(stored) as image:
        assert image.mode == "RGB" and max(image.size) <= 32        # downscaled to max_side
    assert len(result.sha256) == 64


@pytest.mark.parametrize("path, status, code, attempts", [
    ("/missing.png", "http_error", 404, 1),
    ("/forbidden.png", "http_error", 403, 1),
    ("/truncated.png", "not_an_image", 200, 1),
    ("/page.png", "not_an_image", 200, 1),
    ("/huge.png", "too_large", None, 1),
])
def test_failures_are_recorded_not_retried(server, tmp_path, path, status, code, attempts):
    result, sleeps = fetch(server, tmp_path, path)
    assert (result.status, result.attempts) == (status, attempts)
    if code is not None:
        assert result.http_code == code
    assert result.path is None and result.error and not sleeps
    assert not list(tmp_path.iterdir())                              # nothing half-written


def test_retries_5xx_then_ok(server, tmp_path):
    result, sleeps = fetch(server, tmp_path, "/flaky.png")
    assert result.status == "ok" and result.attempts == 3
    assert sleeps == [0.05, 0.1]                                     # exponential backoff
    assert server.counts["/flaky.png"] == 3


def test_429_honours_retry_after(server, tmp_path):
    result, sleeps = fetch(server, tmp_path, "/busy.png")
    assert result.status == "ok" and result.attempts == 2
    assert sleeps == [1.0]


def test_timeout_is_retried_then_recorded(server, tmp_path):
    config = DownloadImagesParams(**{**CONFIG.__dict__, "retries": 1, "timeout": 0.5})
    result, sleeps = fetch(server, tmp_path, "/slow.png", config)
    assert result.status == "timeout" and result.attempts == 2 and len(sleeps) == 1


def test_local_paths_and_file_urls(tmp_path):
    (tmp_path / "a.png").write_bytes(image_bytes())
    for url in ("a.png", (tmp_path / "a.png").as_uri(), str(tmp_path / "a.png")):
        result = download_one(1, url, tmp_path / "store", tmp_path, CONFIG)
        assert result.status == "ok", (url, result.error)
    assert download_one(1, "nope.png", tmp_path / "store", tmp_path, CONFIG).status == "missing_file"
    assert download_one(1, "ftp://x/y.png", tmp_path / "store", tmp_path, CONFIG).status == "invalid_url"


def test_select_jobs_caps_and_dedups():
    jobs = select_jobs([["a", "b", "a", "c"], [], ["d"]], 2)
    assert jobs == [(0, "a"), (0, "b"), (2, "d")]


def test_download_all_keeps_job_order(server, tmp_path):
    jobs = [(i, f"{server.url}/img/{i}.png") for i in range(10)] + [(10, server.url + "/missing.png")]
    results = download_all(jobs, tmp_path, tmp_path, CONFIG, progress=False)
    assert [r.entity for r in results] == list(range(11))
    assert [r.status for r in results] == ["ok"] * 10 + ["http_error"]


def _dataset(tmp_path, urls_per_entity):
    lines = "".join(f"e{i}\t\t" + "\t".join(urls) + "\n" for i, urls in enumerate(urls_per_entity))
    n = len(urls_per_entity)
    train = "".join(f"e{i}\tr\te{(i + 1) % n}\n" for i in range(n))
    raw = write_named(tmp_path / "raw", lines, train, "e0\tr\te1\n", "e1\tr\te2\n")
    run_stage(ROOT / "stages/prepare.py", raw, tmp_path / "kg")
    return raw


def _params(tmp_path, **overrides):
    return write_params(tmp_path / "params.yaml", {"download_images": {**CONFIG.__dict__, **overrides}})


@pytest.mark.slow
def test_stage_manifest_and_failure_rate(server, tmp_path):
    raw = _dataset(tmp_path, [[server.url + "/good.png", server.url + "/missing.png"], [server.url + "/page.png"], []])
    params = _params(tmp_path)
    args = [ROOT / "stages/download_images.py", tmp_path / "kg", tmp_path / "images", tmp_path / "manifest.parquet",
            "--base-dir", raw, "--summary", tmp_path / "summary.json", "--params", params]
    result = run_stage(*args, check=False)
    assert result.returncode == 1 and "max_failure_rate" in result.stderr      # 2 of 3 failed
    manifest = tables.read_image_manifest(tmp_path / "manifest.parquet").to_pylist()
    assert [(r["entity"], r["status"], r["http_code"]) for r in manifest] == [
        (0, "ok", 200), (0, "http_error", 404), (1, "not_an_image", 200)]
    assert "1 ok, 2 failed" in run_stage(*args[:-1], _params(tmp_path, max_failure_rate=0.9)).stderr


@pytest.mark.slow
def test_resume_after_kill_fetches_nothing_twice(tmp_path):
    n = 40
    with ImageServer(delay=0.15) as server:
        raw = _dataset(tmp_path, [[f"{server.url}/img/{i}.png"] for i in range(n)])
        params = _params(tmp_path, workers=2)
        images = tmp_path / "images"
        cmd = [sys.executable, str(ROOT / "stages/download_images.py"), str(tmp_path / "kg"), str(images),
               str(tmp_path / "manifest.parquet"), "--base-dir", str(raw), "--params", str(params)]
        process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        def completed() -> set[str]:       # an image is complete once its .json, written last, is there
            return {p.name for p in images.glob("*.png") if p.with_suffix(".json").exists()}

        deadline = time.time() + 60
        while time.time() < deadline and len(completed()) < 8:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        done_before = completed()
        assert 8 <= len(done_before) < n, "the run should be stopped part-way"
        counts_before = dict(server.counts)
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        finished = {p.name for p in images.glob("*.png")}
        assert finished == {stored_name(f"{server.url}/img/{i}.png") for i in range(n)}
        assert not [p for p in images.iterdir() if p.suffix == ".tmp"]
        repeated = [i for i in range(n) if stored_name(f"{server.url}/img/{i}.png") in done_before
                    and server.counts[f"/img/{i}.png"] != 1]
        assert repeated == [], f"completed files fetched again: {repeated}"
        assert sum(server.counts.values()) - sum(counts_before.values()) <= n - len(done_before)
        manifest = tables.read_image_manifest(tmp_path / "manifest.parquet")
        assert manifest["status"].to_pylist() == ["ok"] * n
        # the manifest records the original fetch, not whether a run was interrupted
        assert manifest["attempts"].to_pylist() == [1] * n and manifest["http_code"].to_pylist() == [200] * n


@pytest.mark.parametrize("path, status", [
    ("/cut-chunked.png", "protocol_error"),      # http.client.IncompleteRead mid-body
    ("/cut-length.png", "protocol_error"),       # fewer bytes than Content-Length
    ("/garbage.png", "protocol_error"),          # BadStatusLine
])
def test_server_misbehaviour_is_that_urls_row(server, tmp_path, path, status):
    config = DownloadImagesParams(**{**CONFIG.__dict__, "retries": 1})
    result, sleeps = fetch(server, tmp_path, path, config)
    assert (result.status, result.attempts) == (status, 2), result.error
    assert result.error and len(sleeps) == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/x.png", "http://[::1/x.png", "http://exa mple.com/\x00",
                                 "ftp://127.0.0.1/x.png", "http://:80/x.png"])
def test_malformed_urls_are_rows_not_crashes(tmp_path, url):
    result = download_one(3, url, tmp_path, tmp_path, DownloadImagesParams(**{**CONFIG.__dict__, "retries": 0}),
                          sleep=lambda s: None)
    assert result.status in ("invalid_url", "connection_error") and result.url == url and result.error


def test_whole_request_deadline_bounds_a_trickling_body(server, tmp_path):
    config = DownloadImagesParams(**{**CONFIG.__dict__, "retries": 0, "timeout": 1.0})
    started = time.monotonic()
    result, _ = fetch(server, tmp_path, "/trickle.png", config)
    assert result.status == "timeout" and "deadline" in result.error
    assert time.monotonic() - started < 3.0            # each read alone would never time out


def _encoded(image: Image.Image, fmt="PNG", **kwargs) -> bytes:
    import io
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _image_cases():
    import numpy as np
    grey16 = Image.fromarray(np.full((8, 8), 0x8080, dtype=np.uint16))                     # I;16
    grey32 = Image.fromarray(np.full((8, 8), 0x8080, dtype=np.int32))                      # I
    floats = Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32))                       # F in [0, 1]
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 128, 128, 128] + [0] * 762)
    transparent = palette.copy()
    transparent.info["transparency"] = 0
    frames = [Image.new("RGB", (8, 8), (128, 128, 128)), Image.new("RGB", (8, 8), (0, 0, 0))]
    return {
        "/m/i16.png": _encoded(grey16), "/m/i32.tiff": _encoded(grey32, "TIFF"), "/m/f.tiff": _encoded(floats, "TIFF"),
        "/m/cmyk.jpg": _encoded(Image.new("CMYK", (8, 8), (0, 0, 0, 127)), "JPEG", quality=100),
        "/m/la.png": _encoded(Image.new("LA", (8, 8), (128, 255))),
        "/m/p-transparency.png": _encoded(transparent, transparency=0),
        "/m/animated.gif": _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
    }


@pytest.mark.parametrize("path", sorted(_image_cases()))
def test_every_mode_becomes_8bit_rgb_with_values_kept(server, tmp_path, path):
    import numpy as np
    server.extra.update(_image_cases())
    result, _ = fetch(server, tmp_path, path)
    assert result.status == "ok", result.error
    with Image.open(tmp_path / result.path) as image:
        assert image.mode == "RGB"
        values = np.asarray(image)
    assert abs(float(values.mean()) - 128) <= 2, (path, values.mean())      # 0x8080 grey stays ~128


def test_local_fault_stops_the_stage(server, tmp_path):
    from mygo.download import LocalFault
    blocked = tmp_path / "file"
    blocked.write_text("a file where the image directory should be")
    with pytest.raises(LocalFault, match="cannot create the image directory"):
        download_all([(0, server.url + "/good.png")], blocked / "images", tmp_path, CONFIG, progress=False)


def test_changed_local_file_is_stored_again(tmp_path):
    """Local images (paths, file://) are re-read when their content changes; http is final."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.png").write_bytes(image_bytes("PNG", (200, 30, 30)))
    out = tmp_path / "images"
    out.mkdir()
    first = download_one(0, "a.png", out, raw, CONFIG)
    again = download_one(0, "a.png", out, raw, CONFIG)
    assert first.status == again.status == "ok" and first.sha256 == again.sha256
    (raw / "a.png").write_bytes(image_bytes("PNG", (30, 30, 200)))
    changed = download_one(0, "a.png", out, raw, CONFIG)
    assert changed.status == "ok" and changed.sha256 != first.sha256
    with Image.open(out / changed.path) as image:
        assert image.convert("RGB").getpixel((0, 0))[2] > 150          # the new, blue image
