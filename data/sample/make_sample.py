#!/usr/bin/env python3
"""Cut vladdb's bundled demo sample from ../shared/data/debian-sift.

usage: python3 data/sample/make_sample.py ../shared/data/debian-sift data/sample
Needs numpy and faiss-cpu (exact ground truth with IndexFlatL2).
Deterministic: rows are taken at fixed strides, so re-running gives identical files.
"""
import os, sys
import numpy as np


def read_bvecs(path):
    raw = np.fromfile(path, np.uint8)
    d = int(raw[:4].view(np.int32)[0])
    return raw.reshape(-1, 4 + d)[:, 4:].copy()


def write_vecs(path, x, dtype):
    x = np.ascontiguousarray(x.astype(dtype))
    n, d = x.shape
    out = np.empty((n, 4 + d * x.dtype.itemsize), np.uint8)
    out[:, :4] = np.frombuffer(np.int32(d).tobytes(), np.uint8)
    out[:, 4:] = x.view(np.uint8).reshape(n, -1)
    out.tofile(path)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    base = read_bvecs(f"{src}/base.bvecs")
    learn = read_bvecs(f"{src}/learn.bvecs")
    query = read_bvecs(f"{src}/query.bvecs")
    base = base[:: len(base) // 30000][:30000]      # every 33rd base vector: all images represented
    learn = learn[:: len(learn) // 10000][:10000]   # every 10th learn vector
    query = query[:: len(query) // 200][:200]       # every 50th query (queries come from held-out images)
    import faiss
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base.astype(np.float32))
    _, gt = index.search(query.astype(np.float32), 100)
    os.makedirs(dst, exist_ok=True)
    write_vecs(f"{dst}/base.bvecs", base, np.uint8)
    write_vecs(f"{dst}/learn.bvecs", learn, np.uint8)
    write_vecs(f"{dst}/query.bvecs", query, np.uint8)
    write_vecs(f"{dst}/groundtruth.ivecs", gt, np.int32)


if __name__ == "__main__":
    main()
