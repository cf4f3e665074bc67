"""envcheck doctor: which environment of pixi.lock fits this machine, before installing any.

facts (the machine) + workspace (the lock) -> judge (verdicts, one recommendation) -> render.
Standard library only, so it runs from a checkout with a bare Python >= 3.9.
"""
