"""Print checkpoints/manifest.toml entries for bundled models that have a <name>.test.json.

    python checkpoints/fmnist/manifest_entries.py standard pgdat trades jem ebjdat >> checkpoints/manifest.toml
"""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from landscape.native import read_native_header
from landscape.utils import file_sha256
root = Path(__file__).resolve().parent


def search(cfg):
    if cfg["objective"] not in ("pgdat", "trades", "ebjdat"):
        return ""
    return ", inner search in bf16" if cfg.get("attack_bf16", True) else ", inner search in float32"

titles = {
 "standard": ("standard classifier (cross-entropy)", "-"),
 "pgdat": ("PGD adversarial training, Linf eps 0.1", "Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018"),
 "trades": ("TRADES, beta 6, Linf eps 0.1", "Zhang et al., Theoretically Principled Trade-off between Robustness and Accuracy, ICML 2019"),
 "jem": ("JEM (CE + SGLD maximum likelihood)", "Grathwohl et al., Your Classifier is Secretly an Energy Based Model and You Should Treat it Like One, ICLR 2020"),
 "ebjdat": ("EB-JDAT (JEM + energy alignment + adversarial CE), Linf eps 0.1", "EB-JDAT: Energy-based Joint Distribution Adversarial Training (the method this toolkit measures)"),
}
out = ["", "# --------------------------------------------------------------- bundled (Fashion-MNIST)",
       "# Small native checkpoints trained with `landscape train --recipe fmnist-<name>`, files in",
       "# checkpoints/fmnist/ (with their metrics.csv/json training logs and <name>.test.json).",
       "# Metrics measured by checkpoints/fmnist/measure.py on the full 10,000-image test split after",
       "# training (the test split was never used for selection)."]
for name in sys.argv[1:]:
    f = root / f"{name}.safetensors"
    h = read_native_header(f)
    t = json.loads((root / f"{name}.test.json").read_text())
    tr = h["metadata"]["training"]
    cfg = tr["config"]
    kw = ", ".join(f"{k} = {json.dumps(v)}" for k, v in h["arch_kwargs"].items())
    family_paper = titles[name][1]
    out += ["", "[[checkpoint]]", f'name = "fmnist-{name}"', 'family = "native"', f'architecture = "{h["architecture"]}"',
            f"arch_kwargs = {{ {kw} }}", 'dataset = "fashion-mnist"', 'url = ""', f'filename = "{name}.safetensors"', f'local = "fmnist/{name}.safetensors"',
            f'page = "bundled with landscape: checkpoints/fmnist/{name}.safetensors in the source tree"',
            f'sha256 = "{file_sha256(f)}"',
            f'paper = "{family_paper if family_paper != "-" else "landscape bundled baseline"}"',
            f'metrics_source = "measured here on the Fashion-MNIST test split: {t["attack"]}"',
            f'notes = "{titles[name][0]}; recipe fmnist-{name}; epoch {tr["epoch"]} of {cfg["epochs"]} selected on validation {h["metadata"].get("selected_on", {}).get("metric", "")}; {cfg["epochs"]} epochs, batch {cfg["batch_size"]}, {cfg["optimizer"]} lr {cfg["lr"]}, bf16{search(cfg)}."',
            "[checkpoint.metrics]", f'clean_acc = {t["clean_acc"]}', f'pgd20_acc = {t["pgd20_acc"]}']
print("\n".join(out))
