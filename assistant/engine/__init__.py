"""llama.cpp on one thread: the only package that drives a `llama_cpp.Llama`.

Public entry points:
- `runtime.ModelRuntime`: a loaded model; `stream(prompt, sampling, cancel)` returns a
  `ReplyStream` of text pieces (cancel checked between tokens and prompt batches);
- `chat_format`: messages to prompt text with the model's own template;
- `stop_matcher.StopMatcher`: stop strings over streamed text;
- `loading.load_with_fallback(path, options, cancel=, progress=)`: the GPU-layer plan, the
  out-of-memory fallback, load progress and cancel;
- `llama_log`: llama.cpp's log captured, for load errors that name the reason.
The engine knows nothing about storage: recording a reply is the conversation layer's job.
"""
