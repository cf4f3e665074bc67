"""envcheck: prove that a deep-learning environment really works.

Importing this package never imports torch or tensorflow: the frameworks load
inside the check that needs them, in a subprocess of its own.
"""

__version__ = "0.1.0"
