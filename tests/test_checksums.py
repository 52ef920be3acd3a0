"""The remembered SHA-256 of input files (``vae._checksums``)."""

from __future__ import annotations

import logging
import os

import pytest

import vae._checksums as checksums
from vae._checksums import file_sha256, remembered_sha256
from vae._io import sha256_file


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("VAE_CACHE_DIR", str(folder))
    return folder


def test_digest_is_remembered_and_reused(tmp_path, cache, monkeypatch):
    path = tmp_path / "db.fasta"
    path.write_bytes(b">a\nMKV\n")
    assert remembered_sha256(path) is None
    digest = file_sha256(path)
    assert digest == sha256_file(path)
    assert remembered_sha256(path) == digest
    assert len(list(cache.iterdir())) == 1

    def fail(_):
        raise AssertionError("hashed again")

    monkeypatch.setattr(checksums, "sha256_file", fail)
    assert file_sha256(path) == digest


def test_a_rewritten_file_is_hashed_again_even_with_its_old_mtime(tmp_path, cache):
    path = tmp_path / "db.fasta"
    path.write_bytes(b">a\nMKV\n")
    before = os.stat(path)
    old = file_sha256(path)
    path.write_bytes(b">a\nMKW\n")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    new = file_sha256(path)
    assert new != old
    assert new == sha256_file(path)


def test_a_copy_elsewhere_is_its_own_entry(tmp_path, cache):
    first, second = tmp_path / "a.fasta", tmp_path / "b.fasta"
    first.write_bytes(b">a\nMKV\n")
    second.write_bytes(b">a\nMKV\n")
    assert file_sha256(first) == file_sha256(second)
    assert len(list(cache.iterdir())) == 2


def test_corrupt_entry_is_ignored(tmp_path, cache):
    path = tmp_path / "db.fasta"
    path.write_bytes(b">a\nMKV\n")
    file_sha256(path)
    (entry,) = cache.iterdir()
    entry.write_text("not a digest\n")
    assert remembered_sha256(path) is None
    assert file_sha256(path) == sha256_file(path)


def test_unwritable_cache_costs_only_a_rehash(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    monkeypatch.setenv("VAE_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(checksums, "_warned", False)
    path = tmp_path / "db.fasta"
    path.write_bytes(b">a\nMKV\n")
    with caplog.at_level(logging.WARNING, logger="vae._checksums"):
        assert file_sha256(path) == sha256_file(path)
    assert "checksum cache" in caplog.text
    assert remembered_sha256(path) is None
