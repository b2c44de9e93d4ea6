"""Developer tools run from a checkout (``python -m tools.<name>``): not part of the
runtime package, nothing in ``shared`` or ``services`` imports them."""
