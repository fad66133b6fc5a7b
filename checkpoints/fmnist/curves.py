"""Training curves of the bundled models, from their committed training logs.

Reads `<name>.metrics.csv` (one row per epoch, written by `landscape train`) and draws
three panels: validation clean accuracy, validation PGD-10 accuracy, and for JEM and
EB-JDAT the contrastive term mean E(x+) - mean E(x-) (a working JEM keeps it near 0)
with EB-JDAT's alignment term mean E(x+) - mean E(x~); the targets of issue 12 are drawn
as dashed lines. Writes training-curves.png and .pdf next to this script.

    .venv/bin/python checkpoints/fmnist/curves.py
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from landscape.analyses.figures import model_color  # noqa: E402

ROOT = Path(__file__).resolve().parent
NAMES = ("standard", "pgdat", "trades", "jem", "ebjdat")
#: issue 12's targets on the test split (drawn for orientation: the curves are validation accuracies)
TARGETS = {"jem": {"val_acc": 0.87}, "ebjdat": {"val_acc": 0.84, "val_pgd_acc": 0.65}}


def main() -> None:
    logs = {n: pd.read_csv(ROOT / f"{n}.metrics.csv") for n in NAMES}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    for i, (name, df) in enumerate(logs.items()):
        color = model_color(i)
        axes[0].plot(df["epoch"], df["val_acc"], "o-", color=color, label=name)
        if "val_pgd_acc" in df:
            axes[1].plot(df["epoch"], df["val_pgd_acc"], "o-", color=color, label=name)
        for metric, target in TARGETS.get(name, {}).items():
            ax = axes[0] if metric == "val_acc" else axes[1]
            ax.axhline(target, ls="--", lw=1, color=color)
        if "train_px" in df:
            axes[2].plot(df["epoch"], df["train_px"], "o-", color=color, label=f"{name}: E(x+) - E(x-)")
        if "train_energy_align" in df:
            axes[2].plot(df["epoch"], df["train_energy_align"], "s:", color=color, label=f"{name}: E(x+) - E(x~)")
    axes[0].set(title="validation accuracy (dashed: issue 12's targets)", xlabel="epoch", ylabel="accuracy")
    axes[1].set(title="validation PGD-10 accuracy, eps 0.1", xlabel="epoch", ylabel="accuracy")
    axes[2].axhline(0, color="0.6", lw=0.8)
    axes[2].set(title="contrastive and alignment terms (epoch means)", xlabel="epoch", ylabel="energy difference")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.text(0.5, -0.02, "6,000 held-out training images (validation), per epoch; from checkpoints/fmnist/<name>.metrics.csv",
             ha="center", fontsize=8)
    for suffix in ("png", "pdf"):
        fig.savefig(ROOT / f"training-curves.{suffix}", dpi=110, bbox_inches="tight")
    print(f"wrote {ROOT / 'training-curves.png'} and .pdf")


if __name__ == "__main__":
    main()
