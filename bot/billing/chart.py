"""The spend report's chart: daily spend as a PNG drawn with matplotlib (Agg), readable on Discord's dark theme.

matplotlib is imported when a chart is drawn, not when the bot starts; the Agg backend draws without a display, and
one lock keeps concurrent reports from sharing pyplot's global state (`Figure` objects are used directly anyway).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

__all__ = ["BACKGROUND", "daily_chart"]

BACKGROUND = "#313338"
"""Discord's dark message background, so the chart sits in it without a bright box."""
_TEXT = "#dbdee1"
_GRID = "#4e5058"
_BAR = "#5865f2"
_lock = threading.Lock()


def daily_chart(days: Sequence[tuple[date, int]], title: str) -> bytes:
    """Draw spend per UTC day (micro-dollars) as a bar chart; return the PNG's bytes (about 800 x 400 pixels)."""
    import matplotlib  # heavy, and only needed when a report is drawn

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    with _lock:
        figure = Figure(figsize=(8, 4), dpi=100, facecolor=BACKGROUND)
        axes = figure.add_subplot()
        axes.set_facecolor(BACKGROUND)
        labels = [day.strftime("%b %d") for day, _ in days]
        dollars = [float(Decimal(amount).scaleb(-6)) for _, amount in days]
        axes.bar(range(len(days)), dollars, color=_BAR, width=0.7)
        axes.xaxis.set_major_locator(MaxNLocator(nbins=min(len(days), 12), integer=True))
        axes.xaxis.set_major_formatter(
            FuncFormatter(lambda value, _: labels[int(value)] if 0 <= int(value) < len(labels) else "")
        )
        if len(days) > 7:
            for label in axes.get_xticklabels():
                label.set(rotation=45, horizontalalignment="right")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"${value:,.2f}"))
        axes.set_ylim(bottom=0, top=max([*dollars, 0.01]) * 1.15)
        axes.set_title(title, color=_TEXT)
        axes.set_ylabel("spent (USD)", color=_TEXT)
        axes.tick_params(colors=_TEXT)
        axes.grid(axis="y", color=_GRID, linewidth=0.6)
        axes.set_axisbelow(True)
        for side in axes.spines.values():
            side.set_color(_GRID)
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png", facecolor=BACKGROUND)
    return out.getvalue()
