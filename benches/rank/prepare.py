"""Data sets of the rank experiment (benches/rank/run.sh), from the offline fixtures.

Each source task trains candidates; each target task is one none of them was trained on:

  images  fashion-A  ankle-boot, bag, coat, dress, pullover   (source)
          fashion-B  sandal, shirt, sneaker, t-shirt, trouser (target)
          digits-A   0-4 of the 8x8 digits, as 32x32 PNGs      (source)
          digits-B   5-9                                       (target)
  texts   imdb       IMDb sentiment                            (source)
          bbc-A      BBC business, politics, sports            (source)
          yelp       Yelp sentiment                            (target)
          bbc-B      BBC entertainment, tech                   (target)

A source has `train/` (SOURCE_TRAIN per class) and `test/`; an image target has `train/`
(TARGET_TRAIN per class: what `zoo rank` sees and what the fine-tuning trains on) and `test/`
(TARGET_TEST per class). A text target is one CSV of TARGET_TRAIN + TARGET_TEST rows per
class (fine-tuning holds out TARGET_TEST per class with --max-test) and a rank CSV of the
first TARGET_TRAIN per class.

  python prepare.py FIXTURES WORK
"""

import csv
import gzip
import os
import random
import sys

from PIL import Image

SOURCE_TRAIN, SOURCE_TEST = 100, 50
TARGET_TRAIN, TARGET_TEST = 40, 100
fx, work = sys.argv[1], sys.argv[2]
rng = random.Random(17)


def image_split(name, by_class, train, test):
    for split, lo, hi in [("train", 0, train), ("test", train, train + test)]:
        for c, files in by_class.items():
            d = f"{work}/data/{name}/{split}/{c}"
            os.makedirs(d, exist_ok=True)
            for f in files[lo:hi]:
                dst = f"{d}/{os.path.basename(f)}"
                if not os.path.exists(dst):
                    os.symlink(f, dst)


def fashion():
    root = f"{fx}/fashion-mnist"
    every = {}
    for split in ["train", "test"]:
        for c in sorted(os.listdir(f"{root}/{split}")):
            every.setdefault(c, []).extend(f"{root}/{split}/{c}/{f}" for f in sorted(os.listdir(f"{root}/{split}/{c}")))
    for files in every.values():
        rng.shuffle(files)
    a = ["ankle-boot", "bag", "coat", "dress", "pullover"]
    image_split("fashion-A", {c: every[c] for c in a}, SOURCE_TRAIN, SOURCE_TEST)
    image_split("fashion-B", {c: every[c] for c in every if c not in a}, TARGET_TRAIN, TARGET_TEST)


def digits():
    png = f"{work}/digits-png"
    by = {}
    with gzip.open(f"{fx}/digits.csv.gz", "rt") as f:
        for i, row in enumerate(csv.reader(f)):
            px, label = [int(v) for v in row[:64]], row[64]
            d = f"{png}/{label}"
            os.makedirs(d, exist_ok=True)
            p = f"{d}/{i:04}.png"
            if not os.path.exists(p):
                img = Image.new("L", (8, 8))
                img.putdata([v * 255 // 16 for v in px])
                img.resize((32, 32), Image.NEAREST).convert("RGB").save(p)
            by.setdefault(label, []).append(p)
    for files in by.values():
        rng.shuffle(files)
    image_split("digits-A", {c: by[c] for c in "01234"}, SOURCE_TRAIN, 60)
    # Digits have about 180 per class: 40 to train on, the rest (up to 100) to test on.
    image_split("digits-B", {c: by[c] for c in "56789"}, TARGET_TRAIN, TARGET_TEST)


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)


def take(rows, label_of, classes, n):
    out = []
    for c in classes:
        mine = [r for r in rows if label_of(r) == c]
        out.extend(mine[:n])
    return out


def texts():
    sent = list(csv.DictReader(open(f"{fx}/sentiment.csv")))
    bbc = list(csv.DictReader(open(f"{fx}/bbc-news.csv")))
    rng.shuffle(sent)
    rng.shuffle(bbc)
    os.makedirs(f"{work}/data", exist_ok=True)
    lab = lambda r: r["label"]
    imdb = [r for r in sent if r["source"] == "imdb"]
    write_csv(f"{work}/data/imdb.csv", [(r["text"], r["label"]) for r in take(imdb, lab, ["negative", "positive"], SOURCE_TRAIN + SOURCE_TEST)])
    write_csv(f"{work}/data/bbc-A.csv", [(r["text"], r["label"]) for r in take(bbc, lab, ["business", "politics", "sports"], SOURCE_TRAIN + SOURCE_TEST)])
    for name, rows, classes in [
        ("yelp", [r for r in sent if r["source"] == "yelp"], ["negative", "positive"]),
        ("bbc-B", bbc, ["entertainment", "tech"]),
    ]:
        picked = {c: [r for r in rows if r["label"] == c] for c in classes}
        write_csv(f"{work}/data/{name}.csv", [(r["text"], c) for c in classes for r in picked[c][:TARGET_TRAIN + TARGET_TEST]])
        write_csv(f"{work}/data/{name}-rank.csv", [(r["text"], c) for c in classes for r in picked[c][:TARGET_TRAIN]])


fashion()
digits()
texts()
print(f"{work}/data")
