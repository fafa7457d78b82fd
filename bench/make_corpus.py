#!/usr/bin/env python3
"""Seeded backup corpus: a tree of mixed files (random, text-like, duplicated), and a
deterministic 'incremental' change of it.

usage: make_corpus.py DIR SIZE_MB SEED            # create
       make_corpus.py DIR SIZE_MB SEED --change   # modify ~5% of files, add a few, delete a few
"""
import os
import random
import sys

WORDS = [w.encode() for w in (
    "backup repository snapshot content index pack blob maintenance epoch manifest "
    "policy retention compression encryption kopia kopr restic borg rustic data file "
    "directory object chunk splitter hash deduplicate storage bucket cluster volume"
).split()]


def text_block(rng, n):
    out = bytearray()
    while len(out) < n:
        out += rng.choice(WORDS) + (b"\n" if rng.random() < 0.1 else b" ")
    return bytes(out[:n])


def file_bytes(rng, size):
    kind = rng.random()
    if kind < 0.45:
        return rng.randbytes(size)          # incompressible (media, archives)
    if kind < 0.85:
        return text_block(rng, size)        # compressible (logs, source, json)
    half = rng.randbytes(size // 2)         # half repeated (VM images, databases)
    return half + half + b"\0" * (size - 2 * len(half))


def create(root, total, seed):
    rng = random.Random(seed)
    written, n = 0, 0
    while written < total:
        d = os.path.join(root, f"d{n % 37:02d}", f"s{(n // 37) % 11:02d}")
        os.makedirs(d, exist_ok=True)
        r = rng.random()
        size = rng.randint(1, 64 * 1024) if r < 0.7 else rng.randint(64 * 1024, 16 * 1024 * 1024)
        data = file_bytes(rng, size)
        with open(os.path.join(d, f"f{n:06d}.bin"), "wb") as f:
            f.write(data)
        if rng.random() < 0.03:             # exact duplicates elsewhere
            with open(os.path.join(d, f"f{n:06d}.copy"), "wb") as f:
                f.write(data)
            written += len(data)
        written += len(data)
        n += 1


def change(root, seed):
    rng = random.Random(seed + 1)
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs)
    for p in rng.sample(files, max(1, len(files) // 20)):
        with open(p, "r+b") as f:
            size = os.path.getsize(p)
            f.seek(rng.randint(0, max(0, size - 1)))
            f.write(rng.randbytes(min(4096, max(1, size // 10))))
    for p in rng.sample(files, max(1, len(files) // 100)):
        os.remove(p)
    d = os.path.join(root, "new")
    os.makedirs(d, exist_ok=True)
    for i in range(max(1, len(files) // 50)):
        with open(os.path.join(d, f"n{i:05d}.bin"), "wb") as f:
            f.write(file_bytes(rng, rng.randint(1, 256 * 1024)))


if __name__ == "__main__":
    root, size_mb, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if "--change" in sys.argv[4:]:
        change(root, seed)
    else:
        create(root, size_mb * 1024 * 1024, seed)
