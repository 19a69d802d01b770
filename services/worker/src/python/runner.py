# Runs one user script with fresh globals and reports it as plain values, then collects its
# artifacts. Loaded into every restored interpreter, in a private globals dict (never __main__), and
# built as closures: user code that does `import __main__` or walks sys.modules finds none of the
# runner's machinery, and every helper and builtin the runner calls after the user's code has run
# (the encoder, the length check, the collector) was bound before that code ran and is held in
# closure cells. A script determined to dig through gc.get_objects() can still reach those cells,
# which is why the JS side re-checks every cap on what comes back (output-limits.ts); this layer
# keeps honest reports right and makes tampering a failed run, never a bypass.
#
# It catches BaseException on purpose: SystemExit and KeyboardInterrupt raised by user code (or by
# the soft-timeout interrupt) must become results, never escape and kill the thread.


def _neuro_runner():
    import gc
    import io
    import json
    import mimetypes
    import os
    import sys
    import traceback

    from pyodide.code import eval_code_async, find_imports

    user_file = "<exec>"
    output_dir = "/output"
    max_text = 64 * 1024  # cap on an error message and on a traceback (MAX_ERROR_TEXT_CHARS in JS)

    # Taken now: the user's code may patch builtins, json, traceback, os or mimetypes.
    dumps = json.dumps
    TracebackException = traceback.TracebackException
    StackSummary = traceback.StackSummary
    str_, repr_, len_, type_, isinstance_, callable_ = str, repr, len, type, isinstance, callable
    getattr_, list_, bytes_, sorted_, enumerate_ = getattr, list, bytes, sorted, enumerate
    BaseException_, MemoryError_, KeyboardInterrupt_, Exception_ = BaseException, MemoryError, KeyboardInterrupt, Exception
    ValueError_, TypeError_, RecursionError_ = ValueError, TypeError, RecursionError
    makedirs, walk, path_join = os.makedirs, os.walk, os.path.join
    isdir, islink, isfile, getsize = os.path.isdir, os.path.islink, os.path.isfile, os.path.getsize
    guess_type, open_, BytesIO, get_objects = mimetypes.guess_type, open, io.BytesIO, gc.get_objects
    modules = sys.modules
    import random

    reseed = random.seed

    def clip(text):
        if len_(text) <= max_text:
            return text
        return text[:max_text] + f"... [{len_(text) - max_text} characters truncated]"

    def safe_str(value):
        try:
            return clip(str_(value))
        except BaseException_:  # noqa: BLE001 - a user __str__ may raise anything
            return "<unprintable>"

    def format_exception(exc):
        try:
            te = TracebackException(type_(exc), exc, exc.__traceback__)
            # Keep only the user's own frames: Pyodide's evaluation machinery means nothing to them.
            te.stack = StackSummary.from_list([f for f in te.stack if f.filename == user_file])
            return clip("".join(te.format()))
        except BaseException_:  # noqa: BLE001
            return ""

    def fallback(value):
        tolist = getattr_(value, "tolist", None)
        if callable_(tolist):
            return tolist()
        if isinstance_(value, (set, frozenset, tuple)):
            return list_(value)
        if isinstance_(value, bytes_):
            return value.decode("utf-8", "replace")
        return repr_(value)

    def encode(value):
        try:
            return dumps(value, default=fallback, allow_nan=False)
        except (ValueError_, TypeError_, RecursionError_):
            return dumps(safe_str(repr_(value)))

    def flush_streams():
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException_:  # noqa: BLE001 - the script may have replaced the streams
            pass

    # Report: (ok, value_json, interrupted, limit, error_name, error_message, error_traceback)
    async def run(code, max_return_bytes):
        # An interpreter reset in place returns to the same memory image, random's state included.
        reseed()
        makedirs(output_dir, exist_ok=True)
        user_globals = {"__name__": "__main__"}
        try:
            value = await eval_code_async(code, user_globals, filename=user_file)
        except BaseException_ as exc:  # noqa: BLE001 - see the header
            limit = "memory" if isinstance_(exc, MemoryError_) else None
            name = safe_str(type_(exc).__name__)
            interrupted = isinstance_(exc, KeyboardInterrupt_)
            return (False, None, interrupted, limit, name, safe_str(exc), format_exception(exc))
        finally:
            flush_streams()
        try:
            encoded = encode(value)
        except MemoryError_:
            return (False, None, False, "memory", "MemoryError", "", "")
        except BaseException_ as exc:  # noqa: BLE001 - the value's own methods may raise anything
            message = "the return value could not be encoded: " + safe_str(exc)
            return (False, None, False, None, "EncodingError", message, "")
        finally:
            value = None
            user_globals.clear()
        if not isinstance_(encoded, str_):
            return (False, None, False, None, "EncodingError", "the return value could not be encoded as JSON", "")
        if len_(encoded) > max_return_bytes:
            message = f"return value is {len_(encoded)} bytes of JSON, over the {max_return_bytes}-byte limit"
            return (False, None, False, "return", "OutputLimitError", message, "")
        return (True, encoded, False, None, None, None, None)

    def missing_imports(code):
        """Top-level modules the script imports that this interpreter cannot import yet."""
        import importlib.util

        try:
            names = find_imports(code)
        except SyntaxError:
            return []  # the run reports it
        missing = []
        for name in names:
            top = name.split(".")[0]
            if top in modules or top in missing:
                continue
            try:
                if importlib.util.find_spec(top) is None:
                    missing.append(top)
            except (ImportError, ValueError):
                missing.append(top)
        return missing

    def collect(max_files, max_file_bytes, max_total_bytes):
        items = []
        notes = []
        total = [0]

        def admit(name, size):
            if len_(items) >= max_files:
                notes.append(f"[artifact {name} skipped: more than {max_files} artifacts]")
            elif size > max_file_bytes:
                notes.append(f"[artifact {name} skipped: {size} bytes, over the {max_file_bytes}-byte limit]")
            elif total[0] + size > max_total_bytes:
                notes.append(f"[artifact {name} skipped: artifacts over the {max_total_bytes}-byte total]")
            else:
                return True
            return False

        def add(kind, name, content_type, data):
            data = bytes_(data)
            if admit(name, len_(data)):
                total[0] += len_(data)
                items.append([kind, name, content_type, data])

        def plotly_figures():
            go = modules.get("plotly.graph_objs") or modules.get("plotly.graph_objects")
            figure_type = getattr_(go, "Figure", None)
            if figure_type is None:
                return
            # The interpreter is pristine for every run, so every live figure belongs to this run.
            figures = [o for o in get_objects() if isinstance_(o, figure_type)]
            for i, fig in enumerate_(figures):
                add("plotly", f"figure-{i}.json", "application/json", fig.to_json().encode())

        def matplotlib_figures():
            plt = modules.get("matplotlib.pyplot")
            if plt is None:
                return
            for i, num in enumerate_(plt.get_fignums()):
                buf = BytesIO()
                plt.figure(num).savefig(buf, format="png")
                add("matplotlib", f"figure-{i}.png", "image/png", buf.getvalue())
            plt.close("all")

        def output_files():
            if not isdir(output_dir):
                return
            for root, dirs, files in walk(output_dir):
                dirs.sort()
                for name in sorted_(files):
                    path = path_join(root, name)
                    if islink(path) or not isfile(path):
                        continue
                    content_type = guess_type(name)[0] or "application/octet-stream"
                    if not admit(path, getsize(path)):
                        continue
                    with open_(path, "rb") as fh:
                        add("file", path, content_type, fh.read())

        for step in (plotly_figures, matplotlib_figures, output_files):
            try:
                step()
            except Exception_ as exc:  # noqa: BLE001 - one broken figure must not lose the run's result
                notes.append(f"[artifact collection failed in {step.__name__}: {type_(exc).__name__}: {exc}]")
        return items, notes

    def harden():
        # unregisterJsModule removes the import hooks; the already-imported modules (and submodules
        # such as pyodide_js._api) must go too, or `sys.modules['pyodide_js']` still reaches the host.
        for name in list_(modules):
            if name in ("js", "pyodide_js") or name.startswith(("js.", "pyodide_js.")):
                del modules[name]

    return run, missing_imports, collect, harden


_neuro_api = _neuro_runner()
del _neuro_runner
