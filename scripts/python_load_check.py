"""Loads zoo fine-tune outputs with the Python libraries people use and compares their logits
with `zoo predict --json` (run by scripts/python-load-check.sh; never in CI).

  python python_load_check.py image MODEL_DIR PREDICT_JSON IMAGE...
  python python_load_check.py text  MODEL_DIR PREDICT_JSON TEXT...

image: torchvision builds the architecture named in config.json, loads model.safetensors
strictly, and timm's transform is built from config.json's pretrained_cfg.
text: transformers' AutoModelForSequenceClassification + AutoTokenizer on the folder as is.
Prints the largest |logit difference| and whether the top class agrees; exits 1 beyond 1e-3
or when a top class differs.
"""

import json
import sys

import torch

kind, model_dir, predict_json, inputs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
torch.set_num_threads(2)
zoo = json.load(open(predict_json))
config = json.load(open(f"{model_dir}/config.json"))

if kind == "image":
    import timm.data
    import torchvision
    from PIL import Image
    from safetensors.torch import load_file

    arch = config["architecture"]
    n = config["num_classes"]
    model = getattr(torchvision.models, arch)(num_classes=n)
    missing = model.load_state_dict(load_file(f"{model_dir}/model.safetensors"), strict=True)
    model.eval()
    cfg = timm.data.resolve_data_config(pretrained_cfg=config["pretrained_cfg"])
    tf = timm.data.create_transform(**cfg)
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in inputs])
    with torch.no_grad():
        logits = model(x)
    library = f"torchvision {torchvision.__version__} {arch} (strict load) + timm transform {cfg}"
    tolerance = 1e-3
else:
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    enc = tok(inputs, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    library = f"transformers {transformers.__version__} {type(model).__name__}"
    tolerance = 1e-3

worst = 0.0
agree = 0
for i, row in enumerate(zoo):
    theirs = logits[i]
    for entry in row:
        worst = max(worst, abs(entry["logit"] - theirs[entry["index"]].item()))
    agree += int(row[0]["index"] == int(theirs.argmax()))
print(json.dumps({"kind": kind, "library": library, "inputs": len(inputs), "max_abs_logit_diff": worst,
                  "max_abs_logit": float(logits.abs().max()), "top1_agree": agree}))
sys.exit(0 if worst <= tolerance and agree == len(inputs) else 1)
