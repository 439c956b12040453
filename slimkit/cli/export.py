"""`slimkit export`: the trained recommender as an ONNX model."""

from __future__ import annotations

from pathlib import Path

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def export_command(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    output: Path = typer.Option(
        ..., "--output", "-o", help="The ONNX file to write, e.g. model.onnx (its .json and, "
        "for heads with rationales, .rationales.npy go beside it).", show_default=False,
    ),
    check: bool = typer.Option(
        True, "--check/--no-check",
        help="Compare onnxruntime's scores with PyTorch's for every user of the dataset.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Export the trained recommender to ONNX (inputs: item sequence, lengths, and the user's
    rationale vector where the fusion head reads one; output: a score per item).

    Needs a trained model (`slimkit run -c FILE` first) and the `export` extra:
    pip install 'slimkit\\[export]'. See docs/export.md for serving the file elsewhere.
    """
    from slimkit.cli._common import load_spec_from_cli, print_json
    from slimkit.console import stderr_console
    from slimkit.errors import require_extra

    require_extra("export", "onnx", "onnxruntime", "onnxscript")
    from slimkit.export import export_onnx

    spec = load_spec_from_cli(config, overrides)
    console = stderr_console()
    with console.status(f"Exporting {spec.backbone.kind} + {spec.fusion.kind} to {output}"):
        report = export_onnx(spec, output, check=check)
    if as_json:
        print_json({k: v for k, v in report.items() if k not in ("item_ids", "item_titles", "user_ids")})
        return
    inputs = ", ".join(f"{name} {tuple(shape)}" for name, shape in report["inputs"].items())
    console.print(f"Wrote {output} ({output.stat().st_size / 1e6:.1f} MB) and {output}.json in "
                  f"{report['seconds']:.1f} s.")
    console.print(f"  inputs: {inputs}; output: scores {tuple(report['outputs']['scores'])}")
    if "check" in report:
        c = report["check"]
        equal = c["top{}_equal_users".format(c["k"])]
        console.print(f"  checked with onnxruntime on {c['users']} users: top-{c['k']} equal to "
                      f"PyTorch's for {equal}, largest score difference {c['max_abs_diff']:.1e}.")


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
