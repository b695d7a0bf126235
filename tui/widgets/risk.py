"""Risk as a bar of characters, readable without colour."""

from __future__ import annotations

from rich.text import Text


def risk_bar(risk: float | None, width: int = 10) -> Text:
    """`███████░░░ 0.71`: the bar carries the value without colour; colour only adds emphasis."""
    if risk is None:
        return Text("-".ljust(width) + "  n/a", style="dim")
    filled = max(0, min(width, round(risk * width)))
    style = "bold red" if risk >= 0.8 else ("yellow" if risk >= 0.5 else "green")
    return Text("█" * filled, style=style) + Text("░" * (width - filled), style="dim") + Text(f" {risk:.2f}")


def risk_label(risk: float | None) -> Text:
    """A short text label, for narrow columns."""
    if risk is None:
        return Text("n/a", style="dim")
    word = "HIGH" if risk >= 0.8 else ("med" if risk >= 0.5 else "low")
    style = "bold red" if risk >= 0.8 else ("yellow" if risk >= 0.5 else "green")
    return Text(f"{risk:.2f} {word}", style=style)
