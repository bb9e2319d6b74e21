"""A training script written for syne-tune's LocalBackend, untouched: argparse
flags per key, syne-tune's own Reporter, the checkpoint folder argument."""

import argparse
import json
import os
import time

from syne_tune import Reporter

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--tag", type=str, default="")
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--st_checkpoint_dir", type=str)
args = parser.parse_args()

os.makedirs(args.st_checkpoint_dir, exist_ok=True)
with open(os.path.join(args.st_checkpoint_dir, "seen.json"), "w") as f:
    json.dump(vars(args), f)
report = Reporter()
for epoch in range(1, args.epochs + 1):
    time.sleep(0.02)
    report(epoch=epoch, loss=(args.x - 0.3) ** 2 + 1.0 / epoch)
