"""The PyTorch side of benches/finetune/bench.sh: the usual fine-tuning loop on the same
image folders, same machine, same thread count.

  python bench.py head WEIGHTS DATA --epochs 10 --image-size 96   # frozen backbone, linear head
  python bench.py full WEIGHTS DATA --epochs 1 --image-size 96    # every parameter trains

DATA holds train/<class>/*, val/<class>/* and test/<class>/*. `head` is the loop a PyTorch user
writes: the frozen backbone (eval mode) runs on every batch of every epoch, only the new head
steps; validation after every epoch; test at the end. Prints one JSON line with the timings.
"""

import argparse
import json
import os
import time

import torch
import torchvision
from torch import nn
from torchvision import transforms

p = argparse.ArgumentParser()
p.add_argument("mode", choices=["head", "full"])
p.add_argument("weights")
p.add_argument("data")
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--image-size", type=int, default=96)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--threads", type=int, default=int(os.environ.get("ZOO_BENCH_THREADS", "2")))
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

started = time.perf_counter()
tf = transforms.Compose(
    [
        transforms.Lambda(lambda im: im.convert("RGB")),
        transforms.Resize(int(a.image_size / 0.875), interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(a.image_size),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ]
)
split = {s: torchvision.datasets.ImageFolder(os.path.join(a.data, s), transform=tf) for s in ("train", "val", "test")}
loader = {
    s: torch.utils.data.DataLoader(d, batch_size=a.batch_size if s == "train" else a.batch_size * 2, shuffle=(s == "train"), num_workers=0)
    for s, d in split.items()
}
classes = len(split["train"].classes)

model = torchvision.models.mobilenet_v2()
model.load_state_dict(torch.load(a.weights, map_location="cpu", weights_only=True))
model.classifier[1] = nn.Linear(model.classifier[1].in_features, classes)
if a.mode == "head":
    for n, q in model.named_parameters():
        q.requires_grad = n.startswith("classifier.")
params = [q for q in model.parameters() if q.requires_grad]
head_lr, lr = 3e-3, 3e-4
opt = torch.optim.AdamW(
    [{"params": [q for n, q in model.named_parameters() if q.requires_grad and n.startswith("classifier.")], "lr": head_lr}]
    + ([{"params": [q for n, q in model.named_parameters() if q.requires_grad and not n.startswith("classifier.")], "lr": lr}] if a.mode == "full" else []),
    weight_decay=0.01,
)
loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)


def evaluate(s):
    model.eval()
    correct = n = 0
    with torch.no_grad():
        for x, y in loader[s]:
            correct += (model(x).argmax(1) == y).sum().item()
            n += len(y)
    return correct / n


epochs = []
for epoch in range(a.epochs):
    t0 = time.perf_counter()
    if a.mode == "head":
        model.eval()  # frozen BatchNorm statistics; dropout off as in the zoo run
    else:
        model.train()
    for x, y in loader["train"]:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    t_train = time.perf_counter() - t0
    val = evaluate("val")
    epochs.append({"epoch": epoch + 1, "train_seconds": t_train, "seconds": time.perf_counter() - t0, "val_accuracy": val})
test = evaluate("test")
print(json.dumps({"mode": a.mode, "threads": a.threads, "epochs": epochs, "test_accuracy": test, "seconds": time.perf_counter() - started}))
