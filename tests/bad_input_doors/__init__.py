"""Bad-input classes of the doors opened after 0.3, one module each.

Each module defines ``CLASS`` (the class name in case ids and reports) and
``build(b)``, which adds its cases to the builder of :mod:`bad_inputs` exactly as the
classes there do (``b.case(...)`` for a folder, ``b.add(...)`` for the CLI run and
what must happen; ``b.outside`` holds the sentinels an escaping path points at).
:func:`bad_inputs.build_cases` runs every module here after its own classes.
"""
