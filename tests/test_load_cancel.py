"""Loading reports llama.cpp's progress and stops when cancelled (real model)."""

from __future__ import annotations

import threading
import time

import pytest

from assistant.engine.loading import load_with_fallback
from assistant.engine.runtime import ModelRuntime
from assistant.errors import LoadCancelledError
from assistant.types import USER, LoadOptions, Message, SamplingOptions

OPTIONS = LoadOptions(n_ctx=512, n_threads=2)


def test_load_reports_progress_to_the_end(model_path):
    seen: list[float] = []
    runtime = ModelRuntime(model_path, OPTIONS, progress=seen.append)
    try:
        assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
        reply = runtime.complete(
            [Message(USER, "Say hi.")], SamplingOptions(temperature=0, max_tokens=4)
        )
        assert reply, "the model works after a load with the progress hook"
    finally:
        runtime.close()


def test_a_cancelled_load_stops_at_its_next_progress_step(model_path):
    cancel = threading.Event()
    steps: list[float] = []

    def progress(fraction: float) -> None:
        steps.append(fraction)
        cancel.set()  # the user closes the window as soon as loading has begun

    start = time.perf_counter()
    with pytest.raises(LoadCancelledError, match="cancelled"):
        load_with_fallback(model_path, OPTIONS, cancel=cancel, progress=progress)
    assert len(steps) == 1, "llama.cpp stopped at the first progress step"
    assert time.perf_counter() - start < 5
    # the next load, without a cancel, is unaffected by the earlier hook
    runtime, _ = load_with_fallback(model_path, OPTIONS)
    runtime.close()
