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


# The user's code runs in this interpreter and may patch json, traceback or anything else, so the
# report below is a tuple of plain values built from references taken now, and every step that
# touches user-reachable objects is guarded: a broken report must never take the thread down.
_dumps = json.dumps
_TracebackException = traceback.TracebackException
_StackSummary = traceback.StackSummary
_str = str
_repr = repr
_len = len


def _safe_str(value):
    try:
        return _clip(_str(value))
    except BaseException:  # noqa: BLE001 - a user __str__ may raise anything
        return "<unprintable>"


def _format_exception(exc):
    try:
        te = _TracebackException(type(exc), exc, exc.__traceback__)
        # Keep only the user's own frames: Pyodide's evaluation machinery means nothing to them.
        te.stack = _StackSummary.from_list([f for f in te.stack if f.filename == _USER_FILE])
        return _clip("".join(te.format()))
    except BaseException:  # noqa: BLE001
        return ""


def _fallback(value):
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return _repr(value)


def _encode(value):
    try:
        return _dumps(value, default=_fallback, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return _dumps(_safe_str(_repr(value)))


# Report: (ok, value_json, interrupted, limit, error_name, error_message, error_traceback)
async def _neuro_run(code, max_return_bytes):
    os.makedirs(_OUTPUT_DIR, exist_ok=True)
    user_globals = {"__name__": "__main__"}
    try:
        value = await eval_code_async(code, user_globals, filename=_USER_FILE)
    except BaseException as exc:  # noqa: BLE001 - see the header
        limit = "memory" if isinstance(exc, MemoryError) else None
        name = _safe_str(type(exc).__name__)
        return (False, None, isinstance(exc, KeyboardInterrupt), limit, name, _safe_str(exc), _format_exception(exc))
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
    try:
        encoded = _encode(value)
    except MemoryError:
        return (False, None, False, "memory", "MemoryError", "", "")
    except BaseException as exc:  # noqa: BLE001 - the value's own methods may raise anything
        return (False, None, False, None, "EncodingError", "the return value could not be encoded: " + _safe_str(exc), "")
    finally:
        value = None
        user_globals.clear()
    if not isinstance(encoded, _str):
        return (False, None, False, None, "EncodingError", "the return value could not be encoded as JSON", "")
    if _len(encoded) > max_return_bytes:
        message = f"return value is {_len(encoded)} bytes of JSON, over the {max_return_bytes}-byte limit"
        return (False, None, False, "return", "OutputLimitError", message, "")
    return (True, encoded, False, None, None, None, None)


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
