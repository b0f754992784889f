import sys

from m3ddm.cli import main

sys.exit(main())
