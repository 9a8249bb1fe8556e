"""What every ``landslide-mapper`` command shares: path types, options, progress and cancel.

Commands import from here, never the other way. :func:`engine_run` wraps one engine call: a progress
bar on stderr, Ctrl-C as a cancel flag the engine polls (exit code 130), and engine errors as a
one-line message with exit code 1.
"""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from ..core.errors import CancelledError, LandslideMapperError

OUT_FILE = click.Path(dir_okay=False, path_type=Path)
"""An output file: need not exist; never a folder."""
IN_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
"""An input file that must exist."""


class _Cancel:
    """Ctrl-C sets a flag the engine polls; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        click.echo("\nCancelling (press Ctrl-C again to stop at once)...", err=True)


@contextmanager
def engine_run(quiet: bool, label: str) -> Iterator[tuple[Callable[[float], None], _Cancel]]:
    """Progress bar + cancel flag for one engine call; engine errors become one-line messages."""
    from tqdm import tqdm

    cancel = _Cancel()
    previous = signal.signal(signal.SIGINT, cancel._handler)
    bar = tqdm(total=100, desc=label, unit="%", disable=quiet, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def progress(fraction: float) -> None:
        bar.update(max(0.0, min(100.0, 100.0 * fraction)) - bar.n)

    try:
        yield progress, cancel
    except CancelledError as exc:
        bar.close()
        click.echo(f"landslide-mapper: cancelled: {exc}", err=True)
        sys.exit(130)
    except LandslideMapperError as exc:
        bar.close()
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)


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



def vector_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--simplify", "simplify_m", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="Simplification tolerance in metres (topology kept).")(f)
    f = click.option("--fill-holes", "fill_holes_m2", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="Fill holes inside polygons smaller than this (m2).")(f)
    f = click.option("--min-area", "min_area_m2", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="Drop polygons smaller than this (m2).")(f)
    return f


def log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)
