"""``landscape checkpoints list|info``: the registry, and what a checkpoint file is."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("checkpoints", help="list known checkpoints, or describe one without running it",
                       description="Checkpoints: the registry (checkpoints/manifest.toml) and what a file is.")
    csub = p.add_subparsers(dest="checkpoints_command", metavar="ACTION")
    lp = csub.add_parser("list", help="print the checkpoint registry as a table")
    lp.add_argument("--family", default=None, help="only this family")
    lp.set_defaults(func=run_list)
    ip = csub.add_parser("info", help="family, architecture, parameter count, replay buffer and metadata of a checkpoint",
                         description="Describe a checkpoint (a path, an http(s) URL that is already cached, or a "
                                     "registry name) without running it and without downloading anything.")
    ip.add_argument("source", metavar="PATH_OR_NAME")
    ip.add_argument("--family", default=None, help="the family, when detection should not decide")
    ip.add_argument("--model-dir", default=None, help="RobustBench model directory (default $LANDSCAPE_HOME/robustbench)")
    ip.add_argument("--dataset", default=None, help="RobustBench dataset (default cifar10)")
    ip.add_argument("--threat-model", default=None, help="RobustBench threat model (default Linf)")
    ip.add_argument("--architecture", default=None, help="registered architecture (family state_dict)")
    ip.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _fmt(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def run_list(args) -> int:
    from ..checkpoints.fetch import offline
    from ..checkpoints.manifest import load_manifest, manifest_path
    from ..checkpoints.resolve import entry_cache_path
    from ..checkpoints.robustbench import default_model_dir
    from ..errors import LandscapeError

    entries = list(load_manifest().values())
    if args.family:
        entries = [e for e in entries if e.family == args.family]
        if not entries:
            raise LandscapeError(f"no registry entry has family {args.family!r}")
    rows = [("NAME", "FAMILY", "ARCHITECTURE", "DATASET", "CLEAN", "AA", "CACHED", "SOURCE")]
    for e in entries:
        arch = e.architecture
        if e.arch_kwargs:
            k = e.arch_kwargs
            arch = f"wrn-{k.get('depth', '?')}-{k.get('width', '?')} ({k.get('norm', 'none')})" if e.architecture == "wrn" else arch
        if e.family == "robustbench":
            zoo_file = default_model_dir() / e.dataset / e.threat_model / f"{e.zoo_name or e.name}.pt"
            cached = "yes" if zoo_file.is_file() else "no"
            origin = "RobustBench zoo"
        else:
            cached = "yes" if entry_cache_path(e).is_file() else "no"
            origin = "direct url" if e.url else "by hand (see info)"
        rows.append((e.name, e.family, arch, e.dataset, _fmt(e.metrics.get("clean_acc")),
                     _fmt(e.metrics.get("autoattack_acc")), cached, origin))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"\n{len(entries)} checkpoint(s) from {manifest_path()}; CLEAN/AA: accuracy (%) the authors or RobustBench "
          "report (AA: AutoAttack, Linf 8/255).")
    print("Load one with landscape.load_model(NAME); `landscape checkpoints info NAME` for details."
          + (" LANDSCAPE_OFFLINE is set: nothing will be downloaded." if offline() else ""))
    return 0


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def run_info(args) -> int:
    import json

    from ..checkpoints.describe import inspect_checkpoint, training_summary
    from ..errors import CheckpointError

    overrides = {k: v for k, v in (("model_dir", args.model_dir), ("dataset", args.dataset),
                                   ("threat_model", args.threat_model), ("architecture", args.architecture)) if v}
    info = inspect_checkpoint(args.source, family=args.family, **overrides)
    lines = [("source", info.source)]
    if info.path:
        lines.append(("file", f"{info.path} ({_size(info.size_bytes)}, {info.format})"))
    elif info.expected_path:
        lines.append(("file", f"not downloaded; it will be cached at {info.expected_path}"))
    family = info.family or "-"
    others = [c for c in info.family_candidates if c != info.family]
    if others:
        family += f" (the same layout is also written by: {', '.join(others)})"
    lines.append(("family", family))
    arch = info.architecture or "-"
    if info.arch_kwargs:
        arch += " " + " ".join(f"{k}={v}" for k, v in info.arch_kwargs.items())
    lines.append(("architecture", arch))
    if info.n_parameters is not None:
        lines.append(("parameters", f"{info.n_parameters:,}" + (f" (+ {info.n_buffer_values:,} buffer values)" if info.n_buffer_values else "")))
    if info.normalization is not None:
        norm = info.normalization
        if isinstance(norm, dict):
            norm = norm.get("kind") if norm.get("kind") != "meanstd" else json.dumps(norm)
        lines.append(("normalization", str(norm) + (" (inputs in [0, 1] are mapped to 2x - 1)" if norm == "jem" else "")))
    if info.input_shape:
        lines.append(("input shape", " x ".join(map(str, info.input_shape))))
    if info.n_classes:
        lines.append(("classes", str(info.n_classes)))
    if info.family not in (None, "robustbench"):
        if info.replay_buffer:
            b = info.replay_buffer
            rng = f", values in [{b['min']:.3f}, {b['max']:.3f}]" if "min" in b else ""
            lines.append(("replay buffer", f"{' x '.join(map(str, b['shape']))} {b['dtype']}{rng} (loaded as pixels in [0, 1])"))
        elif info.path:
            lines.append(("replay buffer", "none"))
    meta = dict(info.metadata)
    problem = meta.pop("problem", None)
    for prefix, why in meta.pop("dropped_keys", {}).items():
        lines.append(("dropped keys", f"{prefix} {why}"))
    if isinstance(meta.get("training"), dict) and isinstance(meta["training"].get("config"), dict):
        # the recorded training run in words first; the whole record follows under "training"
        summary = training_summary(meta)
        lines += [(f"trained: {k}", v) for k, v in summary.items() if k != "family"]
    for key, value in meta.items():
        if key == "family" and value == info.family:
            continue  # printed above
        text = json.dumps(value, default=str) if not isinstance(value, str) else value
        lines.append((key.replace("_", " "), text))
    if info.registry:
        reg = info.registry
        lines.append(("paper", reg.get("paper", "-") + (f" ({reg['paper_url']})" if reg.get("paper_url") else "")))
        if reg.get("metrics"):
            lines.append(("reported", ", ".join(f"{k}={v}" for k, v in reg["metrics"].items())
                          + (f" [{reg['metrics_source']}]" if reg.get("metrics_source") else "")))
        if reg.get("url"):
            lines.append(("url", reg["url"]))
        elif reg.get("page"):
            lines.append(("download by hand", f"{reg['page']} (file {reg.get('filename', '')})"))
        if reg.get("sha256"):
            lines.append(("sha256", reg["sha256"]))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    if problem:  # described as far as possible, but the file cannot be loaded: exit 2 with the reason
        raise CheckpointError(f"{info.source} cannot be loaded: {problem}")
    return 0
