#!/usr/bin/env python3
"""One FAISS configuration on a TEXMEX folder of .fvecs files (as made by make_shapes.py),
one thread, one JSON line per nprobe with vladdb bench's key names.

usage: faiss_fvecs_point.py DIR SPEC NPROBES|- K [K_FACTOR]
(the fvecs counterpart of ../shared/bench/faiss_point.py, which reads bvecs; it imports
faiss_ann from ../shared/bench so that OPENBLAS_CORETYPE is set before FAISS loads)
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/bench"))
import faiss_ann  # noqa: F401,E402  (sets OPENBLAS_CORETYPE)
from faiss_ann import read_vecs, recalls  # noqa: E402
import faiss  # noqa: E402
import numpy as np  # noqa: E402

d, spec, probes, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
k_factor = int(sys.argv[5]) if len(sys.argv) > 5 else 0
faiss.omp_set_num_threads(1)
xb = read_vecs(f"{d}/base.fvecs", np.float32)
xt = read_vecs(f"{d}/learn.fvecs", np.float32)
xq = read_vecs(f"{d}/query.fvecs", np.float32)
gt = read_vecs(f"{d}/groundtruth.ivecs", np.int32)
index = faiss.index_factory(xb.shape[1], spec)
t = time.perf_counter()
index.train(xt)
train_s = time.perf_counter() - t
index.add(xb)
if k_factor:
    faiss.downcast_index(index).k_factor = k_factor
for p in [None] if probes == "-" else [int(x) for x in probes.split(",")]:
    if p is not None:
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", p)
    best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        _, I = index.search(xq, k)
        best = min(best, time.perf_counter() - t)
    r = recalls(I, gt)
    print(json.dumps({"engine": "faiss", "set": os.path.basename(d.rstrip("/")), "spec": spec,
                      "nprobe": p, "qps": len(xq) / best, "train_s": train_s,
                      "recall_1_at_1": r["1@1"], "recall_10_at_10": r["10@10"]}), flush=True)
