"""Library code behind the command-line programs: data, boxes, loss, metrics, training, plotting, I/O.

Importing this package sets one process default before torch loads its OpenMP runtime: ``OMP_WAIT_POLICY=PASSIVE``
(unless already set). With the default active spin-waiting, torch's CPU threads slow down by orders of magnitude
whenever another process (a data-loader worker, a second job) shares the cores; passive waiting avoids that at no
measurable cost when the cores are free.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
