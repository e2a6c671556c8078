"""PyTorch twin of `examples/examples/bench_cnn.rs`: the seed CNN on the project's MNIST 10k.

Usage: bench/.venv/bin/python bench/torch_seed_cnn.py [--batch-size 32] [--epochs 2]
       [--seed 0] [--threads N]

Same model (Conv2D 32 3x3 relu -> MaxPool 2 -> Conv2D 64 3x3 relu -> MaxPool 2 ->
Flatten -> Dense 128 relu -> Dense 10 softmax), Glorot-uniform kernels, zero
biases, Adam(lr 1e-3, eps 1e-7 as Keras), categorical cross-entropy (fused with
the softmax, as keel does), the same data (data/mnist-10k/*.gz, pixels / 255),
one warm-up epoch then --epochs timed ones, a running training accuracy per
batch (keel's fit computes it too). Prints one JSON line like the keel binary.
"""

import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data", "mnist-10k")


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load():
    def images(name):
        x = read_idx(name).astype(np.float32) / 255.0  # [N, 28, 28], i.e. NHWC with C = 1
        return torch.from_numpy(x[:, None, :, :].copy())  # NCHW as PyTorch's conv needs

    def labels(name):
        return torch.from_numpy(read_idx(name).astype(np.int64))

    return (
        (images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")),
        (images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")),
    )


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


class SeedCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(64 * 5 * 5, 128)
        self.fc2 = nn.Linear(128, 10)
        for m in (self.conv1, self.conv2, self.fc1, self.fc2):
            nn.init.xavier_uniform_(m.weight)  # = Keras glorot_uniform (same fans)
            nn.init.zeros_(m.bias)

    def forward(self, x):  # returns logits; the softmax is fused into the loss
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    (x_train, y_train), (x_test, y_test) = load()
    n_train, n_test = x_train.shape[0], x_test.shape[0]

    model = SeedCnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    gen = torch.Generator().manual_seed(a.seed)

    def epoch():
        model.train()
        order = torch.randperm(n_train, generator=gen)
        correct = torch.zeros((), dtype=torch.int64)
        for s in range(0, n_train, a.batch_size):
            idx = order[s : s + a.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += (logits.detach().argmax(1) == yb).sum()
        return correct.item() / n_train

    epoch()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        epoch()
    train_secs = time.perf_counter() - t0

    model.eval()
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()

        def predict():
            return torch.cat([F.softmax(model(x_test[s : s + 256]), dim=1) for s in range(0, n_test, 256)])

        predict()  # warm-up
        reps = 3
        t0 = time.perf_counter()
        for _ in range(reps):
            predict()
        infer_secs = time.perf_counter() - t0

    print(
        json.dumps(
            {
                "framework": "pytorch",
                "torch": torch.__version__,
                "batch_size": a.batch_size,
                "epochs": a.epochs,
                "threads": torch.get_num_threads(),
                "train_images_per_s": a.epochs * n_train / train_secs,
                "test_accuracy": acc,
                "infer_images_per_s": reps * n_test / infer_secs,
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    )


if __name__ == "__main__":
    main()
