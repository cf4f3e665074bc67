"""Train a small CNN on MNIST with TensorFlow/Keras, the whole data set held on the device.

Same recipe as the torch run (5x5 convolutions with batch norm, batch 256, Adam with a
one-cycle learning rate) in a custom ``tf.function`` step that gathers batches from
tensors already on the device, so no input pipeline sits between the data and the GPU.
Written against tf.keras so it runs on Keras 2 (TF <= 2.15) and Keras 3 alike.
"""

from __future__ import annotations

import time

import numpy as np

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
WIDTHS = (32, 64)
QUICK_WIDTHS = (16, 32)
# Keras' default 0.99 leaves the running statistics near their start after ~100 steps, so
# inference-mode accuracy collapses; 0.9 matches torch's default.
BN_MOMENTUM = 0.9
# float16 (GPUs without bf16) needs loss scaling; a fixed scale is enough for this model
# and works the same on Keras 2 and 3, whose LossScaleOptimizer APIs differ.
FP16_LOSS_SCALE = 256.0


def train(args: dict) -> dict:
    with phase("import"):
        import tensorflow as tf

    with phase("init"):
        device, name = _device(tf, args.get("device"))
    cfg = settings(args, on_gpu=device == "gpu", framework="tensorflow")
    tf.keras.utils.set_random_seed(cfg["seed"])

    (x_np, y_np, xt_np, yt_np), load_s = load_data(cfg)
    placement = "/GPU:0" if device == "gpu" else "/CPU:0"
    with tf.device(placement):
        start = time.perf_counter()
        with phase("data"):
            data = (*_to_device(tf, x_np, y_np), *_to_device(tf, xt_np, yt_np))
            float(tf.reduce_sum(data[3]))  # wait for the copies before stopping the clock
        load_s += time.perf_counter() - start

        run = _fit(tf, cfg, data, policy=None, curve=cfg["curve"])
        mixed = None
        if cfg["mixed_precision"]:
            # A second, identical run in mixed precision proves low-precision kernels train.
            policy = _mixed_policy(tf, device)
            mixed = (policy.replace("mixed_", ""), _fit(tf, cfg, data, policy=policy, curve=False))

    return result(
        cfg,
        run,
        load_s,
        mixed,
        framework="tensorflow",
        framework_version=tf.__version__,
        keras_version=_keras_version(),
        device=device,
        device_name=name,
        test_images=len(xt_np),
    )


def _keras_version() -> str | None:
    try:
        import keras

        return keras.__version__
    except ImportError:
        return None


def _device(tf, requested: str | None) -> tuple[str, str]:
    """Return ("gpu" | "cpu", device name); asking for a GPU that TF cannot see is an error."""
    requested = (requested or "").lower()
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            # TF maps all GPU memory otherwise; only allowed before the GPU is initialised.
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):
            pass
    if requested in ("", "auto"):
        requested = "gpu" if gpus else "cpu"
    if requested == "cuda":
        requested = "gpu"
    if requested not in ("gpu", "cpu"):
        raise EnvcheckError(f"unknown TensorFlow device {requested!r}; use gpu or cpu")
    if requested == "cpu":
        return "cpu", cpu_name()
    if not gpus:
        build = tf.sysconfig.get_build_info()
        cuda = build.get("cuda_version") if build.get("is_cuda_build") else None
        raise EnvcheckError(
            f"training on gpu was asked for, but TensorFlow {tf.__version__} sees no GPU "
            f"(CUDA build: {cuda or 'no, CPU-only build'}); install a CUDA build of "
            "TensorFlow, check the GPU libraries load (TF_CPP_MIN_LOG_LEVEL=0 shows why), "
            "or run with --device cpu"
        )
    details = tf.config.experimental.get_device_details(gpus[0])
    return "gpu", details.get("device_name", gpus[0].name)


def _mixed_policy(tf, device: str) -> str:
    capability = None
    if device == "gpu":
        gpu = tf.config.list_physical_devices("GPU")[0]
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
    return "mixed_" + low_precision(device == "gpu", capability)


def _to_device(tf, images: np.ndarray, labels: np.ndarray):
    """Copy to the device of the enclosing tf.device scope (identity forces the placement)."""
    x = (images.astype(np.float32)[..., None] / 255.0 - MEAN) / STD  # NHWC: TF's CPU layout
    # int64 labels: TF keeps int32 tensors in host memory even on a GPU.
    return tf.identity(tf.constant(x)), tf.identity(tf.constant(labels.astype(np.int64)))


def _model(tf, quick: bool, policy: str | None):
    layers = tf.keras.layers
    c1, c2 = QUICK_WIDTHS if quick else WIDTHS
    kw = {"dtype": policy} if policy else {}
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(c1, 5, padding="same", use_bias=False, **kw),
            layers.BatchNormalization(momentum=BN_MOMENTUM, **kw),
            layers.ReLU(**kw),
            layers.MaxPooling2D(2, **kw),
            layers.Conv2D(c2, 5, padding="same", use_bias=False, **kw),
            layers.BatchNormalization(momentum=BN_MOMENTUM, **kw),
            layers.ReLU(**kw),
            layers.MaxPooling2D(2, **kw),
            layers.Flatten(**kw),
            # Logits in float32 so the softmax/loss stay accurate under mixed precision.
            layers.Dense(10, dtype="float32"),
        ]
    )


def _one_cycle(tf, total_steps: int, peak: float):
    """Linear warm-up to ``peak`` over 25% of the steps, then cosine decay to 0 (OneCycleLR)."""

    class OneCycle(tf.keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            warm = 0.25 * total_steps
            low = peak / 25.0
            rising = low + (peak - low) * step / warm
            progress = tf.minimum((step - warm) / (total_steps - warm), 1.0)
            falling = peak * 0.5 * (1.0 + tf.cos(np.pi * progress))
            return tf.where(step < warm, rising, falling)

        def get_config(self) -> dict:
            return {"total_steps": total_steps, "peak": peak}

    return OneCycle()


def _fit(tf, cfg: dict, data, policy: str | None, curve: bool) -> dict:
    """Train one model from the seed; time steps (first apart), evaluate at curve points."""
    x, y, xt, yt = data
    tf.keras.utils.set_random_seed(cfg["seed"])
    model = _model(tf, cfg["quick"], policy)
    batch, n = cfg["batch_size"], int(x.shape[0])
    total = total_steps(cfg, n)
    opt = tf.keras.optimizers.Adam(learning_rate=_one_cycle(tf, total, cfg["max_lr"]))
    scale = FP16_LOSS_SCALE if policy == "mixed_float16" else None
    rng = np.random.RandomState(cfg["seed"])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)])
    def step(order, start):
        idx = order[start : start + batch]
        xb, yb = tf.gather(x, idx), tf.gather(y, idx)
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb, logits=logits)
            )
            scaled = loss * scale if scale else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        if scale:
            grads = [g / scale for g in grads]
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def sync() -> None:
        # Reading a weight waits for every queued update (GPU work runs asynchronously).
        float(tf.reduce_sum(model.trainable_variables[0]))

    return timed_steps(
        cfg,
        n,
        shuffle=lambda: tf.constant(rng.permutation(n).astype(np.int32)),
        step=lambda order, start: step(order, tf.constant(start, tf.int32)),
        sync=sync,
        evaluate=lambda: _accuracy(tf, model, xt, yt),
        curve=curve,
    )


def _accuracy(tf, model, xt, yt) -> float:
    correct = 0
    n = int(xt.shape[0])
    for start in range(0, n, EVAL_BATCH):
        logits = model(xt[start : start + EVAL_BATCH], training=False)
        hits = tf.equal(
            tf.argmax(logits, axis=1, output_type=tf.int64), yt[start : start + EVAL_BATCH]
        )
        correct += int(tf.reduce_sum(tf.cast(hits, tf.int32)))
    return correct / n
