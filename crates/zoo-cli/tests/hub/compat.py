"""The unmodified Python client against a real `zoo serve` (run by tests/hub.rs).

Environment: HF_ENDPOINT, HF_HUB_CACHE, HF_HUB_DISABLE_XET=1, ZOO_TOKEN_ALICE (write),
ZOO_TOKEN_BOB (write), ZOO_FIXTURES, ZOO_WORK (a scratch directory). Exits non-zero on the
first failed check; prints `ok: ...` for each passed one.
"""
import hashlib
import os
import shutil
import sys

import huggingface_hub
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

assert huggingface_hub.__version__ == "1.33.0", huggingface_hub.__version__
work = os.environ["ZOO_WORK"]
alice = HfApi(token=os.environ["ZOO_TOKEN_ALICE"])
bob = HfApi(token=os.environ["ZOO_TOKEN_BOB"])
anon = HfApi(token=False)


def ok(what):
    print(f"ok: {what}", flush=True)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


assert alice.whoami()["name"] == "alice"
ok("whoami")

# create_repo, idempotent with exist_ok
url = alice.create_repo("alice/demo")
assert str(url).endswith("/alice/demo"), url
alice.create_repo("alice/demo", exist_ok=True)
ok("create_repo")

# upload_file (small, regular) and upload_folder (small and large files: LFS)
alice.upload_file(path_or_fileobj=b"hello zoo\n", path_in_repo="hello.txt", repo_id="alice/demo")
folder = os.path.join(work, "folder")
os.makedirs(os.path.join(folder, "sub"), exist_ok=True)
with open(os.path.join(folder, "sub", "notes.txt"), "w") as f:
    f.write("nested\n")
big = os.path.join(folder, "large.raw")
with open(big, "wb") as f:
    f.write(os.urandom(12 * 1000 * 1000))
with open(os.path.join(folder, "README.md"), "w") as f:
    f.write("---\nlicense: mit\npipeline_tag: image-classification\ntags: [demo]\ndatasets: [imagenet-1k]\n"
            "model-index:\n- name: demo\n  results:\n  - task: {type: image-classification}\n"
            "    dataset: {type: imagenet-1k, name: ImageNet-1k}\n"
            "    metrics: [{type: accuracy, name: top-1, value: 0.71878}]\n---\n# Demo\n")
info = alice.upload_folder(folder_path=folder, repo_id="alice/demo", commit_message="folder")
first_commit = info.oid
assert len(first_commit) == 40
ok("upload_folder")

# uploading the same folder again changes nothing: preupload's oids let the client skip it
again = alice.upload_folder(folder_path=folder, repo_id="alice/demo", commit_message="same again")
assert again.oid == first_commit, (again.oid, first_commit)
ok("unchanged files are skipped (preupload oids)")

# model_info and list_repo_files
mi = alice.model_info("alice/demo")
names = sorted(s.rfilename for s in mi.siblings)
# .gitattributes: the hub covers the LFS file `large.raw` for git clones (issue 12)
assert names == [".gitattributes", "README.md", "hello.txt", "large.raw", "sub/notes.txt"], names
assert mi.sha == first_commit
assert mi.pipeline_tag == "image-classification" and mi.card_data.license == "mit"
large = [s for s in mi.siblings if s.rfilename == "large.raw"][0]
assert large.lfs is not None and large.lfs.sha256 == sha(big), large
assert sorted(alice.list_repo_files("alice/demo")) == names
ok("model_info, list_repo_files")

# downloads: latest, pinned revision, missing file
p = hf_hub_download("alice/demo", "large.raw")
assert sha(p) == sha(big)
assert open(hf_hub_download("alice/demo", "sub/notes.txt")).read() == "nested\n"
alice.upload_file(path_or_fileobj=b"second\n", path_in_repo="hello.txt", repo_id="alice/demo")
assert open(hf_hub_download("alice/demo", "hello.txt")).read() == "second\n"
assert open(hf_hub_download("alice/demo", "hello.txt", revision=first_commit)).read() == "hello zoo\n"
try:
    hf_hub_download("alice/demo", "missing.bin")
    raise AssertionError("missing file downloaded")
except EntryNotFoundError:
    pass
try:
    hf_hub_download("alice/demo", "hello.txt", revision="no-such-branch")
    raise AssertionError("missing revision downloaded")
except RevisionNotFoundError:
    pass
ok("hf_hub_download (latest, pinned, missing)")

snap = snapshot_download("alice/demo")
assert sorted(os.listdir(snap)) == [".gitattributes", "README.md", "hello.txt", "large.raw", "sub"]
assert sha(os.path.join(snap, "large.raw")) == sha(big)
ok("snapshot_download")

# branches and tags
alice.create_branch("alice/demo", branch="dev")
alice.upload_file(path_or_fileobj=b"dev only\n", path_in_repo="dev.txt", repo_id="alice/demo", revision="dev")
alice.create_tag("alice/demo", tag="v1.0", revision=first_commit)
refs = alice.list_repo_refs("alice/demo")
assert {b.name for b in refs.branches} == {"main", "dev"}
assert [t.name for t in refs.tags] == ["v1.0"] and refs.tags[0].target_commit == first_commit
assert "dev.txt" in alice.list_repo_files("alice/demo", revision="dev")
assert "dev.txt" not in alice.list_repo_files("alice/demo")
assert open(hf_hub_download("alice/demo", "hello.txt", revision="v1.0")).read() == "hello zoo\n"
alice.delete_tag("alice/demo", tag="v1.0")
alice.delete_branch("alice/demo", branch="dev")
assert {b.name for b in alice.list_repo_refs("alice/demo").branches} == {"main"}
ok("create_branch, create_tag, delete")

# deletions are commits too
alice.delete_file("sub/notes.txt", repo_id="alice/demo")
assert "sub/notes.txt" not in alice.list_repo_files("alice/demo")
ok("delete_file")

# list_models with filters (and zoo's extensions)
alice.create_repo("alice/other")
alice.upload_file(path_or_fileobj=b"---\nlicense: apache-2.0\npipeline_tag: text-classification\n---\n",
                  path_in_repo="README.md", repo_id="alice/other")
ids = lambda it: sorted(m.id for m in it)
assert ids(anon.list_models(filter="dataset:imagenet-1k")) == ["alice/demo"]
assert ids(anon.list_models(filter="license:apache-2.0")) == ["alice/other"]
assert ids(anon.list_models(pipeline_tag="image-classification")) == ["alice/demo"]
assert ids(anon.list_models(author="alice")) == ["alice/demo", "alice/other"]
assert ids(anon.list_models(search="dem")) == ["alice/demo"]
assert ids(anon.list_models(filter="metric:top-1>=0.7")) == ["alice/demo"]
assert ids(anon.list_models(filter="metric:top-1>=0.8")) == []
assert len(list(anon.list_models(limit=1))) == 1
full = list(anon.list_models(filter="dataset:imagenet-1k", full=True, cardData=True))[0]
assert full.card_data.license == "mit" and len(full.siblings) == 4  # with .gitattributes
ok("list_models with filters")

# private repos: invisible to others, exactly like missing ones
alice.create_repo("alice/secret", private=True)
alice.upload_file(path_or_fileobj=b"s\n", path_in_repo="s.txt", repo_id="alice/secret")
assert alice.model_info("alice/secret").private is True
for api in (bob, anon):
    for call in (lambda: api.model_info("alice/secret"), lambda: api.list_repo_files("alice/secret")):
        try:
            call()
            raise AssertionError("private repo visible")
        except RepositoryNotFoundError:
            pass
try:
    hf_hub_download("alice/secret", "s.txt", token=os.environ["ZOO_TOKEN_BOB"])
    raise AssertionError("private file downloaded")
except RepositoryNotFoundError:
    pass
assert "alice/secret" not in ids(bob.list_models(author="alice"))
assert "alice/secret" in ids(alice.list_models(author="alice"))
ok("private repo seen by others -> RepositoryNotFoundError")

# writing to someone else's namespace is refused
try:
    bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/demo")
    raise AssertionError("bob wrote to alice/demo")
except huggingface_hub.errors.HfHubHTTPError as e:
    assert e.response.status_code == 403, e.response.status_code
ok("write needs the namespace's write token")

# the real MiniLM repository, uploaded and loaded back byte-identical
minilm = os.path.join(os.environ["ZOO_FIXTURES"], "checkpoints", "all-MiniLM-L6-v2")
alice.create_repo("alice/all-MiniLM-L6-v2")
alice.upload_folder(folder_path=minilm, repo_id="alice/all-MiniLM-L6-v2")
back = snapshot_download("alice/all-MiniLM-L6-v2")
count = 0
for root, _, files in os.walk(minilm):
    for f in files:
        rel = os.path.relpath(os.path.join(root, f), minilm)
        assert sha(os.path.join(root, f)) == sha(os.path.join(back, rel)), rel
        count += 1
assert count == 13, count
mi = anon.model_info("alice/all-MiniLM-L6-v2")
assert mi.safetensors.total == 22713728, mi.safetensors  # every tensor in model.safetensors
assert mi.pipeline_tag == "sentence-similarity"
ok(f"MiniLM repository round trip ({count} files byte-identical)")

# data sets are repositories too
alice.create_repo("alice/sentences", repo_type="dataset")
alice.upload_file(path_or_fileobj=b"text,label\nhello,positive\n", path_in_repo="train.csv",
                  repo_id="alice/sentences", repo_type="dataset")
p = hf_hub_download("alice/sentences", "train.csv", repo_type="dataset")
assert open(p).read() == "text,label\nhello,positive\n"
assert [d.id for d in anon.list_datasets(author="alice")] == ["alice/sentences"]
assert anon.dataset_info("alice/sentences").siblings[0].rfilename == "train.csv"
assert ids(anon.list_models(author="alice")) == ["alice/all-MiniLM-L6-v2", "alice/demo", "alice/other"]
ok("dataset repositories")

# delete_repo
alice.delete_repo("alice/other")
try:
    anon.model_info("alice/other")
    raise AssertionError("deleted repo still there")
except RepositoryNotFoundError:
    pass
ok("delete_repo")
print("all python checks passed")
