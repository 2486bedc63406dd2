"""orderguard: fake-order, brushing and self-referral detection for distribution shops."""

import os

__version__ = "0.1.0"

# numpy asks the kernel for huge pages on every large array. Where the kernel then compacts
# memory synchronously (transparent_hugepage/defrag = madvise, the Ubuntu default) and a big
# page cache has fragmented memory, each fresh array stalls: here 384 MB of new array took
# 5.6 s instead of 0.16 s, and the 10M-order score stage 86 s instead of 67 s (numpy issue
# #31590). It only takes effect before numpy is imported; an explicit setting wins.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
