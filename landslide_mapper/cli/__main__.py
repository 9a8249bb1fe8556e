"""``python -m landslide_mapper.cli``: the same as the ``landslide-mapper`` command."""

from .main import main

main()
