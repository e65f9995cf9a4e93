#!/usr/bin/env python3
"""Upload throughput of one large file with the unmodified huggingface_hub (not part of CI):
through Xet (hf_xet, the default) and through classic LFS (HF_HUB_DISABLE_XET=1), against
`zoo serve` on loopback; then the dedup figure — bytes of xorbs sent when one line is
appended to the file and it is uploaded again.

    benches/hub/upload.sh [SIZE_MIB]     # default 1024; runs this with the test venv

Environment (upload.sh sets it): ZOO_URL, ZOO_TOKEN, ZOO_DATA, ZOO_WORK, SIZE_MIB, MODE
(`xet` or `lfs`; the mode decides HF_HUB_DISABLE_XET before huggingface_hub is imported).
"""
import json
import os
import sqlite3
import time

from huggingface_hub import HfApi

mode = os.environ["MODE"]
api = HfApi(endpoint=os.environ["ZOO_URL"], token=os.environ["ZOO_TOKEN"])
work = os.environ["ZOO_WORK"]
big = os.path.join(work, f"big-{mode}.bin")
# Fresh random content for every run: the hub would otherwise find the bytes already stored.
with open(big, "wb") as f:
    for _ in range(int(os.environ["SIZE_MIB"])):
        f.write(os.urandom(1 << 20))
repo = f"bench/upload-{mode}-{int(time.time() * 1000)}"
api.create_repo(repo)


def xorb_bytes():
    db = sqlite3.connect(os.path.join(os.environ["ZOO_DATA"], "meta.sqlite"))
    (n,) = db.execute("SELECT COALESCE(SUM(size), 0) FROM xet_xorbs").fetchone()
    db.close()
    return n


size = os.path.getsize(big)
t = time.perf_counter()
api.upload_file(path_or_fileobj=big, path_in_repo="big.bin", repo_id=repo)
seconds = time.perf_counter() - t
out = {"mode": mode, "bytes": size, "seconds": seconds, "mib_per_s": size / seconds / 2**20}
if mode == "xet":
    before = xorb_bytes()
    with open(big, "ab") as f:
        f.write(b"one more line\n")
    t = time.perf_counter()
    api.upload_file(path_or_fileobj=big, path_in_repo="big.bin", repo_id=repo)
    out["append_seconds"] = time.perf_counter() - t
    out["append_xorb_bytes"] = xorb_bytes() - before
os.remove(big)
print(json.dumps(out), flush=True)
