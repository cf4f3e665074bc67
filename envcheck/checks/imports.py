"""imports: each framework and the scientific stack, with version and import time."""

from __future__ import annotations

from ..model import CheckResult, failed, passed, skipped
from .registry import Context, register

CAT = "imports"
# What envcheck itself imports (MNIST loading); the rest of the scientific stack is the env's.
ENVCHECK_NEEDS = ("numpy",)


@register(CAT, "torch", framework="torch")
def torch_import(ctx: Context) -> CheckResult:
    d = ctx.data("torch.facts")
    return passed(
        CAT,
        "torch",
        f"torch {d['version']} in {d['import_seconds']:.1f} s",
        figures={"version": d["version"], "seconds": round(d["import_seconds"], 3)},
    )


@register(CAT, "tensorflow", framework="tensorflow")
def tf_import(ctx: Context) -> CheckResult:
    d = ctx.data("tensorflow.facts")
    return passed(
        CAT,
        "tensorflow",
        f"tensorflow {d['version']} in {d['import_seconds']:.1f} s",
        figures={"version": d["version"], "seconds": round(d["import_seconds"], 3)},
    )


@register(CAT, "keras", framework="tensorflow")
def keras_import(ctx: Context) -> CheckResult:
    k = ctx.data("tensorflow.facts")["keras"]
    if not k["ok"]:
        return failed(
            CAT,
            "keras",
            "keras does not import",
            k["error"],
            "install keras matching TensorFlow (it is in every env with TensorFlow)",
        )
    # keras is imported after TensorFlow, so its time is what keras adds on top of it
    seconds = k.get("seconds")  # facts recorded before it was reported lack it
    if seconds is None:
        return passed(CAT, "keras", f"keras {k['version']}", figures={"version": k["version"]})
    return passed(
        CAT,
        "keras",
        f"keras {k['version']} in {seconds:.1f} s",
        figures={"version": k["version"], "seconds": round(seconds, 3)},
    )


def _science_check(module: str):
    def check(ctx: Context) -> CheckResult:
        m = ctx.data("science")["modules"][module]
        if not m["ok"]:
            in_env = bool(ctx.data("environment").get("conda_prefix"))
            missing = m["error"].startswith("ModuleNotFoundError")
            if missing and not in_env and module not in ENVCHECK_NEEDS:
                # the pixi envs ship it; a plain pip install of envcheck does not need it
                return skipped(
                    CAT,
                    module,
                    f"{module} is not installed; outside a pixi/conda env it is not checked "
                    "(the envs ship it, envcheck does not need it)",
                )
            if in_env:
                fix = (
                    f"reinstall the env from the lock (pixi install --locked); {module} is in "
                    "every env"
                )
            elif missing:
                fix = f"pip install {module} (envcheck needs it to load MNIST)"
            else:
                fix = f"reinstall it: pip install --force-reinstall {module}"
            return failed(CAT, module, f"{module} does not import", m["error"], fix)
        return passed(
            CAT,
            module,
            f"{module} {m['version']} in {m['seconds']:.2f} s",
            figures={"version": m["version"], "seconds": round(m["seconds"], 3)},
        )

    check.__name__ = f"{module}_import"
    return check


for _module in ("numpy", "scipy", "pandas", "matplotlib"):
    register(CAT, _module)(_science_check(_module))
