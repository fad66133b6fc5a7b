#!/bin/sh
# Retrain the bundled Fashion-MNIST models: run folders under $RUNS (default runs/fmnist),
# then copy each run's best.safetensors and metrics next to this script and measure it on the test split.
# Usage: sh checkpoints/fmnist/train_all.sh [standard pgdat trades jem ebjdat]
set -e
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-runs/fmnist}
PY=${PY:-.venv/bin/python}
for name in ${@:-standard pgdat trades jem ebjdat}; do
  $PY -m landscape.cli --no-progress train --recipe fmnist-$name --out "$RUNS/$name"
  cp "$RUNS/$name/best.safetensors" checkpoints/fmnist/$name.safetensors
  cp "$RUNS/$name/metrics.csv" checkpoints/fmnist/$name.metrics.csv
  cp "$RUNS/$name/metrics.json" checkpoints/fmnist/$name.metrics.json
  $PY checkpoints/fmnist/measure.py checkpoints/fmnist/$name.safetensors
done
