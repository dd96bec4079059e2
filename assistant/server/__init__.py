"""The local OpenAI-compatible server (`assistant serve`, and Settings → Local server).

Public entry points:
- `runner.LocalServer(gate, windows, config)`: uvicorn on a bound socket, `serve()` in the
  foreground (Ctrl-C, SIGTERM) or `start()`/`stop()` on a thread;
- `gate.Gate(runtime)`: the one owner of the model, a bounded first-come queue of jobs run one at
  a time (its own thread, or a worker the app hands in);
- `windows.ConversationWindows(policy)`: each request's messages fitted into the context
  window, the window start and running summary kept between requests of one conversation;
- `app.create_app`, `app.ServerConfig`: the routes, behind `security`'s guards.
Requests are checked into plain dataclasses (`requests`); OpenAI's dict shapes are built only
in `responses`.
"""
