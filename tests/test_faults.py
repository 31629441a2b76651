"""The machine's faults as a class: a full or read-only filesystem, a directory where a file is
expected. Each stage ends with one line naming the path and the cause (exit 1, no traceback),
removes its temporary files and leaves what was at its output paths byte for byte."""
import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, run_stage
from mygo.io import atomic_dir, atomic_path, describe_os_error

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "filler"}


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs (root only), unmounted afterwards."""
    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> None:
    """Write until the filesystem is full (unbuffered, in ever smaller pieces)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as err:
                assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)


def stage_commands(processed: Path, out: Path, model: Path) -> dict[str, list]:
    params = ["--params", processed / "params.yaml"]
    return {
        "prepare": [ROOT / "stages/prepare.py", ROOT / "data/raw/demo", out / "kg", *params],
        "download_images": [ROOT / "stages/download_images.py", processed / "kg", out / "images",
                            out / "image_manifest.parquet", "--base-dir", ROOT / "data/raw/demo", *params],
        "tokenize_text": [ROOT / "stages/tokenize_text.py", processed / "kg", out / "text", *params],
        "select_tokens": [ROOT / "stages/select_tokens.py", processed / "kg", out / "tokens", "--text-dir",
                          processed / "text", *params],
        "train": [ROOT / "stages/train.py", processed / "kg", processed / "tokens", out / "model.pt", "--resume",
                  out / "resume/state.pt", "--live", out / "train", *params],
        "evaluate": [ROOT / "stages/evaluate.py", processed / "kg", model, out / "eval.json",
                     out / "per_relation.json", *params],
    }


def previous_outputs(out: Path) -> None:
    """What an earlier run left at the output paths (folders and files)."""
    for folder in ("kg", "images", "text", "tokens", "train", "resume"):
        (out / folder).mkdir(parents=True, exist_ok=True)
        (out / folder / "earlier.bin").write_bytes(os.urandom(3000))
    for name in ("model.pt", "train.json", "eval.json", "per_relation.json", "image_manifest.parquet"):
        (out / name).write_bytes(b"earlier " + name.encode())


def one_error_line(result) -> str:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["prepare", "download_images", "tokenize_text", "select_tokens", "train",
                                   "evaluate"])
def test_a_full_disk_is_one_line_and_loses_nothing(small_fs, demo_processed, trained, stage):
    previous_outputs(small_fs)
    before = snapshot(small_fs)
    fill(small_fs)
    command = stage_commands(demo_processed, small_fs, trained)[stage]
    result = run_stage(*command, check=False)
    line = one_error_line(result)
    assert str(small_fs) in line and "no space left on the device" in line and "free space" in line
    (small_fs / "filler").unlink()
    assert snapshot(small_fs) == before                                   # byte for byte
    assert not [p for p in small_fs.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".old")]


@pytest.mark.slow
def test_a_read_only_filesystem_is_one_line(small_fs, demo_processed, trained):
    previous_outputs(small_fs)
    before = snapshot(small_fs)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        for stage in ("select_tokens", "evaluate"):
            result = run_stage(*stage_commands(demo_processed, small_fs, trained)[stage], check=False)
            assert "the filesystem is read-only" in one_error_line(result)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert snapshot(small_fs) == before


def test_a_directory_where_a_file_is_expected(demo_processed, trained, tmp_path):
    """As an output (evaluate's eval.json) and as an input (the graph's entities table)."""
    (tmp_path / "eval.json").mkdir()
    result = run_stage(ROOT / "stages/evaluate.py", demo_processed / "kg", trained, tmp_path / "eval.json",
                       tmp_path / "per_relation.json", "--params", demo_processed / "params.yaml", check=False)
    assert "eval.json: cannot write it: a directory is where a file is expected" in one_error_line(result)
    kg = tmp_path / "kg"
    shutil.copytree(demo_processed / "kg", kg)
    (kg / "entities.parquet").unlink()
    (kg / "entities.parquet").mkdir()
    result = run_stage(ROOT / "stages/evaluate.py", kg, trained, tmp_path / "e.json", tmp_path / "r.json",
                       "--params", demo_processed / "params.yaml", check=False)
    assert "entities.parquet: is a directory, expected a Parquet file" in one_error_line(result)


@pytest.mark.parametrize("code, text, cause", [
    (errno.ENOSPC, "No space left on device", "no space left on the device"),
    (errno.EDQUOT, "Disk quota exceeded", "disk quota exceeded"),
    (errno.EROFS, "Read-only file system", "the filesystem is read-only"),
    (errno.EACCES, "Permission denied", "permission denied"),
])
def test_each_fault_names_path_cause_and_remedy(tmp_path, code, text, cause):
    """From an errno, and from the bare message pyarrow's I/O errors carry; the temporary file or
    folder is removed and the previous output stays."""
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    for err in (OSError(code, text), OSError(f"IOError: [Errno {code}] {text}")):
        message = describe_os_error(err, target, "write it")
        assert message.startswith(f"{target}: cannot write it: {cause}; ") and len(message.splitlines()) == 1
        with pytest.raises(ValueError, match=cause):
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"half")
                raise err
        assert target.read_bytes() == b"previous"
        with pytest.raises(ValueError, match=cause):
            with atomic_dir(tmp_path / "folder") as tmp:
                (tmp / "a").write_bytes(b"half")
                raise err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_an_error_reading_an_input_inside_a_write_is_not_called_a_write_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "out.bin") as tmp:
            (tmp_path / "missing-input").read_bytes()
            tmp.write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []
