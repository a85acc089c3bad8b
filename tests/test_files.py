"""Reading a page, a policy or a store refuses what is not a regular file, and bounds the size, before reading."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mtotrust._files import open_regular, read_regular


def fail(message: str) -> Exception:
    return ValueError(message)


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(b'{"value": []}')
    assert read_regular(tmp_path / "a.json", 100, fail) == b'{"value": []}'


def test_a_fifo_without_writer_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "p.json"
    os.mkfifo(fifo)
    result: list[BaseException] = []

    def read() -> None:
        try:
            read_regular(fifo, 100, fail)
        except ValueError as exc:
            result.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "opening a FIFO must not wait for a writer"
    assert "FIFO" in str(result[0]) and "regular file" in str(result[0])


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_even_through_a_symlink_is_refused(tmp_path: Path, device: str) -> None:
    link = tmp_path / "users.json"
    link.symlink_to(device)
    with pytest.raises(ValueError, match="character device, not a regular file"):
        read_regular(link, 1 << 20, fail)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a folder"):
        open_regular(tmp_path, 100, fail)


def test_a_file_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_bytes(b"x" * (2 << 20))
    with pytest.raises(ValueError, match=r"is 2 MiB, more than the 1 MiB"):
        read_regular(big, 1 << 20, fail)


def test_a_missing_file_says_why(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read .No such file"):
        read_regular(tmp_path / "nope", 100, fail)
