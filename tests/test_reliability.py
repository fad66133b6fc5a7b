"""Bad input, hostile files and interrupted runs: one clear error, before any work, nothing half-written.

Each test here failed on the code before the reliability pass (issue 13); the last
one feeds every CLI subcommand a table of bad inputs.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time

import numpy as np
import pandas as pd
import pytest
import torch

from landscape.errors import CheckpointError, ConfigError, LandscapeError
from landscape.native import save_model


@pytest.fixture(scope="module")
def ckpt(trained_digits_model, tmp_path_factory):
    return save_model(trained_digits_model, tmp_path_factory.mktemp("ck") / "digits.safetensors", dataset="digits")


@pytest.fixture(scope="module")
def digits_xy():
    from landscape.data import load_dataset, to_tensors

    x, y = to_tensors(load_dataset("digits", "test"), list(range(24)))
    return x, y


def _rewrite_header(src, dst, **changes):
    """Copy a native file, changing entries of its JSON header (the tensors stay)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    header = json.loads(meta["landscape"])
    header.update(changes)
    save_file(tensors, str(dst), metadata={"landscape": json.dumps(header)})
    return dst


# ----------------------------------------------------------------------------- 1. OOD source
def test_ood_source_from_a_spec_and_from_an_analysis_file(ckpt, tmp_path, capsys):
    from landscape.analyses.config import parse_analysis
    from landscape.analyses.runner import build_sources
    from landscape.cli import main
    from landscape.sources import create_source

    rc = main(["--no-progress", "score", str(ckpt), "--data", "digits", "--n", "20", "--sources",
               "clean,ood:dataset=digits:split=train", "--no-cache", "--out", str(tmp_path / "e.csv")])
    assert rc == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "e.csv")
    assert (table.source == "ood:dataset=digits:split=train").sum() == 20
    # the spec's dataset is the OOD set, the positional one the analysed data
    src = create_source("ood", "fashion-mnist", dataset="digits")
    assert src.dataset == "digits"
    assert create_source("ood", "digits").dataset == "digits"
    assert create_source("pgd", dataset="digits").eps == create_source("pgd", "digits").eps

    raw = {"title": "t", "data": {"name": "digits", "n": 10},
           "models": [{"name": "m", "checkpoint": str(ckpt)}],
           "sources": {"o": {"kind": "ood", "dataset": "digits", "split": "train"}}}
    config = parse_analysis(raw)
    assert build_sources(config)["o"].dataset == "digits"
    raw["sources"] = {"o": {"kind": "ood"}}
    with pytest.raises(ConfigError, match=r'\[sources.o\].*needs the out-of-distribution dataset'):
        build_sources(parse_analysis(raw))


# ----------------------------------------------------------------------------- 3. headers that lie
def test_a_header_claiming_a_huge_network_is_refused_without_allocating_it(ckpt, tmp_path, capsys):
    from landscape import load_model
    from landscape.cli import main

    header = json.loads(__import__("safetensors").safe_open(str(ckpt), framework="pt").metadata()["landscape"])
    huge = _rewrite_header(ckpt, tmp_path / "huge.safetensors",
                           arch_kwargs={**header["arch_kwargs"], "width": 30000, "hidden": 30000})
    assert huge.stat().st_size < 5e6
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="has shape"):
        load_model(huge)
    # 179 billion parameters would take minutes to allocate (or kill the process)
    assert time.perf_counter() - t0 < 20
    capsys.readouterr()
    assert main(["checkpoints", "info", str(huge)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("landscape: error:") and "has shape" in err and len(err.strip().splitlines()) == 1
    assert "parameters" not in out  # the header's count is not the file's


def test_info_exits_2_on_a_wrong_architecture_file_and_says_html_like_score(ckpt, tmp_path, capsys):
    from landscape import load_model
    from landscape.cli import main

    wrong = _rewrite_header(ckpt, tmp_path / "wrong.safetensors", arch_kwargs={"in_channels": 1, "n_classes": 10,
                                                                               "width": 16, "hidden": 32})
    assert main(["checkpoints", "info", str(wrong)]) == 2
    assert "PROBLEM" not in capsys.readouterr().out
    page = tmp_path / "page.safetensors"
    page.write_text("<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    assert main(["checkpoints", "info", str(page)]) == 2
    assert "HTML page" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="HTML page"):
        load_model(page)


def test_an_unknown_layout_error_reads_as_a_sentence(tmp_path):
    from landscape import load_model

    path = tmp_path / "odd.pt"
    torch.save({"alpha.weight": torch.zeros(3), "beta.bias": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    msg = str(info.value)
    assert f"{path}: its keys" in msg and " is its keys" not in msg


# ----------------------------------------------------------------------------- 4, 5. dtypes, labels, seeds
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_get_the_one_line_error_everywhere(trained_digits_model, digits_xy, dtype):
    from landscape import score
    from landscape.sources import PGD

    x, y = digits_xy
    xd = x.to(dtype)
    for call in (lambda: trained_digits_model.energy(xd), lambda: trained_digits_model.energy(xd, y),
                 lambda: score(trained_digits_model, (xd, y), "clean", progress_bar=False),
                 lambda: PGD(eps=0.1, steps=2)(trained_digits_model, xd, y)):
        with pytest.raises(LandscapeError, match=f"must be float32 pixels.*got dtype {str(dtype)[6:]}"):
            call()


def test_float_labels_and_seeds_are_refused_not_truncated(trained_digits_model, digits_xy):
    from torch.utils.data import Dataset

    from landscape import score
    from landscape.data import to_tensors

    x, y = digits_xy
    with pytest.raises(LandscapeError, match="labels y must be integer"):
        score(trained_digits_model, (x, y.float() + 0.5), "clean", progress_bar=False)
    with pytest.raises(LandscapeError, match="seed must be an integer"):
        score(trained_digits_model, (x, y), "clean", seed=1.5, progress_bar=False)

    class FloatLabels(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[i], [0.5, 1.7, 2.2, 9.9][i]

    with pytest.raises(LandscapeError, match="integer class indices, got 0.5"):
        to_tensors(FloatLabels())
    with pytest.raises(LandscapeError, match="integer class indices"):
        score(trained_digits_model, FloatLabels(), "clean", progress_bar=False)


def test_sgld_refuses_inputs_of_another_shape(trained_digits_model):
    from landscape.sources import SGLD

    with pytest.raises(LandscapeError, match=r"x must have shape N x 1 x 8 x 8.*got \(2, 1, 28, 28\)"):
        SGLD(steps=2)(trained_digits_model, torch.rand(2, 1, 28, 28))
    with pytest.raises(LandscapeError, match="model's input shape"):
        SGLD(steps=2).run(trained_digits_model, torch.rand(2, 1, 4, 4))


def test_a_root_that_does_not_exist_is_refused(tmp_path):
    from landscape.data import load_dataset
    from landscape.errors import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset("fashion-mnist", root=tmp_path / "nowhere")
    (tmp_path / "f").write_text("x")
    with pytest.raises(DatasetNotFoundError, match="is a file"):
        load_dataset("digits", root=tmp_path / "f")


# ----------------------------------------------------------------------------- 6. cache entries
def test_a_cache_entry_with_the_wrong_schema_is_recomputed(trained_digits_model, digits_xy, tmp_path, caplog):
    from landscape import score

    x, y = digits_xy
    first = score(trained_digits_model, (x, y), "clean", cache=tmp_path, progress_bar=False)
    (entry,) = list(tmp_path.rglob("*.parquet"))
    for bad in (first.drop(columns=["energy"]), first.iloc[:5], first.assign(index=first["index"] + 1),
                first.assign(energy=first["energy"].astype(str))):
        bad.to_parquet(entry, index=False)
        with caplog.at_level(logging.WARNING, logger="landscape.cache"):
            again = score(trained_digits_model, (x, y), "clean", cache=tmp_path, progress_bar=False)
        assert "ignoring cache entry" in caplog.text
        caplog.clear()
        pd.testing.assert_frame_equal(again, first)
        pd.testing.assert_frame_equal(pd.read_parquet(entry), first)  # the entry was rewritten


def test_an_unwritable_cache_is_a_warning(trained_digits_model, digits_xy, tmp_path, caplog):
    from landscape import score

    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    x, y = digits_xy
    with caplog.at_level(logging.WARNING, logger="landscape.cache"):
        table = score(trained_digits_model, (x, y), "clean", cache=blocker, progress_bar=False)
    assert len(table) == len(x) and "not cached" in caplog.text


# ----------------------------------------------------------------------------- 7. unsafe resume state
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_resume_refuses_an_unsafe_state_naming_the_import(tmp_path):
    from landscape.train import fit

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "landscape-train-state", "x": _Evil()}, run / "train_state.pt")
    with pytest.raises(CheckpointError) as info:
        fit(out_dir=run, resume=True)
    msg = str(info.value)
    assert "system" in msg and "nothing from the file was executed" in msg
    assert "weights_only" not in msg


# ----------------------------------------------------------------------------- reports
def test_stale_staging_folders_are_removed_fresh_ones_kept(tmp_path):
    from landscape.analyses.report import clean_stale_staging

    out = tmp_path / "rep"
    stale, fresh, backup = tmp_path / ".rep.abc.tmp", tmp_path / ".rep.def.tmp", tmp_path / ".rep.old-xyz"
    other = tmp_path / ".other.abc.tmp"
    for d in (stale, fresh, backup, other):
        d.mkdir()
        (d / "index.html").write_text("half")
    old = time.time() - 3600
    for d in (stale, backup, other):
        os.utime(d, (old, old))
    removed = clean_stale_staging(out)
    assert sorted(removed) == sorted([stale, backup])
    assert fresh.exists() and other.exists() and not stale.exists()


def test_report_checks_every_model_and_the_output_before_scoring(ckpt, tmp_path, monkeypatch):
    import landscape.analyses.runner as runner

    def no_scoring(*a, **k):
        raise AssertionError("scoring started before the inputs were checked")

    monkeypatch.setattr(runner, "score", no_scoring)
    raw = {"title": "t", "data": {"name": "digits", "n": 10}, "figures": {"trajectories": 0, "samples": 0},
           "models": [{"name": "a", "checkpoint": str(ckpt)},
                      {"name": "b", "checkpoint": str(tmp_path / "missing.safetensors")}],
           "sources": {"clean": {"kind": "clean"}}}
    from landscape.analyses.config import parse_analysis

    with pytest.raises(CheckpointError, match="model 'b'.*does not exist"):
        runner.run_analysis(parse_analysis(raw), tmp_path / "out")
    raw["models"] = raw["models"][:1]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LandscapeError, match="not a folder"):
        runner.run_analysis(parse_analysis(raw), tmp_path / "afile")
    with pytest.raises(LandscapeError, match="is a file, not a folder"):
        runner.run_analysis(parse_analysis(raw), tmp_path / "afile" / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# ----------------------------------------------------------------------------- every subcommand, bad input
def _snapshot(root):
    """Every file's size and mtime, and every folder's existence (a write probe may touch a folder's mtime)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def bad_inputs(ckpt, tmp_path_factory):
    """A folder of bad things, and the table of (name, argv) that feed them to the CLI."""
    d = tmp_path_factory.mktemp("bad")
    (d / "afile").write_text("a file, not a folder")
    (d / "adir").mkdir()
    (d / "notreport").mkdir()
    (d / "notreport" / "keep.txt").write_text("mine")
    (d / "page.safetensors").write_text("<html><body>quota exceeded</body></html>")
    (d / "page.parquet").write_text("<html><body>quota exceeded</body></html>")
    (d / "empty.pt").write_bytes(b"")
    (d / "trunc.safetensors").write_bytes(ckpt.read_bytes()[:300])
    with open(d / "evil.pt", "wb") as fh:
        pickle.dump({"w": _Evil()}, fh, protocol=2)
    header = json.loads(__import__("safetensors").safe_open(str(ckpt), framework="pt").metadata()["landscape"])
    _rewrite_header(ckpt, d / "huge.safetensors", arch_kwargs={**header["arch_kwargs"], "width": 30000, "hidden": 30000})
    (d / "bad.toml").write_text("title = 'x'\n[data\nname = 'digits'\n")
    (d / "typo.toml").write_text(f"title = 't'\n[data]\nname = 'digits'\nn = 10\n[[models]]\nname = 'm'\n"
                                 f"checkpoint = '{ckpt}'\n[sources.p]\nkind = 'pgd'\nstpes = 3\n")
    (d / "two.toml").write_text(f"title = 't'\n[data]\nname = 'digits'\nn = 10\n[[models]]\nname = 'm'\n"
                                f"checkpoint = '{ckpt}'\n[[models]]\nname = 'gone'\ncheckpoint = '{d}/gone.safetensors'\n"
                                "[sources.c]\nkind = 'clean'\n")
    (d / "ok.toml").write_text(f"title = 't'\n[data]\nname = 'digits'\nn = 10\n[[models]]\nname = 'm'\n"
                               f"checkpoint = '{ckpt}'\n[sources.c]\nkind = 'clean'\n")
    (d / "cfg.toml").write_text("epochs = 'many'\n")
    run = d / "evilrun"
    run.mkdir()
    torch.save({"format": "landscape-train-state", "x": _Evil()}, run / "train_state.pt")
    c = str(ckpt)
    score = ["score", c, "--data", "digits", "--n", "8", "--no-cache"]
    table = [
        ("score: missing model", ["score", f"{d}/gone.safetensors", "--data", "digits"]),
        ("score: html model", ["score", f"{d}/page.safetensors", "--data", "digits"]),
        ("score: empty model", ["score", f"{d}/empty.pt", "--data", "digits"]),
        ("score: truncated model", ["score", f"{d}/trunc.safetensors", "--data", "digits"]),
        ("score: pickle that runs code", ["score", f"{d}/evil.pt", "--data", "digits"]),
        ("score: lying header", ["score", f"{d}/huge.safetensors", "--data", "digits"]),
        ("score: out is a folder", score + ["--out", f"{d}/adir"]),
        ("score: out under a file", score + ["--out", f"{d}/afile/e.parquet"]),
        ("score: out suffix", score + ["--out", f"{d}/e.txt"]),
        ("score: n 0", score + ["--n", "0"]),
        ("score: n not a number", score + ["--n", "many"]),
        ("score: unknown source", score + ["--sources", "fgsm"]),
        ("score: source typo", score + ["--sources", "pgd:stpes=3"]),
        ("score: ood without dataset", score + ["--sources", "ood"]),
        ("score: bad eps", score + ["--sources", "pgd:eps=-1"]),
        ("score: unknown dataset", ["score", c, "--data", "nosuch"]),
        ("score: root missing", score + ["--root", f"{d}/nowhere"]),
        ("score: no cuda", score + ["--device", "cuda:7"] if not torch.cuda.is_available() else score + ["--device", "tpu"]),
        ("score: batch size 0", score + ["--batch-size", "0"]),
        ("score: bad split", score + ["--split", "validation"]),
        ("eval: out is a folder", ["eval", c, "--data", "digits", "--n", "8", "--metrics", "accuracy", "--out", f"{d}/adir"]),
        ("eval: out under a file", ["eval", c, "--data", "digits", "--metrics", "accuracy", "--out", f"{d}/afile/t.csv"]),
        ("eval: figures is a file", ["eval", c, "--data", "digits", "--metrics", "ece", "--figures", f"{d}/afile"]),
        ("eval: unknown metric", ["eval", c, "--data", "digits", "--metrics", "accuracy,bogus"]),
        ("eval: n-attack 0", ["eval", c, "--data", "digits", "--n-attack", "0"]),
        ("eval: unknown ood set", ["eval", c, "--data", "digits", "--metrics", "ood", "--ood", "nosuchset"]),
        ("eval: missing model", ["eval", c, f"{d}/gone.pt", "--data", "digits", "--metrics", "accuracy"]),
        ("report: missing file", ["report", f"{d}/gone.toml", "--out", f"{d}/r"]),
        ("report: invalid toml", ["report", f"{d}/bad.toml", "--out", f"{d}/r"]),
        ("report: source typo", ["report", f"{d}/typo.toml", "--out", f"{d}/r"]),
        ("report: second model missing", ["report", f"{d}/two.toml", "--out", f"{d}/r"]),
        ("report: out is a file", ["report", f"{d}/ok.toml", "--out", f"{d}/afile"]),
        ("report: out holds other files", ["report", f"{d}/ok.toml", "--out", f"{d}/notreport"]),
        ("report: n 0", ["report", f"{d}/ok.toml", "--n", "0", "--out", f"{d}/r"]),
        ("demo: out is a file", ["demo", "--out", f"{d}/afile"]),
        ("demo: out holds other files", ["demo", "--out", f"{d}/notreport"]),
        ("demo: n 0", ["demo", "--n", "0", "--out", f"{d}/r"]),
        ("train: unknown recipe", ["train", "--recipe", "nosuch", "--out", f"{d}/t"]),
        ("train: missing config", ["train", "--config", f"{d}/gone.toml", "--out", f"{d}/t"]),
        ("train: invalid config", ["train", "--config", f"{d}/bad.toml", "--out", f"{d}/t"]),
        ("train: config of the wrong type", ["train", "--config", f"{d}/cfg.toml", "--out", f"{d}/t"]),
        ("train: out is a file", ["train", "--objective", "standard", "--dataset", "digits", "--out", f"{d}/afile"]),
        ("train: out under a file", ["train", "--objective", "standard", "--dataset", "digits", "--out", f"{d}/afile/run"]),
        ("train: bad set", ["train", "--objective", "standard", "--dataset", "digits", "--set", "lr", "--out", f"{d}/t"]),
        ("train: epochs 0", ["train", "--objective", "standard", "--dataset", "digits", "--epochs", "0", "--out", f"{d}/t"]),
        ("train: unknown objective", ["train", "--objective", "magic", "--out", f"{d}/t"]),
        ("train: nothing to resume", ["train", "--resume", "--out", f"{d}/adir"]),
        ("train: unsafe resume state", ["train", "--resume", "--out", str(run)]),
        ("train: init-from missing", ["train", "--objective", "standard", "--dataset", "digits",
                                      "--init-from", f"{d}/gone.safetensors", "--out", f"{d}/t"]),
        ("checkpoints info: missing", ["checkpoints", "info", f"{d}/gone.pt"]),
        ("checkpoints info: html", ["checkpoints", "info", f"{d}/page.safetensors"]),
        ("checkpoints info: lying header", ["checkpoints", "info", f"{d}/huge.safetensors"]),
        ("checkpoints info: pickle that runs code", ["checkpoints", "info", f"{d}/evil.pt"]),
        ("checkpoints list: unknown family", ["checkpoints", "list", "--family", "nosuch"]),
        ("quickstart: out is a folder", ["quickstart", "--out", f"{d}/adir"]),
        ("quickstart: n 0", ["quickstart", "--n", "0"]),
        ("compare: missing table", ["compare", f"{d}/gone.parquet", "--out", f"{d}/r"]),
        ("compare: not a table", ["compare", f"{d}/bad.toml", "--out", f"{d}/r"]),
        ("compare: html as parquet", ["compare", f"{d}/page.parquet", "--out", f"{d}/r"]),
        ("compare: out is a file", ["compare", f"{d}/page.parquet", "--out", f"{d}/afile"]),
        ("compare: n-boot 0", ["compare", f"{d}/page.parquet", "--out", f"{d}/r", "--n-boot", "0"]),
        ("score: two models, one label", score + ["--name", "x", "--name", "y"]),
        ("report: init over an existing file", ["report", "--init", f"{d}/ok.toml"]),
        ("info: unexpected argument", ["info", "extra"]),
        ("unknown command", ["frobnicate"]),
    ]
    return d, table


def test_every_subcommand_gives_one_line_exit_2_and_writes_nothing(bad_inputs, tmp_path, monkeypatch, capsys):
    from landscape.cli import main

    d, table = bad_inputs
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    commands = {argv[0] for _, argv in table}
    from landscape.commands import COMMANDS

    assert commands >= set(COMMANDS), set(COMMANDS) - commands
    failures = []
    for name, argv in table:
        before = _snapshot(d)
        try:
            rc = main(["--no-progress", *argv])
        except SystemExit as exc:  # argparse
            rc = exc.code
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        problems = []
        if rc != 2:
            problems.append(f"exit {rc}")
        if len(lines) != 1 or not lines[0].startswith("landscape: error:"):
            problems.append(f"stderr {err[-600:]!r}")
        if "Traceback" in err:
            problems.append("traceback")
        if _snapshot(d) != before:
            problems.append("files changed: " + str(set(_snapshot(d).items()) ^ set(before.items())))
        if problems:
            failures.append(f"{name}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)
    # nothing was written where the commands ran either (no stray run or report folders)
    assert not [p for p in tmp_path.iterdir() if p.name != "home"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folders_are_refused_before_any_work(ckpt, tmp_path, capsys):
    from landscape.cli import main

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        for argv in (["score", str(ckpt), "--data", "digits", "--n", "8", "--no-cache", "--out", f"{ro}/e.csv"],
                     ["eval", str(ckpt), "--data", "digits", "--metrics", "accuracy", "--out", f"{ro}/t.csv"],
                     ["train", "--objective", "standard", "--dataset", "digits", "--out", f"{ro}/run"],
                     ["demo", "--out", f"{ro}/demo"]):
            assert main(["--no-progress", *argv]) == 2
            err = capsys.readouterr().err
            assert err.startswith("landscape: error: cannot write") and "not writable" in err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_output_checks_create_nothing(tmp_path):
    from landscape.utils import check_output_dir, check_output_file

    check_output_file(tmp_path / "a" / "b" / "t.csv", suffixes=(".csv",))
    check_output_dir(tmp_path / "x" / "y")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(LandscapeError, match="must end in .csv"):
        check_output_file(tmp_path / "t.txt", suffixes=(".csv",))
    np.testing.assert_equal(len(list(tmp_path.iterdir())), 0)
