import sys

try:  # Ctrl-C while the CLI itself imports (the first fraction of a second): no traceback
    from .cli import main
except KeyboardInterrupt:
    sys.stderr.write("envcheck: interrupted\n")
    sys.exit(130)

sys.exit(main())
