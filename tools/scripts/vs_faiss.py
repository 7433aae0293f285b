#!/usr/bin/env python3
"""Run `vladdb bench` and FAISS (../shared/bench/faiss_point.py) on the same operating points,
in the same script, and print both rows and their ratios.

usage: vs_faiss.py DATA_DIR SPEC NPROBES THREADS NQ K [--rerank F] [--vladdb PATH] [--faiss-bench DIR]
  e.g. vs_faiss.py ../shared/data/debian-sift "IVF4096,PQ16" 16 1 10000 100
NPROBES is a comma-separated list ("-" for specs without IVF). Prints JSON lines
({"engine": "vladdb"|"faiss", ...}) and a ratio line per nprobe. FAISS gets best-of-3 timing, as
faiss_point.py does; vladdb too (Flat: one run on both sides).
"""
import argparse, json, os, subprocess, sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data"); ap.add_argument("spec"); ap.add_argument("nprobes")
    ap.add_argument("threads", type=int); ap.add_argument("nq", type=int); ap.add_argument("k", type=int)
    ap.add_argument("--rerank", type=int, default=0)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--vladdb", default=os.path.join(here, "../../target/release/vladdb"))
    ap.add_argument("--faiss-bench", default=os.path.join(here, "../../../shared/bench"))
    a = ap.parse_args()
    probes = [None] if a.nprobes == "-" else [int(p) for p in a.nprobes.split(",")]
    cmd = [a.vladdb, "bench", "--base", f"{a.data}/base.bvecs", "--query", f"{a.data}/query.bvecs",
           "--gt", f"{a.data}/groundtruth.ivecs", "--spec", a.spec, "--queries", str(a.nq),
           "-k", str(a.k), "--threads", str(a.threads), "--json"]
    if os.path.exists(f"{a.data}/learn.bvecs"):
        cmd += ["--learn", f"{a.data}/learn.bvecs"]
    if probes[0] is not None:
        cmd += ["--nprobe", ",".join(map(str, probes))]
    if a.rerank:
        cmd += ["--rerank", str(a.rerank)]
    print("# " + " ".join(cmd), flush=True)
    ours = [json.loads(l) for l in subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines() if l.startswith("{")]
    faiss_spec = a.spec
    for row in ours:
        row["engine"] = "vladdb"
        print(json.dumps(row), flush=True)
        p = row.get("nprobe") or 1
        fcmd = [sys.executable, f"{a.faiss_bench}/faiss_point.py", a.data, faiss_spec, str(p), str(a.threads), str(a.nq), str(a.k)]
        if a.rerank:
            fcmd.append(str(a.rerank))
        theirs = json.loads(subprocess.run(fcmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        theirs["engine"] = "faiss"
        print(json.dumps(theirs), flush=True)
        ratio = {"spec": a.spec, "nprobe": row.get("nprobe"), "qps_ratio": row["qps"] / theirs["qps"]}
        for key in ("recall_1_at_1", "recall_1_at_10", "recall_1_at_100", "recall_10_at_10"):
            if row.get(key) is not None and theirs.get(key) is not None:
                ratio[key.replace("recall", "d_recall")] = round(row[key] - theirs[key], 4)
        print("# ratio " + json.dumps(ratio), flush=True)


if __name__ == "__main__":
    main()
