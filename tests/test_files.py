"""Reading a page, a policy or a store refuses what is not a regular file, and bounds the size, before reading."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import hostile as h
import pytest

from mtotrust import Policy, PolicyError, Snapshot, SnapshotError
from mtotrust._files import open_regular, read_regular


def fail(message: str) -> Exception:
    return ValueError(message)


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(b'{"value": []}')
    assert read_regular(tmp_path / "a.json", 100, fail) == b'{"value": []}'


def test_a_fifo_without_writer_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "p.json"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is a FIFO .named pipe., not a regular file"):
        h.bounded(read_regular, fifo, 100, fail, timeout=5)  # raises hostile.Hang if opening waits for a writer


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


# -- every reader goes through it -----------------------------------------------------------------------------

SAMPLE = Path(__file__).resolve().parent.parent / "mtotrust" / "sample"


def sample_copy(root: Path) -> Path:
    folder = root / "snap"
    shutil.copytree(SAMPLE, folder)
    return folder


def test_a_users_page_that_is_a_fifo_is_a_snapshot_error(tmp_path: Path) -> None:
    folder = sample_copy(tmp_path)
    page = sorted((folder / "users").glob("*.json"))[0]
    page.unlink()
    os.mkfifo(page)
    with pytest.raises(SnapshotError, match="FIFO") as caught:
        Snapshot.load(folder)
    assert caught.value.file == str(page)


@pytest.mark.parametrize("name", ["organization.json", "partners.json", "snapshot.json"])
def test_a_snapshot_file_linked_to_dev_zero_is_a_snapshot_error(tmp_path: Path, name: str) -> None:
    folder = sample_copy(tmp_path)
    (folder / name).unlink(missing_ok=True)
    (folder / name).symlink_to("/dev/zero")
    with pytest.raises(SnapshotError, match="character device, not a regular file"):
        Snapshot.load(folder)


def test_a_delta_page_linked_to_dev_zero_is_a_snapshot_error(tmp_path: Path) -> None:
    link = tmp_path / "delta.json"
    link.symlink_to("/dev/zero")
    with pytest.raises(SnapshotError, match="character device"):
        Snapshot.load(SAMPLE).with_delta(link)


def test_a_store_path_that_is_a_device_says_so(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="character device, not a regular file") as caught:
        Snapshot.load("/dev/zero")
    assert "no such" not in str(caught.value)


def test_a_policy_that_is_a_fifo_or_a_device_is_a_policy_error(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.toml"
    os.mkfifo(fifo)
    with pytest.raises(PolicyError, match=r"policy file .*policy\.toml' is a FIFO"):
        Policy.load(fifo)
    with pytest.raises(PolicyError, match="character device"):
        Policy.load("/dev/zero")


def test_a_policy_over_16_mib_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    big = tmp_path / "policy.toml"
    big.write_bytes(b"version = 1\n" + b"#" * (16 << 20))
    with pytest.raises(PolicyError, match="more than the 16 MiB"):
        Policy.load(big)


def test_check_does_not_hang_on_a_fifo_page(tmp_path: Path) -> None:
    folder = sample_copy(tmp_path)
    page = sorted((folder / "users").glob("*.json"))[0]
    page.unlink()
    os.mkfifo(page)
    proc = subprocess.run([sys.executable, "-m", "mtotrust", "check", "--snapshot", str(folder), "x@y.z"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "FIFO" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
