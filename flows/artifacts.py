"""Plots in the Prefect UI: each campaign iteration's learning curve and parity plot as a markdown artifact.

Prefect's UI (3.9, checked in headless Chromium by ``tests/test_ui_artifacts.py``) renders markdown images whose
source is a ``data:image/png;base64,…`` URI, so the PNG travels inside the artifact and needs no file server;
it is drawn at a modest resolution (``DPI``) to keep each artifact near 100 kB in the server's database. The
artifact's key is ``<campaign name>-plots`` (one per iteration, the latest on top in the Artifacts tab).
"""

from __future__ import annotations

import base64
import io

from flows.plots import learning_curve_figure, parity_figure
from flows.reporting import artifact_key
from flows.store import CampaignStore

DPI = 72


def png_data_uri(fig, dpi: int = DPI) -> str:
    """``fig`` as a ``data:image/png;base64,…`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plots_markdown(store: CampaignStore, name: str, iteration: int) -> str | None:
    """Markdown with the learning curve up to ``iteration`` and the parity plot of that iteration's potential
    on the test set, as inline PNG images; None when neither can be drawn yet."""
    parts = [f"# {name}: iteration {iteration}", ""]
    figures = (("learning curve", learning_curve_figure(store, upto=iteration),
                "test and training RMSE against the labels in the fit (forces eV/Å, energies meV/atom)"),
               ("parity", parity_figure(store, iteration=iteration),
                f"potential of iteration {iteration} against PySCF on the test set (meV/atom, eV/Å)"))
    drawn = 0
    for title, fig, caption in figures:
        if fig is None:
            continue
        parts += [f"## {title}", "", f"![{title}, iteration {iteration}]({png_data_uri(fig)})", "", caption, ""]
        drawn += 1
    return "\n".join(parts) if drawn else None


def publish_plots(store: CampaignStore, name: str, iteration: int) -> str | None:
    """Create the ``<name>-plots`` markdown artifact for ``iteration`` (inside a flow run); returns its markdown
    or None when there was nothing to draw."""
    from prefect.artifacts import create_markdown_artifact

    markdown = plots_markdown(store, name, iteration)
    if markdown is not None:
        create_markdown_artifact(markdown, key=artifact_key(name, "plots"),
                                 description=f"campaign {name}: learning curve and parity, iteration {iteration}")
    return markdown
