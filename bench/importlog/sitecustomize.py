"""Bench-only: log each process's framework imports (bench/verify_speed.py puts this folder
first on PYTHONPATH, so every interpreter a verify starts, ranks included, loads it).

One JSON line per process at exit to $ENVCHECK_BENCH_IMPORT_LOG: pid, argv, when the
interpreter reached site, and for torch / tensorflow the start and end of the import.
"""

import atexit
import importlib.machinery
import json
import os
import sys
import time

_LOG = os.environ.get("ENVCHECK_BENCH_IMPORT_LOG")
_WATCHED = ("torch", "tensorflow")
_record = {"pid": os.getpid(), "argv": list(sys.argv), "site": time.time(), "imports": {}}


class _TimedImports:
    """Times the first import of a watched package by wrapping its loader's exec_module."""

    def find_spec(self, name, path=None, target=None):
        if name not in _WATCHED or name in _record["imports"]:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        real = spec.loader.exec_module

        def exec_module(module):
            start = time.time()
            try:
                real(module)
            finally:
                _record["imports"][name] = [start, time.time()]

        spec.loader.exec_module = exec_module
        return spec


def _write():
    _record["exit"] = time.time()
    _record["argv"] = list(sys.argv)  # -m sets argv[0] only once runpy found the module
    line = json.dumps(_record) + "\n"
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


if _LOG:
    sys.meta_path.insert(0, _TimedImports())
    atexit.register(_write)
