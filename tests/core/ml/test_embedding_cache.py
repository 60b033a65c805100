"""The content-addressed embedding cache: vectors found by the digest of their text within a
family, shards published whole (a crash leaves nothing half-written), writers in several
processes at once, and the builder lock that makes a second builder wait and then read."""

import json
import multiprocessing
import threading
import time

import numpy as np
import pytest

import core.ml.embedding_cache as embedding_cache
from core.ml.embedding_cache import MAX_SHARDS, VectorStore, text_keys

PARTS = {"model": "m@1", "document_prompt": ""}


def _shards(store):
    return [p for p in store.folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def test_the_store_finds_what_was_added_and_merges_its_shards(tmp_path):
    store = VectorStore(tmp_path, PARTS)
    texts = [f"document {i}" for i in range(40)]
    vectors = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    found, got = store.lookup(text_keys(texts))
    assert not found.any() and got is None
    # One shard per add, duplicates within an add stored once.
    for start in range(0, 40, 4):
        part = slice(start, start + 4)
        store.add(text_keys(texts[part] + texts[part]), np.concatenate([vectors[part]] * 2))
    assert len(_shards(store)) <= MAX_SHARDS  # ten adds, merged on the way
    wanted = texts[::-1] + ["never added"]
    found, got = store.lookup(text_keys(wanted))
    assert found.tolist() == [True] * 40 + [False]
    assert np.array_equal(got, vectors[::-1])  # bit for bit, in the order asked
    assert json.loads((store.folder / "meta.json").read_text())["model"] == "m@1"
    # Another family (another prompt) shares nothing.
    other = VectorStore(tmp_path, {"model": "m@1", "document_prompt": "passage: "})
    assert not other.lookup(text_keys(texts))[0].any()


def test_fill_writes_into_a_given_matrix_and_skips_rows_already_found(tmp_path):
    store = VectorStore(tmp_path, PARTS)
    store.add(text_keys(["a", "b"]), np.array([[1, 1], [2, 2]], np.float32))
    found, matrix = store.fill(text_keys(["b", "x", "a"]))
    assert found.tolist() == [True, False, True]
    assert matrix.tolist() == [[2, 2], [0, 0], [1, 1]]
    out = np.full((2, 2), 9, np.float32)
    found = np.array([True, False])
    store.fill(text_keys(["a", "b"]), out, found=found)
    assert out.tolist() == [[9, 9], [2, 2]] and found.all()


def test_a_crash_while_writing_a_shard_publishes_nothing(tmp_path, monkeypatch):
    store = VectorStore(tmp_path, PARTS)
    store.add(text_keys(["kept"]), np.ones((1, 4), np.float32))
    real_save = np.save

    def dying_save(path, array, *args, **kwargs):
        if str(path).endswith("vectors.npy"):
            raise OSError("disk full")
        return real_save(path, array, *args, **kwargs)

    monkeypatch.setattr(embedding_cache.np, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        store.add(text_keys(["lost"]), np.ones((1, 4), np.float32))
    monkeypatch.undo()
    assert len(_shards(store)) == 1 and not list(store.folder.glob(".partial-*"))
    found, _ = store.lookup(text_keys(["kept", "lost"]))
    assert found.tolist() == [True, False]


def test_a_partial_folder_left_by_a_dead_writer_is_removed_once_stale(tmp_path, monkeypatch):
    store = VectorStore(tmp_path, PARTS)
    store.add(text_keys(["a"]), np.ones((1, 2), np.float32))
    leftover = store.folder / ".partial-123-dead"
    leftover.mkdir()
    (leftover / "keys.npy").write_bytes(b"half a file")
    store.add(text_keys(["b"]), np.ones((1, 2), np.float32))
    assert leftover.exists()  # it might belong to a writer still at work
    monkeypatch.setattr(embedding_cache, "STALE_PARTIAL_SECONDS", -1)
    store.add(text_keys(["c"]), np.ones((1, 2), np.float32))
    assert not leftover.exists()
    assert store.lookup(text_keys(["a", "b", "c"]))[0].all()


def _add_many(root: str, worker: int, adds: int) -> None:
    store = VectorStore(root, PARTS)
    for i in range(adds):
        texts = [f"w{worker} add{i} doc{j}" for j in range(3)]
        store.add(text_keys(texts), np.full((3, 4), worker * 100 + i, np.float32))


def test_writers_in_several_processes_lose_no_vector(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_add_many, args=(str(tmp_path), worker, 12)) for worker in range(4)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    store = VectorStore(tmp_path, PARTS)
    texts = [f"w{w} add{i} doc{j}" for w in range(4) for i in range(12) for j in range(3)]
    found, vectors = store.lookup(text_keys(texts))
    assert found.all()
    expected = [w * 100 + i for w in range(4) for i in range(12) for _ in range(3)]
    assert vectors[:, 0].tolist() == expected
    store.compact()
    assert len(_shards(store)) == 1 and len(store) == len(texts)


def test_a_second_builder_waits_for_the_first_then_finds_its_vectors(tmp_path):
    first, second = VectorStore(tmp_path, PARTS), VectorStore(tmp_path, PARTS)
    keys = text_keys(["shared text"])
    holding = threading.Event()
    seen_by_second = []

    def first_builder():
        with first.building():
            holding.set()
            time.sleep(0.3)
            first.add(keys, np.ones((1, 2), np.float32))  # may merge: not the builder lock

    def second_builder():
        holding.wait()
        with second.building():
            seen_by_second.append(bool(second.lookup(keys)[0].all()))

    threads = [threading.Thread(target=first_builder), threading.Thread(target=second_builder)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen_by_second == [True]
