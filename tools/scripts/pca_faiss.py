#!/usr/bin/env python3
"""PCA fit time and accuracy: vladdb's routes (codecs/examples/pca_measure) beside FAISS
PCAMatrix, on the same real vectors, in one script (so the speed ratio is fair).

Data (cached in --work, rebuilt when missing), all from ../shared/data:
  vlad64  8192-D VLADs of the clip-art database images: RootSIFT, 64 k-means centroids
          (faiss, 200k descriptors, seed 1), residual sums, power 0.5, intra + global L2
          (the reference_retrieval.py recipe); shuffled (seed 0), 5,000 train rows,
          the rest held out.
  vlad16  the same with 16 centroids (2048-D).
  vlad4   the same with 4 centroids (512-D).
  sift    128-D SIFT descriptors from debian-sift/learn.bvecs (first 20,000 train,
          next 10,000 held out).

usage: pca_faiss.py [--data ../shared/data] [--work /tmp/pca-data]
                    [--rust target/release/examples/pca_measure]
                    [--configs "vlad64:128,256;sift:32,64"] [--routes auto,randomized,...]
                    [--timeout 900] [--threads 2]
Prints one JSON line per run and a markdown table at the end.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, "/work/shared/bench")
try:
    import faiss_ann  # noqa: F401  (sets OPENBLAS_CORETYPE before faiss loads)
except ImportError:  # pragma: no cover - same logic inline when the bench dir is elsewhere
    flags = open("/proc/cpuinfo").read()
    os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX" if " avx512f" in flags else "Haswell")
import numpy as np  # noqa: E402
import faiss  # noqa: E402


def rootsift(x):
    x = x / np.maximum(x.sum(1, keepdims=True), 1e-12)
    return np.sqrt(x)


def vlad(x, offsets, centroids):
    k, d = centroids.shape
    _, assign = faiss.knn(x, centroids, 1)
    assign = assign[:, 0]
    out = np.zeros((len(offsets) - 1, k, d), np.float32)
    for i in range(len(offsets) - 1):
        s, e = offsets[i], offsets[i + 1]
        if e > s:
            np.add.at(out[i], assign[s:e], x[s:e] - centroids[assign[s:e]])
    out = np.sign(out) * np.sqrt(np.abs(out))
    out /= np.maximum(np.linalg.norm(out, axis=2, keepdims=True), 1e-12)
    out = out.reshape(len(offsets) - 1, -1)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def build_vlad(data_dir, work, k):
    train_path, test_path = f"{work}/vlad{k}_train.npy", f"{work}/vlad{k}_test.npy"
    if os.path.exists(train_path) and os.path.exists(test_path):
        return train_path, test_path
    d = f"{data_dir}/clipart-vlad"
    x = rootsift(np.load(f"{d}/db_descriptors.npy").astype(np.float32))
    offsets = np.load(f"{d}/db_offsets.npy").astype(np.int64)
    rng = np.random.default_rng(0)
    sample = x[rng.choice(len(x), min(200_000, len(x)), replace=False)]
    km = faiss.Kmeans(128, k, niter=20, seed=1)
    km.train(sample)
    v = vlad(x, offsets, km.centroids)
    v = v[np.diff(offsets) > 0]  # images without descriptors have no VLAD
    v = v[np.random.default_rng(0).permutation(len(v))]
    np.save(train_path, np.ascontiguousarray(v[:5000]))
    np.save(test_path, np.ascontiguousarray(v[5000:]))
    return train_path, test_path


def build_sift(data_dir, work):
    train_path, test_path = f"{work}/sift_train.npy", f"{work}/sift_test.npy"
    if os.path.exists(train_path) and os.path.exists(test_path):
        return train_path, test_path
    raw = np.fromfile(f"{data_dir}/debian-sift/learn.bvecs", dtype=np.uint8, count=30_000 * 132)
    x = raw.reshape(-1, 132)[:, 4:].astype(np.float32)
    np.save(train_path, np.ascontiguousarray(x[:20_000]))
    np.save(test_path, np.ascontiguousarray(x[20_000:]))
    return train_path, test_path


def mean_sq(a):
    return float(np.mean(np.einsum("ij,ij->i", a, a, dtype=np.float64)))


def faiss_run(train, test, d_out):
    d = train.shape[1]
    pca = faiss.PCAMatrix(d, d_out, 0.0, False)
    t0 = time.perf_counter()
    pca.train(train)
    fit_s = time.perf_counter() - t0
    mean = faiss.vector_to_array(pca.mean).astype(np.float64)
    a = faiss.vector_to_array(pca.A).reshape(-1, d)[:d_out]
    eig = faiss.vector_to_array(pca.eigenvalues)

    # Projection onto the kept rows of A (orthonormal to ~5e-7). FAISS's own
    # reverse_transform(apply(x)) reports a larger error (0.173 vs 0.169 on vlad4, d_out 64)
    # for the same sub-space, so it is not used here.
    def recon(x):
        xc = x - mean.astype(np.float32)
        return mean_sq(xc - (xc @ a.T) @ a)

    total_train = mean_sq(train - mean)
    rt = recon(train)
    row = {"impl": "faiss", "route": "PCAMatrix", "d_in": d, "n": len(train), "d_out": d_out,
           "fit_s": round(fit_s, 3), "measured_explained_ratio": round(1 - rt / total_train, 6),
           "recon_train": rt, "total_variance": total_train,
           "eigenvalues_head": [float(v) for v in eig[:4]], "eigenvalue_last": float(eig[d_out - 1])}
    if test is not None:
        rte = recon(test)
        row["recon_test"] = rte
        row["test_explained_ratio"] = round(1 - rte / mean_sq(test - mean), 6)
    return row, a


def rust_run(binary, train_path, test_path, d_out, route, timeout, matrix_path):
    cmd = [binary, "--train", train_path, "--test", test_path, "--d-out", str(d_out),
           "--route", route, "--save-matrix", matrix_path]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"impl": "vladdb", "route": route, "d_out": d_out, "error": f"timeout after {timeout}s"}
    except subprocess.CalledProcessError as e:
        return {"impl": "vladdb", "route": route, "d_out": d_out, "error": e.stderr.strip()[-300:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def subspace_overlap(a, b):
    """||Qa Qbᵀ||²_F / k for orthonormalised row bases: 1 = same sub-space."""
    qa, _ = np.linalg.qr(a.astype(np.float64).T)
    qb, _ = np.linalg.qr(b.astype(np.float64).T)
    return float(np.sum((qa.T @ qb) ** 2) / a.shape[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--work", default="/tmp/pca-data")
    ap.add_argument("--rust", default="target/release/examples/pca_measure")
    ap.add_argument("--configs", default="vlad64:128,256")
    ap.add_argument("--routes", default="auto,randomized,covariance,linfa")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    rows = []
    for config in args.configs.split(";"):
        name, d_outs = config.split(":")
        if name == "sift":
            train_path, test_path = build_sift(args.data, args.work)
        else:
            train_path, test_path = build_vlad(args.data, args.work, int(name.removeprefix("vlad")))
        train, test = np.load(train_path), np.load(test_path)
        for d_out in (int(v) for v in d_outs.split(",")):
            frow, fa = faiss_run(train, test, d_out)
            frow["data"] = name
            print(json.dumps(frow), flush=True)
            rows.append(frow)
            for route in args.routes.split(","):
                matrix_path = f"{args.work}/matrix_{name}_{d_out}_{route}.npy"
                r = rust_run(args.rust, train_path, test_path, d_out, route, args.timeout, matrix_path)
                r["data"] = name
                if "error" not in r:
                    r["subspace_overlap_vs_faiss"] = round(subspace_overlap(np.load(matrix_path), fa), 6)
                    r["fit_ratio_vs_faiss"] = round(r["fit_s"] / max(frow["fit_s"], 1e-9), 3)
                print(json.dumps(r), flush=True)
                rows.append(r)
    print("\n| data | impl/route | d_in | n | d_out | fit s | × FAISS time | explained (train) |"
          " recon err train | recon err test | eig[0] | eig[d_out-1] | subspace overlap |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['data']} | {r['impl']}/{r['route']} | | | {r['d_out']} | {r['error']} |||||||")
            continue
        route = r["route"] if r["impl"] == "faiss" else f"{r['requested'].lower()}→{r['route'].lower()}"
        print(f"| {r['data']} | {r['impl']}/{route} | {r['d_in']} | {r['n']} | {r['d_out']} | {r['fit_s']:.2f} |"
              f" {r.get('fit_ratio_vs_faiss', 1.0):.2f} | {r['measured_explained_ratio']:.5f} |"
              f" {r['recon_train']:.5g} | {r.get('recon_test', float('nan')):.5g} |"
              f" {r['eigenvalues_head'][0]:.5g} | {r['eigenvalue_last']:.5g} |"
              f" {r.get('subspace_overlap_vs_faiss', 1.0):.4f} |")


if __name__ == "__main__":
    main()
