#!/usr/bin/env python3
"""Is OPQ (or a random rotation) worth anything after a whitened PCA of VLADs? FAISS's
OPQMatrix on vladdb's own codes, 16 bytes of PQ, exhaustive ADC.

usage: faiss_opq_vlad.py CLIPART_DIR DB.npy QUERY.npy [SEEDS, e.g. 1,2,3]
DB.npy / QUERY.npy: `vladdb encode --sets CLIPART_DIR/db --spec VLAD64 -o DB.npy` and
`vladdb encode --sets CLIPART_DIR/query --learn-sets CLIPART_DIR/db --spec VLAD64 -o QUERY.npy`.
The PCA (to 256, whitened) is fitted once on the non-empty database codes through their
Gram matrix; each seed draws the random rotation and seeds the PQ k-means. Prints, per seed,
R@1 / R@10 / mAP (one relevant image per query) for whitening alone (W), whitening + random
rotation (WR), and each followed by a trained OPQMatrix(256, 16).
"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/bench"))
import faiss_ann  # noqa: F401  (sets OPENBLAS_CORETYPE before faiss loads)
import numpy as np
import faiss

faiss.omp_set_num_threads(2)


def main():
    c, db, qf = sys.argv[1], sys.argv[2], sys.argv[3]
    seeds = [int(s) for s in sys.argv[4].split(",")] if len(sys.argv) > 4 else [1, 2, 3]
    truth = np.load(f"{c}/query_truth.npy")
    xb = np.load(db).astype(np.float32)
    xq = np.load(qf).astype(np.float32)
    ids = np.nonzero(np.diff(np.load(f"{c}/db_offsets.npy")) > 0)[0]
    xb = xb[ids]

    def evaluate(I):
        I = ids[I]
        r = np.array([np.where(I[i] == truth[i])[0][0] if truth[i] in I[i] else 10**9 for i in range(len(truth))])
        return round(float(np.mean(r < 1)), 3), round(float(np.mean(r < 10)), 3), \
            round(float(np.mean(np.where(r < 10**9, 1 / (r + 1), 0))), 3)

    mu = xb.mean(0)
    xc = (xb - mu).astype(np.float64)
    w, u = np.linalg.eigh(xc @ xc.T)
    order = np.argsort(w)[::-1][:256]
    w, u = w[order], u[:, order]
    axes = (xc.T @ u) / np.sqrt(w)                    # principal axes, d × 256
    proj = axes / np.sqrt(w / len(xb))                 # whitened
    pb0 = ((xb - mu) @ proj).astype(np.float32)
    pq0 = ((xq - mu) @ proj).astype(np.float32)

    def unit(a):
        return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)

    for seed in seeds:
        rot, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((256, 256)))
        row = {}
        for name in ("W", "WR", "W+OPQ", "WR+OPQ"):
            rotated = name.startswith("WR")
            pb = unit(pb0 @ rot if rotated else pb0)
            pq = unit(pq0 @ rot if rotated else pq0)
            if name.endswith("OPQ"):
                opq = faiss.OPQMatrix(256, 16)
                opq.train(pb)
                pb, pq = opq.apply(pb), opq.apply(pq)
            index = faiss.IndexPQ(256, 16, 8)
            index.pq.cp.seed = seed
            index.train(pb)
            index.add(pb)
            row[name] = evaluate(index.search(pq, 100)[1])
        print(seed, row, flush=True)


if __name__ == "__main__":
    main()
