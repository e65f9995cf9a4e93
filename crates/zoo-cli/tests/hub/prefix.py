"""A hub behind a path prefix (issue 12): HF_ENDPOINT is http://host:port/hub, the hub's
ZOO_PUBLIC_URL the same. Uploads through Xet and through classic LFS (their upload links are
absolute), downloads, and `Link` pagination must all stay under the prefix.

Environment: HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, ZOO_TOKEN_ALICE (write), ZOO_WORK, ZOO_REPO.
"""
import hashlib
import os

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub import constants

assert constants.ENDPOINT.endswith("/hub"), constants.ENDPOINT
api = HfApi(token=os.environ["ZOO_TOKEN_ALICE"])
repo = os.environ["ZOO_REPO"]
work = os.environ["ZOO_WORK"]
api.create_repo(repo)
big = os.path.join(work, "big.bin")
with open(big, "wb") as f:
    f.write(os.urandom(3 * 1000 * 1000))
api.upload_file(path_or_fileobj=big, path_in_repo="big.bin", repo_id=repo)
api.upload_file(path_or_fileobj=b"small\n", path_in_repo="small.txt", repo_id=repo)
for i in range(3):
    api.upload_file(path_or_fileobj=f"{i}\n".encode(), path_in_repo=f"many/{i}.txt", repo_id=repo)
with open(hf_hub_download(repo, "big.bin"), "rb") as f:
    assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(open(big, "rb").read()).hexdigest()
files = sorted(f.path for f in api.list_repo_tree(repo, recursive=True) if hasattr(f, "size"))
assert files == [".gitattributes", "big.bin", "many/0.txt", "many/1.txt", "many/2.txt", "small.txt"], files
print("all prefix checks passed", flush=True)
