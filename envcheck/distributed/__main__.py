import sys

from .ranks import main

sys.exit(main())
