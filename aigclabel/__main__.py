"""``python -m aigclabel`` and the ``aigclabel`` command: the command line of :mod:`aigclabel.cli`.

The garbage collector is off while the command line starts: the imports of a one-file command make
some 100,000 objects that live until the process ends, and the collections they would trigger (each
walking every object made so far) cost about 5 ms of a run. :func:`aigclabel.cli.main` freezes what
start-up made and turns the collector back on before the command runs.
"""

import gc


def main() -> None:
    """Run the ``aigclabel`` command line (the console-script entry point)."""
    gc.disable()
    try:
        from .cli import main as run
    except BaseException:
        gc.enable()
        raise
    run(gc_paused=True)


if __name__ == "__main__":
    main()
