#!/usr/bin/env python3
"""Synthetic TEXMEX folders of shapes unlike SIFT, for checking that nothing is tuned to it.

usage: make_shapes.py OUT_DIR SET...   (SET: gmm96 scale1e4 offset1000 offset10000 gist960 dup32)

Each OUT_DIR/SET/ gets base.fvecs, query.fvecs, learn.fvecs and groundtruth.ivecs (exact
top-100 in float64 on centred coordinates, ties by smaller id). Seeded (42): the same
files every time.
- gmm96: 1,000 anisotropic Gaussian clusters in 96-D (centres N(0, 4²), a rank-8 map per
  cluster with log-normal axis scales, N(0, 0.3²) noise); 100k base, 1k queries, 60k learn.
- scale1e4 / offset1000 / offset10000: gmm96 scaled to mean |x| = 1e4, or shifted by
  +1,000 / +10,000 (float32 precision at large offsets is the point).
- gist960: smooth, correlated 960-D (rank-60 cumulative-sum basis with spectrum k^-0.7,
  N(0, 0.05²) noise, +0.5); 50k base, 500 queries, 30k learn.
- dup32: 15k distinct 32-D points, each base vector a copy (half exact, half with 1e-3
  noise); 100k base, 1k near-duplicate queries, 50k learn.
"""
import os
import sys

import numpy as np


def write_vecs(path, a, dtype):
    a = np.ascontiguousarray(a)
    n, d = a.shape
    out = np.empty((n, d + 1), dtype=np.int32 if dtype == np.int32 else np.float32)
    out.view(np.int32)[:, 0] = d
    out[:, 1:] = a.astype(dtype)
    out.tofile(path)


def ground_truth(xb, xq, k=100):
    xb64, xq64 = xb.astype(np.float64), xq.astype(np.float64)
    c = xb64.mean(0)
    bc = xb64 - c
    bn = (bc ** 2).sum(1)
    res = np.empty((len(xq), k), np.int32)
    for i in range(0, len(xq), 100):
        qc = xq64[i:i + 100] - c
        d = bn[None, :] - 2 * qc @ bc.T + (qc ** 2).sum(1)[:, None]
        idx = np.argpartition(d, k, axis=1)[:, :k]
        dd = np.take_along_axis(d, idx, 1)
        order = np.lexsort((idx, dd), axis=1)
        res[i:i + 100] = np.take_along_axis(idx, order, 1)
    return res


def save(out, name, xb, xq, xt):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    xb, xq, xt = (a.astype(np.float32) for a in (xb, xq, xt))
    write_vecs(f"{d}/base.fvecs", xb, np.float32)
    write_vecs(f"{d}/query.fvecs", xq, np.float32)
    write_vecs(f"{d}/learn.fvecs", xt, np.float32)
    write_vecs(f"{d}/groundtruth.ivecs", ground_truth(xb, xq), np.int32)
    print(name, xb.shape, xq.shape, xt.shape, flush=True)


def main():
    out, which = sys.argv[1], set(sys.argv[2:])
    rng = np.random.default_rng(42)
    gmm_sets = {"gmm96", "scale1e4", "offset1000", "offset10000"}
    if which & gmm_sets:
        D, C = 96, 1000
        centers = rng.normal(0, 4.0, (C, D))
        maps = rng.normal(0, 1, (C, D, 8))
        axis = np.exp(rng.normal(0, 1.0, (C, 8)))

        def draw(n):
            lab = rng.integers(0, C, n)
            z = rng.normal(0, 1, (n, 8)) * axis[lab]
            x = centers[lab] + np.einsum("nde,ne->nd", maps[lab], z) * 0.5
            return (x + rng.normal(0, 0.3, (n, D))).astype(np.float32)

        xb, xq, xt = draw(100000), draw(1000), draw(60000)
        if "gmm96" in which:
            save(out, "gmm96", xb, xq, xt)
        if "scale1e4" in which:
            s = 1e4 / np.abs(xb).mean()
            save(out, "scale1e4", xb * s, xq * s, xt * s)
        for off in (1000, 10000):
            if f"offset{off}" in which:
                save(out, f"offset{off}", xb + off, xq + off, xt + off)
    if "gist960" in which:
        D, R = 960, 60
        basis = np.cumsum(rng.normal(0, 1, (R, D)), axis=1) / np.sqrt(D)
        basis *= (np.arange(1, R + 1) ** -0.7)[:, None]

        def draw(n):
            return rng.normal(0, 1, (n, R)) @ basis + rng.normal(0, 0.05, (n, D)) + 0.5

        save(out, "gist960", draw(50000), draw(500), draw(30000))
    if "dup32" in which:
        uniq = rng.normal(0, 1, (15000, 32))

        def draw(n, noisy):
            x = uniq[rng.integers(0, len(uniq), n)].copy()
            m = rng.random(n) < noisy
            x[m] += rng.normal(0, 1e-3, (m.sum(), 32))
            return x

        save(out, "dup32", draw(100000, 0.5), draw(1000, 1.0), draw(50000, 0.5))


if __name__ == "__main__":
    main()
