"""Models…: the library (fit, import, remove, default), the curated catalog, Hub search, downloads.

Everything that touches the disk or the network runs in a `Task` thread and reports with
queued signals; one task at a time, so the status line always says what is happening.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from assistant.errors import AssistantError
from assistant.library.sizes import format_bytes

from .tasks import Task

DATA = Qt.ItemDataRole.UserRole


def size_text(n: int | None) -> str:
    return "size unknown" if n is None else format_bytes(n)


def progress_text(p: Any) -> str:
    """'12 MB of 98 MB · 5.1 MB/s · 17 s left' for a download.Progress."""
    total = f" of {size_text(p.total)}" if p.total else ""
    eta = f" · {p.eta:.0f} s left" if p.eta is not None else ""
    return f"{p.filename}: {size_text(p.done)}{total} · {p.speed / 1e6:.1f} MB/s{eta}"


class ModelManager(QDialog):
    model_chosen = Signal(str)  # "Load": a library id ("" for the built-in model)
    library_changed = Signal()  # a model was imported, downloaded or removed
    task_finished = Signal(bool)  # tests wait on it: True when the task succeeded

    def __init__(self, n_ctx: int = 4096, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("modelManager")
        self.resize(760, 520)
        self.n_ctx = n_ctx
        self.task: Task | None = None
        self._memory: Any = None
        self.confirm: Callable[[str, str], bool] = self._ask_yes_no  # tests replace it
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Model sources")
        self.tabs.addTab(self._library_tab(), "&Library")
        self.tabs.addTab(self._catalog_tab(), "C&atalog")
        self.tabs.addTab(self._search_tab(), "&Search the Hub")
        layout.addWidget(self.tabs, 1)
        row = QHBoxLayout()
        self.progress_bar = QProgressBar()
        self.progress_bar.setAccessibleName("Download progress")
        self.progress_bar.hide()
        self.cancel_button = _button("Cancel", "Cancel the download", self.cancel)
        self.cancel_button.hide()
        row.addWidget(self.progress_bar, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.status_label = QLabel("")
        self.status_label.setAccessibleName("Model manager status")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)
        self.refresh_library()
        self.refresh_catalog()

    # -- tabs ------------------------------------------------------------------------------
    def _library_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        self.library_list = _list("Models in the library")
        column.addWidget(self.library_list, 1)
        row = QHBoxLayout()
        self.import_button = _button("Import .gguf…", "Import a GGUF file", self._browse_import)
        self.remove_button = _button("Remove", "Remove the selected model", self.remove_selected)
        self.load_button = _button(
            "Load", "Load the selected model for chatting (and keep it next time)", self.load
        )
        self.load_button.setToolTip(
            "Switch the chat to this model now; it stays the model next time. The current "
            "model stays loaded until this one is ready."
        )
        self.library_list.itemActivated.connect(lambda _item: self.load())
        for b in (self.load_button, self.import_button, self.remove_button):
            row.addWidget(b)
        row.addStretch(1)
        column.addLayout(row)
        return page

    def _catalog_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        self.catalog_list = _list("Recommended models")
        column.addWidget(self.catalog_list, 1)
        self.catalog_download = _button(
            "Download", "Download the selected catalog model", self.download_catalog
        )
        column.addWidget(self.catalog_download, 0, Qt.AlignmentFlag.AlignLeft)
        return page

    def _search_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        row = QHBoxLayout()
        self.search_edit = QLineEdit()
        self.search_edit.setAccessibleName("Search the Hub for")
        self.search_edit.setPlaceholderText("Model name, e.g. qwen2.5 instruct")
        self.search_edit.returnPressed.connect(self.search)
        self.search_button = _button("Search", "Search the Hub", self.search)
        row.addWidget(self.search_edit, 1)
        row.addWidget(self.search_button)
        column.addLayout(row)
        self.repo_list = _list("Repositories found")
        self.repo_list.itemActivated.connect(lambda _i: self.list_files())
        self.repo_list.itemSelectionChanged.connect(self.list_files)
        self.file_list = _list("GGUF files of the repository")
        column.addWidget(self.repo_list, 1)
        column.addWidget(self.file_list, 1)
        self.file_download = _button(
            "Download", "Download the selected GGUF file", self.download_file
        )
        column.addWidget(self.file_download, 0, Qt.AlignmentFlag.AlignLeft)
        return page

    # -- fit -------------------------------------------------------------------------------
    def fit_label(self, info: Any) -> str:
        from assistant.library import fit
        from assistant.library.memory import detect_memory

        if info is None:
            return "fit unknown"
        try:
            if self._memory is None:
                self._memory = detect_memory()
            return fit.fit(info, self.n_ctx, self._memory).badge
        except (AssistantError, OSError):  # memory or header unreadable: a badge, not a failure
            return "fit unknown"

    # -- library ---------------------------------------------------------------------------
    def refresh_library(self) -> None:
        from assistant.library import local as library

        self.library_list.clear()
        try:
            models = library.list_models(include_unusable=True)
        except AssistantError as exc:
            self.show_error(str(exc))
            return
        for m in models:
            badge = m.problem or self.fit_label(m.info)
            kind = "built in" if m.id == "embedded" else m.kind
            text = f"{m.name} · {kind} · {size_text(m.size)} · {badge}"
            _add_item(self.library_list, text, m.id, str(m.path))

    def _browse_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import a model", "", "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.import_file(path)

    def import_file(self, path: str | Path) -> None:
        from assistant.library import local as library

        def work(report: Callable[[Any], None], _cancel: threading.Event) -> str:
            model = library.import_model(path, progress=lambda d, t: report((d, t)))
            return f"Imported {model.name} as {model.id}."

        self._run(work, f"Importing {Path(path).name}…", self._on_copy_progress)

    def _on_copy_progress(self, p: Any) -> None:
        done, total = p
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(int(1000 * done / max(total, 1)))

    def selected_library_id(self) -> str | None:
        item = self.library_list.currentItem()
        return item.data(DATA) if item else None

    def remove_selected(self) -> None:
        from assistant.library import local as library

        model_id = self.selected_library_id()
        if model_id is None:
            self.show_error("Select a model in the library first.")
            return
        if not self.confirm("Remove model", f"Remove {model_id} from the library?"):
            return
        try:
            text = library.remove(model_id)
        except AssistantError as exc:
            self.show_error(str(exc))
            return
        self.status_label.setText(text)
        self.refresh_library()
        self.library_changed.emit()

    def load(self) -> None:
        """Ask the window to switch to the selected model (it checks and loads it)."""
        item = self.library_list.currentItem()
        if item is None:
            self.show_error("Select a model in the library first.")
            return
        model_id = item.data(DATA)
        self.model_chosen.emit("" if model_id == "embedded" else model_id)
        name = item.text().split(" · ")[0]
        self.status_label.setText(
            f"Loading {name}; the chat switches to it once it is ready (the status bar shows "
            "its progress)."
        )

    # -- catalog ---------------------------------------------------------------------------
    def refresh_catalog(self) -> None:
        from assistant.library.catalog import load_catalog

        self.catalog_list.clear()
        try:
            entries = load_catalog()
        except (AssistantError, OSError, ValueError) as exc:
            self.show_error(f"The catalog could not be read: {exc}")
            return
        for e in entries:
            f = e.file_for()
            text = (
                f"{e.name} · {f.quant} · {size_text(f.size_bytes)} · "
                f"{self.fit_label(e.approximate_info())}"
            )
            if e.embedded:
                text += " · built in"
            text += f"\n{e.description} Licence: {e.license}."
            _add_item(self.catalog_list, text, (e.repo, f.file), e.description)

    def download_catalog(self) -> None:
        item = self.catalog_list.currentItem()
        if item is None:
            self.show_error("Select a catalog model first.")
            return
        repo, filename = item.data(DATA)
        self.download(repo, filename)

    # -- search ----------------------------------------------------------------------------
    def search(self) -> None:
        from assistant.library import hub

        text = self.search_edit.text().strip()
        if not text:
            return
        self.repo_list.clear()
        self.file_list.clear()
        self._run(
            lambda _r, _c: hub.search(text),
            f"Searching the Hub for “{text}”…",
            on_done=self._show_repos,
        )

    def _show_repos(self, repos: list[Any]) -> None:
        for r in repos:
            gated = " · gated" if r.gated else ""
            _add_item(self.repo_list, f"{r.id} · {r.downloads:,} downloads{gated}", r.id, r.id)
        self.status_label.setText(
            f"{len(repos)} repositories found." if repos else "No GGUF repositories match."
        )

    def list_files(self) -> None:
        from assistant.library import hub

        item = self.repo_list.currentItem()
        if item is None or self.busy():
            return
        repo = item.data(DATA)

        def work(_r: Callable[[Any], None], cancel: threading.Event) -> list[tuple[Any, str]]:
            rows = []
            for m in hub.list_gguf_files(repo):
                if m.is_projector:
                    badge = "projector"
                elif cancel.is_set():  # Cancel lists the files without reading more headers
                    badge = "fit not checked"
                else:
                    try:
                        badge = self.fit_label(hub.remote_gguf_info(m, cancel=cancel))
                    except hub.HeaderReadCancelled:
                        badge = "fit not checked"
                    except AssistantError:
                        badge = "fit unknown"
                rows.append((m, badge))
            return rows

        self.file_list.clear()
        self._run(
            work,
            f"Listing the GGUF files of {repo} and reading their headers for fit…",
            on_done=self._show_files,
            cancellable=True,
        )

    def _show_files(self, rows: list[tuple[Any, str]]) -> None:
        for m, badge in rows:
            text = f"{m.name} · {m.quant} · {size_text(m.size)} · {badge}"
            _add_item(self.file_list, text, (m.repo, m.filename), m.name)
        self.status_label.setText(f"{len(rows)} GGUF models." if rows else "No GGUF files here.")

    def download_file(self) -> None:
        item = self.file_list.currentItem()
        if item is None:
            self.show_error("Select a GGUF file first.")
            return
        repo, filename = item.data(DATA)
        self.download(repo, filename)

    # -- downloads and tasks ---------------------------------------------------------------
    def download(self, repo: str, filename: str) -> None:
        from assistant.library.download import download

        def work(report: Callable[[Any], None], cancel: threading.Event) -> str:
            result = download(repo, filename=filename, progress=report, cancel=cancel)
            if result.already_present:
                return f"{repo}/{result.model} was already downloaded."
            return f"Downloaded {repo}/{result.model} ({size_text(result.size)})."

        self._run(work, f"Downloading {filename}…", self._on_download_progress, cancellable=True)

    def _on_download_progress(self, p: Any) -> None:
        if p.total:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * p.done / p.total))
        self.status_label.setText(progress_text(p))

    def _run(
        self,
        fn: Callable[[Callable[[Any], None], threading.Event], Any],
        message: str,
        on_progress: Callable[[Any], None] | None = None,
        on_done: Callable[[Any], None] | None = None,
        cancellable: bool = False,
    ) -> None:
        if self.busy():
            self.show_error("Wait for the current task to finish, or cancel it.")
            return
        self.task = Task(fn, self)
        if on_progress is not None:
            self.task.progress.connect(on_progress)
        self.task.done.connect(lambda result: self._on_done(result, on_done))
        self.task.failed.connect(self._on_failed)
        self.status_label.setText(message)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.show()
        self.cancel_button.setVisible(cancellable)
        self.cancel_button.setEnabled(True)
        self.task.start()

    def busy(self) -> bool:
        return self.task is not None and self.task.isRunning()

    def cancel(self) -> None:
        if self.busy():
            self.task.cancel_event.set()  # type: ignore[union-attr]
            self.cancel_button.setEnabled(False)
            self.status_label.setText("Cancelling…")

    def _end_task(self) -> None:
        if self.task is not None:
            self.task.wait()
            self.task = None
        self.progress_bar.hide()
        self.cancel_button.hide()

    def _on_done(self, result: Any, on_done: Callable[[Any], None] | None) -> None:
        self._end_task()
        if on_done is not None:
            on_done(result)
        else:
            self.status_label.setText(str(result))
            self.refresh_library()
            self.library_changed.emit()
        self.task_finished.emit(True)

    def _on_failed(self, message: str) -> None:
        self._end_task()
        self.show_error(message)
        self.refresh_library()
        self.task_finished.emit(False)

    def show_error(self, message: str) -> None:
        self.status_label.setText(f"Error: {message}")

    def _ask_yes_no(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def reject(self) -> None:
        self._stop_task()
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self._stop_task()
        super().closeEvent(event)

    def _stop_task(self) -> None:
        if self.busy():
            self.task.cancel_event.set()  # type: ignore[union-attr]
            self.task.wait()  # type: ignore[union-attr]


def _button(text: str, name: str, slot: Callable[[], object]) -> QPushButton:
    button = QPushButton(text)
    button.setAccessibleName(name)
    button.clicked.connect(slot)
    return button


def _list(name: str) -> QListWidget:
    widget = QListWidget()
    widget.setAccessibleName(name)
    return widget


def _add_item(widget: QListWidget, text: str, data: Any, tip: str) -> None:
    item = QListWidgetItem(text)
    item.setData(DATA, data)
    item.setToolTip(tip)
    widget.addItem(item)
