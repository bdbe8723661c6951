"""StyleGAN2 with and without ADA on 200 training digits: FID / KID vs the held-out digits, D's r_t, p.

  python experiments/results/stylegan2_ada_digits/report.py RUN_ADA RUN_NO_ADA [--num=N]

RUN_ADA trained `experiments/configs/stylegan2_ada.py --config.data.split='train[:200]'`; RUN_NO_ADA the
same with --config.regularization.ada_target=0 (p fixed at 0: no augmentation, but D's real-logit signs
still logged). Writes the figures and results.json next to this file; the README quotes them.
Metrics come from tools/metrics.py (the FID Inception, pytorch-fid resize) on EMA-G samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))


def metric(name: str, **flags) -> dict:
    args = [sys.executable, os.path.join(ROOT, "tools", "metrics.py"), f"--metric={name}"]
    args += [f"--{k}={v}" for k, v in flags.items()]
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def curves(workdir: str) -> dict[str, np.ndarray]:
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl")) if line.strip()]
    rows = [r for r in rows if "train/d_loss" in r]
    keys = ("step", "train/d_real_sign", "train/ada_p", "train/ada_rt", "train/d_loss", "train/g_loss")
    return {k: np.asarray([r.get(k, np.nan) for r in rows], np.float64) for k in keys}


def main(argv):
    run_ada, run_plain = argv[1], argv[2]
    num = int(next((a.split("=")[1] for a in argv if a.startswith("--num=")), 2000))
    from jaxgan import data
    from jaxgan.metrics import digits_classifier

    heldout = digits_classifier.load_split("test")[0][..., None]
    train200 = data.load_tfds_images("sklearn_digits", split="train[:200]", image_size=32, channels=1)["image"]
    ref = os.path.join("/tmp", "ada_digits_heldout.npz")
    real = os.path.join("/tmp", "ada_digits_train200.npz")
    np.savez(ref, images=heldout)
    np.savez(real, images=np.asarray(train200))
    results = {"num_fake": num, "num_heldout": int(len(heldout)), "runs": {}}
    results["floor"] = {
        "fid": metric("fid", a=real, b=ref)["value"],
        "kid": metric("kid", a=real, b=ref)["value"],
    }
    for name, workdir in (("ada", run_ada), ("no_ada", run_plain)):
        fid = metric("fid", workdir=workdir, b=ref, num=num)
        kid = metric("kid", workdir=workdir, b=ref, num=num)
        fid_train = metric("fid", workdir=workdir, b=real, num=num)
        c = curves(workdir)
        results["runs"][name] = {
            "workdir": workdir,
            "fid_heldout": fid["value"],
            "kid_heldout": kid["value"],
            "fid_train200": fid_train["value"],
            "final_step": int(c["step"][-1]),
            "final_p": float(c["train/ada_p"][-1]),
            "curves": {k: [None if np.isnan(v) else float(v) for v in vals] for k, vals in c.items()},
        }
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(results, f, indent=1)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, style in (("ada", "-"), ("no_ada", "--")):
        c = results["runs"][name]["curves"]
        steps = np.asarray(c["step"], float)
        signs = np.asarray([np.nan if v is None else v for v in c["train/d_real_sign"]], float)
        k = 5  # a running mean over 5 logged steps (250 train steps): the per-step sign is noisy
        smooth = np.convolve(np.nan_to_num(signs), np.ones(k) / k, mode="same")
        axes[0].plot(steps, smooth, style, label=f"{name}: E[sign D(real)] (r_t)")
        if name == "ada":
            axes[1].plot(steps, [np.nan if v is None else v for v in c["train/ada_p"]], label="ADA's p")
    axes[0].axhline(0.6, color="gray", lw=0.8, label="target 0.6")
    axes[0].set_xlabel("step")
    axes[0].legend()
    axes[0].set_title("D's overfitting heuristic r_t on 200 digits")
    axes[1].set_xlabel("step")
    axes[1].legend()
    axes[1].set_title("augmentation probability p")
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "rt_and_p.png"), dpi=110)
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}))
    for name, r in results["runs"].items():
        print(name, {k: v for k, v in r.items() if k != "curves"})


if __name__ == "__main__":
    main(sys.argv)
