"""What every ``landslide-mapper`` command shares: path types, options, progress and cancel.

Commands import from here, never the other way. :func:`engine_run` wraps one engine call: a progress
bar on stderr, Ctrl-C (SIGINT) and SIGTERM (``kill``, ``timeout``, a batch scheduler) as a cancel
flag the engine polls, so the run stops and removes its temporary files (exit code 130 for Ctrl-C,
143 = 128 + 15 for SIGTERM, the shell's codes for a death by those signals), and engine errors as a
one-line message with exit code 1. What the native libraries (GDAL, libtiff, SQLite) print on the
process's stderr during the call is held back: the engine's own message says what went wrong, once.
Set ``LANDSLIDE_MAPPER_DEBUG=1`` to see it, and a traceback for an unexpected error.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from ..core.errors import CancelledError, LandslideMapperError
from ..core.polygons import DEFAULT_MIN_PIXELS

OUT_FILE = click.Path(dir_okay=False, path_type=Path)
"""An output file: need not exist; never a folder."""
IN_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
"""An input file that must exist."""


class _LayerSource(click.ParamType):
    """An input file that must exist, or one layer of it: ``inventory.gpkg|layername=roads``."""

    name = "file"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from ..core.paths import split_layer

        path, layer = split_layer(value)
        IN_FILE.convert(path, param, ctx)
        return f"{path}|layername={layer}" if layer else Path(path)


IN_LAYER = _LayerSource()
"""A polygon (or raster) input: an existing file, optionally ``FILE|layername=NAME``."""


#: The signals that cancel a run, and the exit code of a run they cancelled.
CANCEL_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class _Cancel:
    """Ctrl-C or SIGTERM sets a flag the engine polls; a second one stops at once (still
    removing temporary files on the way out)."""

    def __init__(self) -> None:
        self.requested = False
        self.signum = signal.SIGINT

    def __call__(self) -> bool:
        return self.requested

    @property
    def exit_code(self) -> int:
        return CANCEL_SIGNALS.get(self.signum, 130)

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum
        if signum == signal.SIGINT:
            click.echo("\nCancelling (press Ctrl-C again to stop at once)...", err=True)
        else:
            click.echo(f"\nCancelling ({signal.Signals(signum).name} received)...", err=True)


def debugging() -> bool:
    """Whether ``LANDSLIDE_MAPPER_DEBUG`` asks for native messages and tracebacks."""
    return os.environ.get("LANDSLIDE_MAPPER_DEBUG", "") not in ("", "0")


class _NativeStderr:
    """Holds back what C libraries write to file descriptor 2 while it is active.

    fd 2 is pointed at a pipe drained by a thread that keeps the last lines; Python's own
    ``sys.stderr`` (progress bar, messages) keeps writing to the real stderr. Does nothing when
    stderr has no file descriptor (e.g. under click's test runner) or when debugging.
    """

    def __init__(self, keep: int = 20) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._saved: int | None = None

    def __enter__(self) -> "_NativeStderr":
        if debugging():
            return self
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            return self
        if fd != 2:
            return self
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        self._saved = os.dup(2)
        self._python_stderr = sys.stderr
        sys.stderr = open(os.dup(self._saved), "w", buffering=1, encoding="utf-8",
                          errors="backslashreplace")
        os.dup2(write_end, 2)
        os.close(write_end)
        self._reader = threading.Thread(target=self._drain, args=(read_end,), daemon=True)
        self._reader.start()
        return self

    def _drain(self, fd: int) -> None:
        with open(fd, "rb") as pipe:
            for line in pipe:
                self.lines.append(line.decode("utf-8", "replace").rstrip())

    def __exit__(self, *exc: Any) -> None:
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the reader sees its end
        os.close(self._saved)
        self._saved = None
        self._reader.join(timeout=1)  # a child process may still hold the pipe: do not wait
        sys.stderr.close()
        sys.stderr = self._python_stderr


@contextmanager
def engine_run(quiet: bool, label: str) -> Iterator[tuple[Callable[[float], None], _Cancel]]:
    """Progress bar + cancel flag for one engine call; engine errors become one-line messages."""
    from tqdm import tqdm

    cancel = _Cancel()
    previous = {s: signal.signal(s, cancel._handler) for s in CANCEL_SIGNALS}
    native = _NativeStderr()
    native.__enter__()
    bar = tqdm(total=100, desc=label, unit="%", disable=quiet, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def progress(fraction: float) -> None:
        bar.update(max(0.0, min(100.0, 100.0 * fraction)) - bar.n)

    try:
        yield progress, cancel
    except (CancelledError, KeyboardInterrupt) as exc:
        bar.close()
        native.__exit__()
        reason = str(exc) if isinstance(exc, CancelledError) else "stopped at once"
        click.echo(f"landslide-mapper: cancelled: {reason}", err=True)
        sys.exit(cancel.exit_code)
    except LandslideMapperError as exc:
        bar.close()
        raise click.ClickException(str(exc)) from None
    except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except Exception as exc:  # a failure the engine did not foresee: still one line
        if debugging():
            raise
        bar.close()
        native.__exit__()
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        said = f"; the libraries last said: {native.lines[-1][:200]}" if native.lines else ""
        raise click.ClickException(
            f"{label} failed unexpectedly ({type(exc).__name__}: {detail}{said}). Run again with "
            "LANDSLIDE_MAPPER_DEBUG=1 for the details, and report it.") from None
    finally:
        bar.close()
        native.__exit__()
        for s, handler in previous.items():
            signal.signal(s, handler)


def band_list(_ctx: Any, _param: Any, value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        bands = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"expected 1-based band numbers separated by commas, found {value!r}")
    if not bands or min(bands) < 1:
        raise click.BadParameter(f"band numbers start at 1, found {value!r}")
    return bands



def layer_option(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--layer NAME``: the layer polygons go to in a GeoPackage (the file's other layers kept)."""
    return click.option(
        "--layer", "layer_name", metavar="NAME",
        help=f"Layer of a GeoPackage polygon output [{default}]; the file's other layers are "
        "kept and only this one is replaced (PATH.gpkg|layername=NAME says the same).")


def vector_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--simplify", "simplify_m", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="Simplification tolerance in metres (topology kept).")(f)
    f = click.option("--fill-holes", "fill_holes_m2", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="Fill holes inside polygons smaller than this (m2).")(f)
    f = click.option("--min-area", "min_area_m2", type=click.FloatRange(min=0), default=None,
                     help="Drop polygons smaller than this (m2); 0 keeps all. Default: drop "
                     f"specks, polygons of fewer than {DEFAULT_MIN_PIXELS} pixels "
                     f"({DEFAULT_MIN_PIXELS * 100} m2 at 10 m pixels).")(f)
    return f


def log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)
