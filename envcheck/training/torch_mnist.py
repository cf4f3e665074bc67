"""Train a small CNN on MNIST with PyTorch, the whole data set held on the device.

Recipe (tuned 1-2 epoch MNIST): 5x5 convolutions with batch norm, batch 256, Adam with a
one-cycle learning rate, inputs normalised; no DataLoader, since batching tensors already
on the device removes most of the time. Torch is imported inside ``train`` only.
"""

from __future__ import annotations

import contextlib
import time

from envcheck.errors import EnvcheckError
from envcheck.phases import phase
from envcheck.training import (
    cpu_name,
    load_data,
    low_precision,
    result,
    settings,
    timed_steps,
    total_steps,
)

MEAN, STD = 0.1307, 0.3081
EVAL_BATCH = 2500
# Channels of the two conv layers; quick mode (CPU) uses a quarter of the compute.
WIDTHS = (32, 64)
QUICK_WIDTHS = (16, 32)


def train(args: dict) -> dict:
    with phase("import"):
        import torch

    with phase("init"):
        device = _device(torch, args.get("device"))
    cfg = settings(args, on_gpu=device.type == "cuda", framework="torch")
    torch.manual_seed(cfg["seed"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: autotune once, in step one

    (x_np, y_np, xt_np, yt_np), load_s = load_data(cfg)
    start = time.perf_counter()
    with phase("data"):
        x, y = _to_device(torch, x_np, y_np, device)
        xt, yt = _to_device(torch, xt_np, yt_np, device)
        _sync(torch, device)
    load_s += time.perf_counter() - start

    run = _fit(torch, cfg, device, (x, y, xt, yt), autocast=None, curve=cfg["curve"])
    mixed = None
    if cfg["mixed_precision"]:
        # A second, identical run under autocast proves low-precision kernels train too.
        dtype = _autocast_dtype(torch, device)
        mp = _fit(torch, cfg, device, (x, y, xt, yt), autocast=dtype, curve=False)
        mixed = (str(dtype).replace("torch.", ""), mp)

    return result(
        cfg,
        run,
        load_s,
        mixed,
        framework="torch",
        framework_version=torch.__version__,
        device=device.type,
        device_name=_device_name(torch, device),
        test_images=len(xt),
    )


def _device(torch, name: str | None):
    name = (name or "").lower()
    if name in ("", "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "gpu":
        name = "cuda"
    if name == "cuda" and not torch.cuda.is_available():
        raise EnvcheckError(
            f"training on cuda was asked for, but torch {torch.__version__} sees no GPU "
            f"(CUDA build: {torch.version.cuda or 'none, CPU-only build'}); install a CUDA "
            "build of torch or run with --device cpu"
        )
    if name not in ("cuda", "cpu"):
        raise EnvcheckError(f"unknown torch device {name!r}; use cuda or cpu")
    return torch.device(name)


def _device_name(torch, device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def _autocast_dtype(torch, device):
    # bf16 needs no loss scaling; pre-Ampere GPUs get fp16 with a scaler (by capability).
    gpu = device.type == "cuda"
    capability = torch.cuda.get_device_capability(device) if gpu else None
    return getattr(torch, low_precision(gpu, capability))


def _autocast(torch, device, dtype):
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def _scaler(torch):
    # torch.amp.GradScaler is 2.3+; the CUDA 11 env still has torch 2.0.
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


def _sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _to_device(torch, images, labels, device):
    # Copy: numpy arrays from the IDX buffer are read-only, which torch warns about.
    x = torch.from_numpy(images.copy()).to(device).unsqueeze(1).float()
    x = (x / 255.0 - MEAN) / STD
    return x, torch.from_numpy(labels.astype("int64")).to(device)


def _model(torch, quick: bool):
    nn = torch.nn
    c1, c2 = QUICK_WIDTHS if quick else WIDTHS
    return nn.Sequential(
        nn.Conv2d(1, c1, 5, padding=2, bias=False),
        nn.BatchNorm2d(c1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, padding=2, bias=False),
        nn.BatchNorm2d(c2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, 10),
    )


def _fit(torch, cfg: dict, device, data, autocast, curve: bool) -> dict:
    """Train one model from the seed; time steps (first apart), evaluate at curve points."""
    x, y, xt, yt = data
    torch.manual_seed(cfg["seed"])
    model = _model(torch, cfg["quick"]).to(device)
    total = total_steps(cfg, len(x))
    opt = torch.optim.Adam(model.parameters(), lr=cfg["max_lr"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["max_lr"], total_steps=total)
    scaler = _scaler(torch) if autocast == torch.float16 else None
    gen = torch.Generator().manual_seed(cfg["seed"])
    batch = cfg["batch_size"]

    def step(order, start: int) -> None:
        idx = order[start : start + batch]
        with _autocast(torch, device, autocast):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        sched.step()

    def evaluate() -> float:
        acc = _accuracy(torch, model, xt, yt, autocast, device)
        model.train()
        return acc

    model.train()
    return timed_steps(
        cfg,
        len(x),
        shuffle=lambda: torch.randperm(len(x), generator=gen).to(device),
        step=step,
        sync=lambda: _sync(torch, device),
        evaluate=evaluate,
        curve=curve,
    )


def _accuracy(torch, model, xt, yt, autocast, device) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode(), _autocast(torch, device, autocast):
        for start in range(0, len(xt), EVAL_BATCH):
            logits = model(xt[start : start + EVAL_BATCH])
            correct += int((logits.argmax(1) == yt[start : start + EVAL_BATCH]).sum())
    return correct / len(xt)
