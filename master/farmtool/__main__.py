import sys

from farmtool.cli import main

sys.exit(main())
