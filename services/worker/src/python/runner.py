# Runs one user script with fresh globals and reports it as JSON. Loaded once per Pyodide thread.
# It catches BaseException on purpose: SystemExit and KeyboardInterrupt raised by user code (or by
# our soft-timeout interrupt) must become results, never escape and kill the thread.
import json
import sys
import traceback

from pyodide.code import eval_code_async

_USER_FILE = "<exec>"


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
        return json.dumps(repr(value))


async def _neuro_run(code, max_return_bytes):
    user_globals = {"__name__": "__main__"}
    try:
        value = await eval_code_async(code, user_globals, filename=_USER_FILE)
    except BaseException as exc:  # noqa: BLE001 - see the header
        return json.dumps(
            {
                "ok": False,
                "interrupted": isinstance(exc, KeyboardInterrupt),
                "error": {
                    "name": type(exc).__name__,
                    "message": str(exc),
                    "traceback": _format_exception(exc),
                },
            }
        )
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        user_globals.clear()
    encoded = _encode(value)
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
