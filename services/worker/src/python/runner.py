# Runs one user script with fresh globals and reports it as JSON, then collects its artifacts.
# Loaded into every fresh interpreter. It catches BaseException on purpose: SystemExit and
# KeyboardInterrupt raised by user code (or by our soft-timeout interrupt) must become results,
# never escape and kill the thread.
import gc
import io
import json
import mimetypes
import os
import sys
import traceback

from pyodide.code import eval_code_async, find_imports

_USER_FILE = "<exec>"
_OUTPUT_DIR = "/output"
_MAX_TEXT = 64 * 1024  # cap on an error message and on a traceback


def _clip(text):
    if len(text) <= _MAX_TEXT:
        return text
    return text[:_MAX_TEXT] + f"... [{len(text) - _MAX_TEXT} characters truncated]"


def _format_exception(exc):
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    # Keep only the user's own frames: Pyodide's evaluation machinery means nothing to them.
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename == _USER_FILE])
    return "".join(te.format())


def _fallback(value):
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def _encode(value):
    try:
        return json.dumps(value, default=_fallback, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return json.dumps(_clip(repr(value)))


async def _neuro_run(code, max_return_bytes):
    os.makedirs(_OUTPUT_DIR, exist_ok=True)
    user_globals = {"__name__": "__main__"}
    try:
        value = await eval_code_async(code, user_globals, filename=_USER_FILE)
    except BaseException as exc:  # noqa: BLE001 - see the header
        report = {
            "ok": False,
            "interrupted": isinstance(exc, KeyboardInterrupt),
            "error": {
                "name": type(exc).__name__,
                "message": _clip(str(exc)),
                "traceback": _clip(_format_exception(exc)),
            },
        }
        if isinstance(exc, MemoryError):
            report["limit"] = "memory"
        return json.dumps(report)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    try:
        encoded = _encode(value)
    except MemoryError:
        return json.dumps({"ok": False, "limit": "memory", "error": {"name": "MemoryError", "message": ""}})
    finally:
        value = None
        user_globals.clear()
    if len(encoded) > max_return_bytes:
        return json.dumps(
            {
                "ok": False,
                "limit": "return",
                "error": {
                    "name": "OutputLimitError",
                    "message": f"return value is {len(encoded)} bytes of JSON, over the {max_return_bytes}-byte limit",
                },
            }
        )
    return '{"ok": true, "value": ' + encoded + "}"


def _neuro_missing_imports(code):
    """Top-level modules the script imports that this interpreter cannot import yet."""
    import importlib.util

    try:
        names = find_imports(code)
    except SyntaxError:
        return []  # the run reports it
    missing = []
    for name in names:
        top = name.split(".")[0]
        if top in sys.modules or top in missing:
            continue
        try:
            if importlib.util.find_spec(top) is None:
                missing.append(top)
        except (ImportError, ValueError):
            missing.append(top)
    return missing


class _Collector:
    def __init__(self, max_files, max_file_bytes, max_total_bytes):
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.total = 0
        self.items = []
        self.notes = []

    def admit(self, name, size):
        if len(self.items) >= self.max_files:
            self.notes.append(f"[artifact {name} skipped: more than {self.max_files} artifacts]")
        elif size > self.max_file_bytes:
            self.notes.append(f"[artifact {name} skipped: {size} bytes, over the {self.max_file_bytes}-byte limit]")
        elif self.total + size > self.max_total_bytes:
            self.notes.append(f"[artifact {name} skipped: artifacts over the {self.max_total_bytes}-byte total]")
        else:
            return True
        return False

    def add(self, kind, name, content_type, data):
        if self.admit(name, len(data)):
            self.total += len(data)
            self.items.append([kind, name, content_type, bytes(data)])


def _plotly_figures(collector):
    go = sys.modules.get("plotly.graph_objs") or sys.modules.get("plotly.graph_objects")
    figure_type = getattr(go, "Figure", None)
    if figure_type is None:
        return
    # The interpreter is fresh for every run, so every live figure belongs to this run.
    figures = [o for o in gc.get_objects() if isinstance(o, figure_type)]
    for i, fig in enumerate(figures):
        collector.add("plotly", f"figure-{i}.json", "application/json", fig.to_json().encode())


def _matplotlib_figures(collector):
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for i, num in enumerate(plt.get_fignums()):
        buf = io.BytesIO()
        plt.figure(num).savefig(buf, format="png")
        collector.add("matplotlib", f"figure-{i}.png", "image/png", buf.getvalue())
    plt.close("all")


def _output_files(collector):
    if not os.path.isdir(_OUTPUT_DIR):
        return
    for root, dirs, files in os.walk(_OUTPUT_DIR):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if not collector.admit(path, os.path.getsize(path)):
                continue
            with open(path, "rb") as fh:
                collector.add("file", path, content_type, fh.read())


def _neuro_collect(max_files, max_file_bytes, max_total_bytes):
    collector = _Collector(max_files, max_file_bytes, max_total_bytes)
    for step in (_plotly_figures, _matplotlib_figures, _output_files):
        try:
            step(collector)
        except Exception as exc:  # noqa: BLE001 - one broken figure must not lose the run's result
            collector.notes.append(f"[artifact collection failed in {step.__name__}: {type(exc).__name__}: {exc}]")
    return collector.items, collector.notes


def _neuro_harden():
    # unregisterJsModule removes the import hooks; the already-imported modules (and submodules
    # such as pyodide_js._api) must go too, or `sys.modules['pyodide_js']` still reaches the host.
    for name in list(sys.modules):
        if name in ("js", "pyodide_js") or name.startswith(("js.", "pyodide_js.")):
            del sys.modules[name]
    import random

    random.seed()  # a restored snapshot would otherwise replay the same random sequence
