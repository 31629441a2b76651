"""A real HTTP server on 127.0.0.1 for download tests; counts requests per path."""
from __future__ import annotations

import collections
import io
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def image_bytes(fmt: str = "PNG", color=(200, 30, 30), size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


class ImageServer:
    def __init__(self, delay: float = 0.0, slow_seconds: float = 3.0):
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.delay = delay
        self.slow_seconds = slow_seconds
        self.png, self.jpeg = image_bytes("PNG"), image_bytes("JPEG", (30, 160, 60))
        self.extra: dict[str, bytes] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                with server.lock:
                    server.counts[path] += 1
                    count = server.counts[path]
                if server.delay:
                    time.sleep(server.delay)
                server.respond(self, path, count)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def respond(self, h: BaseHTTPRequestHandler, path: str, count: int) -> None:
        def send(status, body=b"", content_type="image/png", headers=None):
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            try:
                h.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        if path == "/good.png" or path.startswith("/img/") or path == "/bild-ü.png":
            send(200, self.png)
        elif path == "/good.jpg":
            send(200, self.jpeg, "image/jpeg")
        elif path == "/missing.png":
            send(404, b"not found", "text/plain")
        elif path == "/forbidden.png":
            send(403, b"no", "text/plain")
        elif path == "/flaky.png":
            send(500, b"oops", "text/plain") if count <= 2 else send(200, self.png)
        elif path == "/busy.png":
            send(429, b"slow down", "text/plain", {"Retry-After": "1"}) if count == 1 else send(200, self.png)
        elif path == "/slow.png":
            time.sleep(self.slow_seconds)
            send(200, self.png)
        elif path == "/truncated.png":
            send(200, self.png[: len(self.png) // 2])
        elif path == "/page.png":
            send(200, b"<html><body>Error: image not available</body></html>", "text/html")
        elif path == "/huge.png":
            send(200, image_bytes("PNG", size=(800, 800)) + b"\0" * 200_000)
        elif path == "/cut-chunked.png":               # chunked body that ends mid-stream
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(self.png), self.png) + b"4000\r\n" + b"x" * 10)
            h.wfile.flush()
            h.close_connection = True
        elif path == "/cut-length.png":                # Content-Length larger than the body sent
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(len(self.png) + 5000))
            h.end_headers()
            h.wfile.write(self.png)
            h.close_connection = True
        elif path == "/garbage.png":                   # not HTTP at all
            h.wfile.write(b"\x00\x01 this is not http\r\n\r\n")
            h.close_connection = True
        elif path == "/trickle.png":                   # a few bytes a second, for ever
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(len(self.png)))
            h.end_headers()
            try:
                for i in range(0, len(self.png), 4):
                    h.wfile.write(self.png[i:i + 4])
                    h.wfile.flush()
                    time.sleep(0.25)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path in self.extra:                        # images of particular modes, set by tests
            send(200, self.extra[path])
        elif path == "/redirect.png":
            send(302, b"", "text/plain", {"Location": "/good.png"})
        else:
            send(404, b"no route", "text/plain")

    def __enter__(self) -> "ImageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    import sys
    with ImageServer(delay=float(sys.argv[1]) if len(sys.argv) > 1 else 0.0) as s:
        print(s.url, flush=True)
        threading.Event().wait()
