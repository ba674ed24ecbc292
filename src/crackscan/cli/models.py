"""``crackscan models``: the bundled models, or everything one model file says about itself."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from crackscan.cli._common import fail as _fail
from crackscan.cli._common import out
from crackscan.runtime.catalog import ModelSummary, bundled_names, restrictive_licences, summarise
from crackscan.runtime.predictor import ModelLoadError


def _design(s: ModelSummary) -> str:
    return f"{s.arch} / {s.encoder}" if s.encoder else s.arch


def _threshold(s: ModelSummary) -> str:
    return f"{s.threshold:.2f}" + (f" (TTA {s.tta_threshold:.2f})" if s.tta_threshold is not None else "")


def _trained_on(s: ModelSummary) -> str:
    return ", ".join(f"{t.name} ({t.licence})" for t in s.training_sets) or "not recorded"


def _one(s: ModelSummary) -> None:
    table = Table(title=escape(s.name), show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # paths and commands whole, to copy
    rows = [
        ("file", f"{s.path} ({s.size_mb:.2f} MB, precision {s.precision}, crackscan {s.crackscan_version or '?'})"),
        ("task", s.task),
        ("design", _design(s)),
        ("input", f"{s.input_size} px, classes {', '.join(s.class_names)}"),
        ("threshold", _threshold(s)),
    ]
    for t in s.training_sets:
        counts = ", ".join(f"{k} {v}" for k, v in (("train", t.train), ("val", t.val), ("test kept out", t.test)) if v)
        checked = (
            f"; {t.test_digests} test images' digests recorded (fine-tunes are checked against them)"
            if t.test_digests is not None
            else ""
        )
        rows.append((f"trained on {t.name}", f"{t.licence}" + (f"; {counts}" if counts else "") + checked))
    rows += [(k, f"{v:.4f}") for k, v in s.metrics.items()]
    rows += [("command", s.command or "not recorded"), ("card", s.card or "none")]
    for key, value in rows:
        table.add_row(escape(key), escape(str(value)))
    out.print(table)


def _warn_licences(summaries: list[ModelSummary]) -> None:
    for s in summaries:
        limited = restrictive_licences(s)
        if limited:
            terms = escape("; ".join(limited))
            out.print(f"note: {escape(s.name)} was trained on {terms}: check those terms before using it.")


def models(
    model: str | None = typer.Argument(
        None, help="A model file (.onnx), training run folder or bundled name; without it, list the bundled models."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the bundled models, or show what one model was trained on (sets and their licences), its design,
    thresholds, size and validation figures."""
    try:
        summaries = [summarise(model)] if model else [summarise(name) for name in bundled_names()]
    except ModelLoadError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        payload = summaries[0].to_dict() if model else [s.to_dict() for s in summaries]
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    if model:
        _one(summaries[0])
    else:
        table = Table(title="bundled models")
        for column in ("name", "task", "design", "input", "threshold", "size", "trained on (licence)"):
            table.add_column(column)
        for s in summaries:
            table.add_row(
                escape(s.name), s.task, escape(_design(s)), f"{s.input_size} px", _threshold(s),
                f"{s.size_mb:.1f} MB", escape(_trained_on(s)),
            )  # fmt: skip
        out.print(table)
        out.print("`crackscan models NAME` shows one model in full; cards: src/crackscan/assets/models/NAME.md")
    _warn_licences(summaries)
