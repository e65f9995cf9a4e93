"""Xet uploads with the unmodified Python client (huggingface_hub 1.33.0 with hf_xet, no
environment variable) against a real `zoo serve` (run by tests/hub.rs, issue 12).

Environment: HF_ENDPOINT, HF_HUB_CACHE, HF_HOME, ZOO_TOKEN_ALICE (write), ZOO_WORK (scratch),
ZOO_DATA (the server's data directory: the bytes the server received are read from its
database). Prints `ok: ...` per passed check and a final line.
"""
import hashlib
import os
import sqlite3

import hf_xet  # noqa: F401  (the point: the Xet path is installed and used)
import huggingface_hub
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.utils._runtime import is_xet_available

assert huggingface_hub.__version__ == "1.33.0", huggingface_hub.__version__
assert "HF_HUB_DISABLE_XET" not in os.environ
assert is_xet_available()
work = os.environ["ZOO_WORK"]
api = HfApi(token=os.environ["ZOO_TOKEN_ALICE"])


def ok(what):
    print(f"ok: {what}", flush=True)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def xorb_bytes(repo):
    """Serialized xorb bytes the server has received for `repo` (alice/NAME)."""
    db = sqlite3.connect(os.path.join(os.environ["ZOO_DATA"], "meta.sqlite"))
    ns, name = repo.split("/")
    (n,) = db.execute(
        "SELECT COALESCE(SUM(x.size), 0) FROM xet_xorbs x JOIN repos r ON r.id = x.repo_id "
        "WHERE r.namespace = ? AND r.name = ?", (ns, name)).fetchone()
    db.close()
    return n


# upload_file: one 30 MB file
repo = "alice/xet-model"
api.create_repo(repo)
big = os.path.join(work, "weights.bin")
with open(big, "wb") as f:
    f.write(os.urandom(30 * 1000 * 1000))
api.upload_file(path_or_fileobj=big, path_in_repo="weights.bin", repo_id=repo)
sent_first = xorb_bytes(repo)
assert sent_first >= 30 * 1000 * 1000, sent_first
files = api.list_repo_files(repo)
assert "weights.bin" in files, files
info = api.model_info(repo, files_metadata=True)
s = [x for x in info.siblings if x.rfilename == "weights.bin"][0]
assert s.lfs is not None and s.lfs.sha256 == sha(big) and s.size == 30 * 1000 * 1000, s
ok("upload_file of 30 MB through Xet")

# downloads are byte-identical (plain HTTP)
assert sha(hf_hub_download(repo, "weights.bin")) == sha(big)
ok("download byte-identical")

# upload_folder: small files beside a large one
folder = os.path.join(work, "folder")
os.makedirs(os.path.join(folder, "sub"), exist_ok=True)
for name, text in [("README.md", "---\nlicense: mit\n---\n# xet\n"), ("config.json", '{"a": 1}\n'),
                   ("sub/notes.txt", "nested\n")]:
    with open(os.path.join(folder, name), "w") as f:
        f.write(text)
with open(os.path.join(folder, "model.safetensors"), "wb") as f:
    header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
    header += b" " * (-len(header) % 8)
    f.write(len(header).to_bytes(8, "little") + header + bytes(16))
with open(os.path.join(folder, "extra.raw"), "wb") as f:
    f.write(os.urandom(12 * 1000 * 1000))
api.upload_folder(folder_path=folder, repo_id=repo, commit_message="folder")
snap = snapshot_download(repo, cache_dir=os.path.join(work, "snap"))
for name in ["README.md", "config.json", "sub/notes.txt", "model.safetensors", "extra.raw"]:
    assert sha(os.path.join(snap, name)) == sha(os.path.join(folder, name)), name
assert sha(os.path.join(snap, "weights.bin")) == sha(big)
ok("upload_folder through Xet, snapshot byte-identical")

# appending to a file: the re-upload sends only the changed chunks
before = xorb_bytes(repo)
with open(big, "ab") as f:
    f.write(b"one more line\n")
api.upload_file(path_or_fileobj=big, path_in_repo="weights.bin", repo_id=repo, commit_message="append")
sent = xorb_bytes(repo) - before
size = os.path.getsize(big)
assert sent < size // 10, (sent, size)
assert sha(hf_hub_download(repo, "weights.bin")) == sha(big)
print(f"dedup: appending 14 bytes to a {size}-byte file sent {sent} bytes of xorbs", flush=True)
ok("re-upload after an append sends less than the file")

# a pull request: a clear error, nothing committed
head = api.model_info(repo).sha
other = os.path.join(work, "pr.bin")
with open(other, "wb") as f:
    f.write(os.urandom(1000 * 1000))
try:
    api.upload_file(path_or_fileobj=other, path_in_repo="pr.bin", repo_id=repo, create_pr=True)
    raise AssertionError("create_pr=True was accepted")
except Exception as e:  # noqa: BLE001  (the client wraps the hub's answer in its own errors)
    assert "pull requests are not supported" in str(e), repr(e)
assert api.model_info(repo).sha == head
ok("create_pr=True: a clear error")

print("all xet checks passed", flush=True)
