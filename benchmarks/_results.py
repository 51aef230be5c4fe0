"""Writing benchmark results: a JSON list of flat records and a Markdown table, side by side."""

import datetime
import json
import pathlib
import shlex
import sys

RESULTS = pathlib.Path(__file__).parent / "results"


def device_name(device="auto"):
    """What a row's ``device`` says: the GPU's name, or the CPU with its torch thread count."""
    import torch

    from sktextae.device import resolve_device

    device = torch.device(resolve_device(device))
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def stamp(row):
    """Add the date and the command that produced a row."""
    command = "python " + " ".join(shlex.quote(a) for a in [pathlib.Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    return {**row, "date": datetime.date.today().isoformat(), "command": command}


def write(name, rows, columns, *, title, notes=(), quiet=False):
    """Save ``rows`` as ``results/<name>.json`` and a Markdown table ``results/<name>.md``.

    ``notes`` (lines of Markdown) go below the table; ``quiet`` skips printing the table.
    """
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"# {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    if rows:
        lines += ["", f"Date: {rows[0]['date']}. Command: `{rows[0]['command']}`."]
    if notes:
        lines += [""] + list(notes)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    if not quiet:
        print("\n".join(lines))


def _fmt(value):
    return f"{value:.3f}" if isinstance(value, float) else str(value)
