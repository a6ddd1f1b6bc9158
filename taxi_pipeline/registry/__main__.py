"""Which model is serving, what made it, how it compares, and rolling back.

    python -m taxi_pipeline.registry list [--model NAME] [--json]
    python -m taxi_pipeline.registry show VERSION [--model NAME]
    python -m taxi_pipeline.registry diff A B [--model NAME]
    python -m taxi_pipeline.registry rollback --model NAME --to VERSION

Reads the ML Metadata of `--output_dir` (default outputs/, where
local_runner.py writes) and the TF Serving base paths under it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional, Sequence

import taxi_pipeline  # noqa: F401  (Keras 2 before TensorFlow loads)
from taxi_pipeline.contract import catalog
from taxi_pipeline.records.figures import figure, figures, value_text
from taxi_pipeline.runs.layout import OutputInUse, OutputLayout, new_run_id
from taxi_pipeline.runs.run_log import RunLog
from taxi_pipeline.settings import DEFAULT_OUTPUT_DIR


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m taxi_pipeline.registry", description=__doc__.splitlines()[0])
    p.add_argument("--output_dir", default=DEFAULT_OUTPUT_DIR, help="a local runner's output folder (default: %(default)s)")
    commands = p.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="every pushed version: when, metrics, data, code, hyper-parameters, which serves")
    listing.add_argument("--model", choices=catalog.available(), help="one model (default: all)")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = commands.add_parser("show", help="a version's lineage, from data to push")
    show.add_argument("version")
    show.add_argument("--model", choices=catalog.available())
    diff = commands.add_parser("diff", help="two versions' metrics and hyper-parameters side by side")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--model", choices=catalog.available())
    rollback = commands.add_parser("rollback", help="push a blessed version again as the newest, so TF Serving serves it")
    rollback.add_argument("--model", required=True, choices=catalog.available())
    rollback.add_argument("--to", required=True, dest="version", help="the version to serve again")
    return p


def _versions(layout: OutputLayout, names: List[str]):
    from taxi_pipeline.records import lineage

    return {
        name: lineage.versions(layout.metadata_path, catalog.get(name), layout.serving_model_dir(catalog.get(name)))
        for name in names
    }


def _one(layout: OutputLayout, version: str, model: Optional[str]):
    """The version named, looked up in one model or, without --model, in all."""
    from taxi_pipeline.records import lineage

    found = _versions(layout, [model] if model else catalog.available())
    matches = [(name, v) for name, vs in found.items() for v in vs if v.version == version]
    if len(matches) > 1:
        raise lineage.RegistryError(f"version {version} exists for {', '.join(n for n, _ in matches)}: give --model")
    if not matches:
        name = model or "any model"
        raise lineage.RegistryError(
            f"{name} has no pushed version {version!r} recorded"
            + (f" (known: {', '.join(v.version for v in found[model]) or 'none'})" if model else "")
        )
    return catalog.get(matches[0][0]), matches[0][1]


def _list(layout: OutputLayout, args, out) -> None:

    from taxi_pipeline.records import lineage

    for name, found in _versions(layout, [args.model] if args.model else catalog.available()).items():
        if args.json:
            for v in found:
                out.write(json.dumps(lineage.as_mapping(v), default=str) + "\n")
            continue
        out.write(f"{catalog.get(name).serving_name}: {len(found)} pushed version(s)\n")
        for v in found:
            mark = "*" if v.serving else " "
            origin = f"rollback of {v.rollback_of}" if v.rollback_of else f"run {v.run_id}"
            out.write(f"{mark} {v.version}  {v.pushed_at}  {'BLESSED' if v.blessed else 'NOT blessed'}  {figures(v.metrics)}\n")
            out.write(f"    {origin}; data {v.data}; code {v.code_version}\n")
            out.write(f"    hyper-parameters: {', '.join(f'{k}={value_text(x)}' for k, x in sorted(v.hyperparameters.items()))}\n")
        if any(v.serving for v in found):
            out.write("  (* serving: the newest version folder, what TF Serving's default policy serves)\n")


def _show(layout: OutputLayout, args, out) -> None:
    from taxi_pipeline.runs import component_results

    model, v = _one(layout, args.version, args.model)
    origin = f", rollback of {v.rollback_of}" if v.rollback_of else ""
    out.write(f"{v.model} version {v.version}{origin}: pushed {v.pushed_at} by run {v.run_id}"
              f"{' (serving)' if v.serving else ''}\n")
    out.write(f"  source      {v.data}\n")
    for step in v.lineage:
        where = step.artifact.uri if step.artifact is not None else ""
        verdict = ("BLESSED; " if v.blessed else "NOT blessed; ") if step.name == "evaluation" else ""
        produced = (component_results.describe(step.key, step.type_name, step.artifact, list(model.headline_metrics))
                    if step.artifact is not None else "(not recorded)")
        out.write(f"  {step.name:<11} {verdict}{produced}\n")
        out.write(f"  {'':<11} {where}\n")
    out.write(f"  code        {v.code_version}\n")
    out.write(f"  hyper-parameters  {', '.join(f'{k}={value_text(x)}' for k, x in sorted(v.hyperparameters.items()))}\n")


def _diff(layout: OutputLayout, args, out) -> None:

    _, a = _one(layout, args.a, args.model)
    _, b = _one(layout, args.b, args.model)
    rows = [("model", a.model, b.model), ("pushed", a.pushed_at, b.pushed_at), ("run", a.run_id, b.run_id),
            ("blessed", str(a.blessed), str(b.blessed)), ("data", a.data, b.data), ("code", a.code_version, b.code_version)]
    for name in list(dict.fromkeys([*a.metrics, *b.metrics])):
        va, vb = a.metrics.get(name), b.metrics.get(name)
        change = f"{vb - va:+.4f}" if va is not None and vb is not None else ""
        rows.append((name, figure(va) if va is not None else "", figure(vb) if vb is not None else "", change))
    for name in sorted(set(a.hyperparameters) | set(b.hyperparameters)):
        rows.append((name, value_text(a.hyperparameters.get(name, "")), value_text(b.hyperparameters.get(name, ""))))
    width = max(len(r[0]) for r in rows)
    out.write(f"{'':<{width}}  {a.version:<26}  {b.version}\n")
    for row in rows:
        mark = "" if row[1] == row[2] else "  ≠"
        extra = f"  ({row[3]})" if len(row) > 3 and row[3] else ""
        out.write(f"{row[0]:<{width}}  {row[1]:<26}  {row[2]}{extra}{mark}\n")


def _rollback(layout: OutputLayout, args, out) -> None:
    from taxi_pipeline.registry.rollback import rollback

    model = catalog.get(args.model)
    with layout.exclusive(f"registry rollback --model {args.model} --to {args.version}"):  # not during a run
        new = rollback(layout.metadata_path, model, layout.serving_model_dir(model), args.version)
    out.write(f"{model.serving_name}: version {args.version} pushed again as version {new.version} "
              f"({new.destination}); TF Serving watching {os.path.dirname(new.destination)} now serves it\n")


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parser().parse_args(argv)
    layout = OutputLayout(os.path.abspath(args.output_dir))
    if not os.path.exists(layout.metadata_path):
        sys.exit(f"error: no ML Metadata at {layout.metadata_path}: run a pipeline first (python local_runner.py)")
    command = {"list": _list, "show": _show, "diff": _diff, "rollback": _rollback}[args.command]
    # TensorFlow's and TFMA's start-up noise goes to a log, the answer to the terminal.
    with RunLog(quiet_exit=True) as log:
        log.write_to(os.path.join(layout.output_dir, "logs", f"registry-{new_run_id()}.log"))
        from taxi_pipeline.records.lineage import RegistryError

        try:
            command(layout, args, log.terminal)
            return
        except (RegistryError, OutputInUse) as e:
            error = e
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
