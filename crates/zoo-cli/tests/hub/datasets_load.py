"""Data-set repositories as `datasets` loads them (issue 12), against a real `zoo serve` (run
by tests/hub.rs): CSV, JSON Lines and Parquet, downloaded and streamed, and the error codes the
Hugging Face libraries branch on.

Environment: HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, ZOO_TOKEN_ALICE (write).
"""
import io
import json
import os

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError

api = HfApi(token=os.environ["ZOO_TOKEN_ALICE"])


def ok(what):
    print(f"ok: {what}", flush=True)


def put(repo, path, data):
    api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo, repo_type="dataset")


# CSV with a card and train/test splits in a folder
api.create_repo("alice/sentiment", repo_type="dataset")
put("alice/sentiment", "README.md", b"---\nlicense: mit\n---\n# sentiment\n")
put("alice/sentiment", "data/train.csv", b"text,label\ngood,1\nbad,0\nfine,1\n")
put("alice/sentiment", "data/test.csv", b"text,label\nawful,0\n")
d = datasets.load_dataset("alice/sentiment")
assert sorted(d.keys()) == ["test", "train"], d
assert d["train"].num_rows == 3 and d["train"][1] == {"text": "bad", "label": 0}, d["train"][1]
assert d["test"][0] == {"text": "awful", "label": 0}
streamed = list(datasets.load_dataset("alice/sentiment", split="train", streaming=True))
assert streamed == [{"text": "good", "label": 1}, {"text": "bad", "label": 0}, {"text": "fine", "label": 1}], streamed
ok("CSV: load_dataset and streaming")

# JSON Lines, no card
api.create_repo("alice/lines", repo_type="dataset")
rows = [{"text": f"sentence {i}", "label": i % 3} for i in range(50)]
put("alice/lines", "train.jsonl", ("\n".join(json.dumps(r) for r in rows) + "\n").encode())
d = datasets.load_dataset("alice/lines", split="train")
assert d.num_rows == 50 and d[49] == rows[49], d[49]
ok("JSON Lines: load_dataset")

# Parquet in a nested folder (a binary file: LFS)
api.create_repo("alice/table", repo_type="dataset")
buf = io.BytesIO()
pq.write_table(pa.table({"x": list(range(1000)), "y": [f"v{i}" for i in range(1000)]}), buf)
put("alice/table", "data/part/train-00000-of-00001.parquet", buf.getvalue())
d = datasets.load_dataset("alice/table", split="train")
assert d.num_rows == 1000 and d[999] == {"x": 999, "y": "v999"}
first = list(datasets.load_dataset("alice/table", split="train", streaming=True).take(2))
assert first == [{"x": 0, "y": "v0"}, {"x": 1, "y": "v1"}], first
ok("Parquet: load_dataset and streaming")

# paths-info: files and folders, missing ones left out
info = api.get_paths_info("alice/table", ["data", "data/part/train-00000-of-00001.parquet", "nope"],
                          repo_type="dataset")
assert [type(i).__name__ for i in info] == ["RepoFolder", "RepoFile"], info
assert info[1].lfs is not None and info[1].size == len(buf.getvalue())
ok("paths-info")

# the error codes: a missing file is EntryNotFound (datasets probes `name.py`), and so is a
# missing folder in a tree listing (transformers lists `additional_chat_templates`)
try:
    hf_hub_download("alice/sentiment", "sentiment.py", repo_type="dataset")
    raise AssertionError("a missing file was served")
except EntryNotFoundError:
    pass
try:
    list(api.list_repo_tree("alice/sentiment", path_in_repo="additional_chat_templates", repo_type="dataset"))
    raise AssertionError("a missing folder was listed")
except EntryNotFoundError:
    pass
try:
    list(api.list_repo_tree("alice/lines", path_in_repo="additional_chat_templates"))
    raise AssertionError("a model that does not exist was listed")
except Exception as e:  # noqa: BLE001  a model repository of that name does not exist
    assert "EntryNotFound" not in type(e).__name__, e
ok("EntryNotFound for missing files and folders")

print("all datasets checks passed", flush=True)
