"""dip: image restoration with Deep Image Prior.

The package never imports torch at import time, so ``dip --help`` stays fast.
"""

__version__ = "0.1.0"
