"""Herald's benchmark suite: what users feel, measured end to end against a real ``herald serve``.

``python -m bench`` (or ``scripts/bench``) runs every figure and prints one table per figure; see
``bench/__main__.py``. Not shipped with Herald: it lives beside ``src/`` and imports ``herald`` from it.
"""
