"""What the benchmark scripts share, and only what the product (kernel_rules.domain) lacks.

- `pants`: running `./pants` goals, reading `peek` and the dist/ directories they write,
  Pants' step timings, and scratch BUILD targets for kernels whose inputs a benchmark generates;
- `source`: the pinned tarball (lock files, sha256 check) and its unpacked tree (the product's
  `warm_trees.unpack_source`, in Pants' named cache, where the rules unpack it);
- `kbuild`: Kbuild steps the product has no target for (`make localmodconfig`, installing the
  modules of a packaged kernel from its warm tree);
- `measure`: reading a package's `sizes.json` and config, code bytes from `nm` (the product's
  `compose.report.symbol_sizes`);
- `guest`: guest images built by the product's initramfs program with the product's /init;
- `report`: the machine line, timing, number formats and writing a Markdown page to docs/.

Scripts run as `.venv/bin/python benchmarks/<name>.py`; importing this package puts the
repository on sys.path first.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
