"""Run under torchrun: each rank scores its shard; rank 0 writes the gathered table."""

import sys

import torch
import torch.distributed as dist

from landscape import load_model
from landscape.data import load_dataset
from landscape.engine import score
from test_engine import GradStep, Identity, KeyedNoise

dist.init_process_group("gloo")
model = load_model(sys.argv[1])
table = score(model, load_dataset("digits", "test"), [Identity(), KeyedNoise(), GradStep()], batch_size=50,
              model_name="tiny")
if dist.get_rank() == 0:
    table.to_parquet(sys.argv[2], index=False)
dist.barrier()
dist.destroy_process_group()
