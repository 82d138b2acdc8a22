"""Writing benchmark results into docs/benchmarks.md, one marked section per benchmark."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    """CPUs, OS, Python, and torch/transformers/numpy where this process has them loaded."""
    import sys

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    text = f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}"
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        text += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    for name in ("transformers", "numpy"):
        if name in sys.modules:
            text += f", {name} {sys.modules[name].__version__}"
    return text


def write_section(key: str, section: str) -> None:
    """Replace the text between this benchmark's markers (``section`` starts with its heading),
    keeping every other section of the doc, or append it."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{section.strip()}\n{end}\n"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nEach section is written by the script it names.\n"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end) + r"\n?", lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
