"""Issue 13's compatibility check (run by scripts/compat-check.sh, which starts the hub).

For each combination: fine-tune a tiny model with zoo, push it to the hub at HF_ENDPOINT,
load it from the hub with the library its card names, and compare its logits with
`zoo predict REPO --json` on the same inputs. Fails on max |diff| > 1e-4 x max |logit|, on a
card naming a library that does not load the model, and on a model that loads nowhere.

  python compat_check.py --zoo ZOO --fixtures FX --work DIR [--only SUBSTRING]
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch

torch.set_num_threads(2)
torch.manual_seed(0)

ap = argparse.ArgumentParser()
ap.add_argument("--zoo", required=True)
ap.add_argument("--fixtures", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--only", default="")
args = ap.parse_args()
fx, work = args.fixtures, args.work
TOLERANCE = 1e-4
TEXTS = [
    "A wonderful, moving film with superb acting.",
    "Dull, predictable and far too long.",
    "It was fine, I guess.",
    "The best thing I have seen all year!",
    "I want those two hours of my life back.",
]


def zoo(*a, capture=False):
    r = subprocess.run([args.zoo, *a], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"zoo {' '.join(a)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def front_matter(path):
    text = open(path).read()
    head = text.split("---")[1] if text.startswith("---") else ""
    return {k.strip(): v.strip() for k, v in (l.split(":", 1) for l in head.splitlines() if ":" in l and not l.startswith(" "))}


def zoo_logits(repo, inputs, classes):
    out = json.loads(zoo("predict", repo, *inputs, "--top", str(classes), "--json", "-q"))
    rows = []
    for row in out:
        v = [0.0] * classes
        for e in row:
            v[e["index"]] = e["logit"]
        rows.append(v)
    return np.array(rows, dtype=np.float64)


def timm_inputs(name, images, cfg, tf):
    """The test images saved at timm's resize size (so neither side resamples: the weights,
    the crop and the normalisation are compared, not two resize kernels), and the batch
    timm's transform makes of them."""
    from PIL import Image

    scale = math.floor(cfg["input_size"][-1] / cfg["crop_pct"])
    inputs = []
    for i, p in enumerate(images):
        q = f"{work}/{name}-{i}.png"
        Image.open(p).convert("RGB").resize((scale, scale), Image.BILINEAR).save(q)
        inputs.append(q)
    return inputs, torch.stack([tf(Image.open(p).convert("RGB")) for p in inputs])


def fashion_test_images():
    """The first test image of four Fashion-MNIST classes."""
    out = []
    for c in sorted(os.listdir(f"{fx}/fashion-mnist/test"))[:4]:
        d = f"{fx}/fashion-mnist/test/{c}"
        out.append(f"{d}/{sorted(os.listdir(d))[0]}")
    return out


results = []


def compare(name, library, theirs, ours):
    theirs = np.asarray(theirs, dtype=np.float64)
    diff = float(np.abs(theirs - ours).max())
    scale = float(np.abs(ours).max())
    ok = diff <= TOLERANCE * max(scale, 1e-12) and theirs.shape == ours.shape
    results.append({"model": name, "library": library, "max_abs_diff": diff, "max_abs_logit": scale, "ok": ok})
    print(f"{'ok  ' if ok else 'FAIL'} {name:42} {library:22} max|diff| {diff:.2e}  max|logit| {scale:.3f}", flush=True)


# ---------------------------------------------------------------- text
def tiny_text_bases():
    """Tiny random BERT, RoBERTa and DistilBERT folders with real tokenizers."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (BertConfig, BertModel, BertTokenizerFast, DistilBertConfig, DistilBertModel,
                              DistilBertTokenizerFast, RobertaConfig, RobertaModel, RobertaTokenizerFast)

    minilm = f"{fx}/checkpoints/all-MiniLM-L6-v2"
    bases = {}
    d = f"{work}/base-bert"
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(d)
    BertTokenizerFast.from_pretrained(minilm).save_pretrained(d)
    bases["bert"] = d
    d = f"{work}/base-distilbert"
    DistilBertModel(DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                     max_position_embeddings=64)).save_pretrained(d)
    DistilBertTokenizerFast.from_pretrained(minilm).save_pretrained(d)
    bases["distilbert"] = d
    d = f"{work}/base-roberta"
    os.makedirs(d, exist_ok=True)
    texts = [r["text"] for r in csv.DictReader(open(f"{fx}/sentiment.csv"))]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts + TEXTS, vocab_size=800, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(d)
    RobertaTokenizerFast(vocab_file=f"{d}/vocab.json", merges_file=f"{d}/merges.txt").save_pretrained(d)
    RobertaModel(RobertaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=64, max_position_embeddings=66,
                               type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)).save_pretrained(d)
    bases["roberta"] = d
    return bases


def text_checks():
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = f"{work}/sentiment-small.csv"
    rows = list(csv.DictReader(open(f"{fx}/sentiment.csv")))
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        counts = {}
        for r in rows:
            if counts.get(r["label"], 0) < 24:
                counts[r["label"]] = counts.get(r["label"], 0) + 1
                w.writerow([r["text"], r["label"]])
    cases = [(f"tiny-{family}-{pooling}-{head.replace(':', '')}", base, pooling, head)
             for family, base in tiny_text_bases().items()
             for pooling in ["mean", "cls", "max", "pooler"]
             for head in ["linear", "mlp:32"]]
    # The quickstart's published text model: the real MiniLM, its own (mean) pooling.
    cases.append(("minilm-l6-mean-linear", f"{fx}/checkpoints/all-MiniLM-L6-v2", "mean", "linear"))
    for name, base, pooling, head in cases:
        if args.only not in name:
            continue
        out = f"{work}/{name}"
        zoo("finetune", base, "--data", data, "--out", out, "--pooling", pooling, "--head", head,
            "--epochs", "3", "--lr", "3e-3", "--batch-size", "8", "-q")
        repo = f"zoo/{name}"
        zoo("push", "-q", out, repo)
        config = json.load(open(f"{out}/config.json"))
        classes = len(config["id2label"])
        ours = zoo_logits(repo, TEXTS, classes)
        library = front_matter(f"{out}/README.md").get("library_name")
        if library == "transformers":
            model = AutoModelForSequenceClassification.from_pretrained(repo).eval()
            tok = AutoTokenizer.from_pretrained(repo)
            with torch.no_grad():
                theirs = model(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
            compare(name, f"transformers {type(model).__name__}", theirs, ours)
        elif library == "sentence-transformers":
            model = SentenceTransformer(repo, device="cpu")
            theirs = model.encode(TEXTS, batch_size=len(TEXTS), convert_to_numpy=True)
            compare(name, "sentence-transformers", theirs, ours)
        else:
            sys.exit(f"{name}: card names library `{library}`: a text classifier must load in transformers or sentence-transformers")


# ---------------------------------------------------------------- images
IMAGE_ARCHS = {
    "mobilenetv2_100": 64,
    "efficientnet_b0": 64,
    "convnext_tiny": 64,
    "resnet18": 64,
    "vit_small_patch16_224": 224,
}


def image_checks():
    import timm
    import timm.data
    from PIL import Image
    from safetensors.torch import save_file

    labels = f"{work}/labels10.txt"
    open(labels, "w").write("".join(f"class {i}\n" for i in range(10)))
    test_images = fashion_test_images() + [f"{fx}/images/chelsea.png"]
    cases = list(IMAGE_ARCHS.items())
    # The quickstart's published image model: torchvision's MobileNetV2 checkpoint, imported.
    cases.append(("mobilenet_v2", 96))
    for arch, size in cases:
        if args.only not in arch:
            continue
        base = f"{work}/base-{arch}"
        if arch == "mobilenet_v2":
            zoo("import", f"{fx}/checkpoints/mobilenet_v2-b0353104.pth", "--arch", arch,
                "--labels", f"{fx}/imagenet_classes.txt", "--out", base)
        else:
            ckpt = f"{work}/{arch}.safetensors"
            m = timm.create_model(arch, pretrained=False, num_classes=10)
            save_file({k: v.contiguous() for k, v in m.state_dict().items()}, ckpt)
            zoo("import", ckpt, "--arch", arch, "--labels", labels, "--out", base)
        for head in (["linear"] if arch == "mobilenet_v2" else ["linear", "mlp:32"]):
            prefix = "torchvision" if arch == "mobilenet_v2" else "tiny"
            name = f"{prefix}-{arch}-{head.replace(':', '')}".replace("_", "-")
            out = f"{work}/{name}"
            zoo("finetune", base, "--data", f"{fx}/fashion-mnist", "--out", out, "--image-size", str(size),
                "--per-class", "3", "--max-test", "20", "--epochs", "1", "--freeze", "all", "--head", head, "-q")
            repo = f"zoo/{name}"
            zoo("push", "-q", out, repo)
            library = front_matter(f"{out}/README.md").get("library_name")
            config = json.load(open(f"{out}/config.json"))
            if head != "linear":
                # No timm architecture has an MLP head: the card must name no tool but zoo.
                ok = library == "zoo"
                results.append({"model": name, "library": f"zoo only (card: {library})", "ok": ok})
                print(f"{'ok  ' if ok else 'FAIL'} {name:42} card names `{library}` (timm has no MLP head)", flush=True)
                continue
            if library != "timm":
                sys.exit(f"{name}: card names library `{library}`, expected timm")
            model = timm.create_model(f"hf-hub:{repo}", pretrained=True).eval()
            cfg = timm.data.resolve_data_config({}, model=model)
            tf = timm.data.create_transform(**cfg)
            inputs, x = timm_inputs(name, test_images, cfg, tf)
            with torch.no_grad():
                theirs = model(x).numpy()
            ours = zoo_logits(repo, inputs, config["num_classes"])
            compare(name, f"timm {config['architecture']}", theirs, ours)
            if head == "linear":
                # A new task from the published model: timm replaces the head it finds by
                # `pretrained_cfg.classifier`, keeping every other weight.
                other = timm.create_model(f"hf-hub:{repo}", pretrained=True, num_classes=3).eval()
                kept = model.state_dict()
                fresh = [k for k, v in other.state_dict().items()
                         if k not in kept or kept[k].shape != v.shape or not torch.equal(kept[k], v)]
                classifier = other.pretrained_cfg.get("classifier")
                if not fresh or any(not k.startswith(f"{classifier}.") for k in fresh):
                    sys.exit(f"{name}: num_classes=3 replaced {fresh}, expected only `{classifier}.*`")


# ---------------------------------------------------------------- adapters (issue 17)
def peft_checks():
    """LoRA adapters from `zoo finetune --peft`, pushed as adapter repositories, loaded with
    `peft.PeftModel.from_pretrained(base, REPO)` from the hub onto the base from the hub;
    `zoo merge` of each loads without peft. Both compared with `zoo predict` on the adapter."""
    import timm
    import timm.data
    from peft import PeftModel
    from PIL import Image
    from safetensors.torch import save_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = f"{work}/sentiment-small.csv"
    if args.only in "peft-minilm-lora":
        zoo("push", "-q", f"{fx}/checkpoints/all-MiniLM-L6-v2", "zoo/minilm-base")
        out = f"{work}/peft-minilm-lora"
        zoo("finetune", "zoo/minilm-base", "--data", data, "--out", out, "--pooling", "pooler",
            "--peft", "lora:r=4,alpha=8,dropout=0.1", "--epochs", "3", "--lr", "3e-3", "--batch-size", "8", "-q")
        config = json.load(open(f"{out}/adapter_config.json"))
        if config["base_model_name_or_path"] != "zoo/minilm-base":
            sys.exit(f"adapter names base {config['base_model_name_or_path']}, expected zoo/minilm-base")
        zoo("push", "-q", out, "zoo/minilm-lora")
        ours = zoo_logits("zoo/minilm-lora", TEXTS, 2)
        base = AutoModelForSequenceClassification.from_pretrained("zoo/minilm-base", num_labels=2)
        model = PeftModel.from_pretrained(base, "zoo/minilm-lora").eval()
        tok = AutoTokenizer.from_pretrained("zoo/minilm-base")
        with torch.no_grad():
            theirs = model(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
        compare("peft-minilm-lora", "peft PeftModel", theirs, ours)
        merged = f"{work}/peft-minilm-merged"
        zoo("merge", "zoo/minilm-lora", "--out", merged, "-q")
        zoo("push", "-q", merged, "zoo/minilm-merged")
        m = AutoModelForSequenceClassification.from_pretrained("zoo/minilm-merged").eval()
        with torch.no_grad():
            theirs = m(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
        compare("peft-minilm-merged", "transformers (merged)", theirs, ours)
    images = fashion_test_images()
    labels = f"{work}/labels10.txt"
    open(labels, "w").write("".join(f"class {i}\n" for i in range(10)))
    for arch, size in [("vit_small_patch16_224", 224), ("convnext_tiny", 64)]:
        name = f"peft-{arch}-lora".replace("_", "-")
        if args.only not in name:
            continue
        ckpt = f"{work}/peft-{arch}.safetensors"
        m = timm.create_model(arch, pretrained=False, num_classes=10)
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, ckpt)
        base_dir = f"{work}/peft-base-{arch}"
        zoo("import", ckpt, "--arch", arch, "--labels", labels, "--out", base_dir)
        base_repo = f"zoo/{arch.replace('_', '-')}-base"
        zoo("push", "-q", base_dir, base_repo)
        out = f"{work}/{name}"
        zoo("finetune", base_repo, "--data", f"{fx}/fashion-mnist", "--out", out, "--image-size", str(size),
            "--per-class", "3", "--max-test", "20", "--epochs", "1", "--no-augment",
            "--peft", "lora:r=4,alpha=8,dropout=0", "--lr", "1e-2", "-q")
        repo = f"zoo/{name}"
        zoo("push", "-q", out, repo)
        model = timm.create_model(f"hf-hub:{base_repo}", pretrained=True, num_classes=10)
        model = PeftModel.from_pretrained(model, repo).eval()
        cfg = timm.data.resolve_data_config({"input_size": (3, size, size)}, model=model.base_model.model)
        tf = timm.data.create_transform(**cfg)
        inputs, x = timm_inputs(name, images, cfg, tf)
        with torch.no_grad():
            theirs = model(x).numpy()
        ours = zoo_logits(repo, inputs, 10)
        compare(name, f"peft on timm {arch}", theirs, ours)


text_checks()
image_checks()
peft_checks()
json.dump(results, open(f"{work}/compat.json", "w"), indent=1)
bad = [r for r in results if not r["ok"]]
print(f"compat: {len(results) - len(bad)}/{len(results)} combinations load in the library their card names with zoo's logits")
sys.exit(1 if bad or not results else 0)
