"""Tokens used of the context window, and how many turns left it (dropped or summarized)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget


class ContextMeter(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Context window usage")
        self.bar.setMaximumHeight(18)
        self.bar.setTextVisible(True)
        self.left_label = QLabel()
        self.left_label.setObjectName("contextLeft")
        self.left_label.setAccessibleName("Messages outside the context window")
        layout.addWidget(self.bar)
        layout.addWidget(self.left_label)
        self.used = 0
        self.n_ctx = 0
        self.dropped = 0
        self.summarized = 0
        self.set_capacity(0)

    def set_capacity(self, n_ctx: int) -> None:
        """Nothing measured yet for this conversation: an empty meter of this size."""
        self.set_report({"n_ctx": n_ctx, "used": 0})

    def set_report(self, report: dict[str, Any], reply_tokens: int = 0) -> None:
        """From a ContextReport's dict (plus the reply, which now sits in the window too)."""
        self.n_ctx = int(report.get("n_ctx") or 0)
        self.used = min(int(report.get("used") or 0) + reply_tokens, self.n_ctx)
        self.dropped = int(report.get("dropped_messages") or 0)
        self.summarized = int(report.get("summarized_messages") or 0)
        reserve = int(report.get("reserve") or 0)
        self.bar.setRange(0, max(self.n_ctx, 1))
        self.bar.setValue(self.used)
        self.bar.setFormat(f"{self.used} / {self.n_ctx} tokens" if self.n_ctx else "no model")
        # as wide as its text, whatever the numbers: the figures never run into the label
        self.bar.setMinimumWidth(self.bar.fontMetrics().horizontalAdvance(self.bar.format()) + 28)
        parts = []
        if self.dropped:
            parts.append(f"{self.dropped} dropped")
        if self.summarized:
            parts.append(f"{self.summarized} summarized")
        self.left_label.setText(" · ".join(parts))
        self.left_label.setVisible(bool(parts))
        tip = (
            f"The last reply's prompt used {int(report.get('used') or 0)} of {self.n_ctx} "
            f"tokens; the reply added {reply_tokens}; {reserve} are kept free for replies."
        )
        if parts:
            tip += (
                f"\n{' and '.join(parts)} older message(s) are no longer seen word for "
                "word; they are marked in the conversation."
            )
        self.setToolTip(tip if self.n_ctx else "No model is loaded.")
        self.bar.setAccessibleDescription(
            self.bar.format() + (f", {', '.join(parts)}" if parts else "")
        )
