"""The ``kgrec`` command line.

PyTorch Geometric's import trips torch's deprecation of ``torch.jit.script``: nothing a user can act on, and one
more line in every command's output. The filter is set here, when the package is first imported, because the console
script imports :mod:`kgrec.cli` (and, through it, whatever imports PyTorch Geometric) before ``main()`` runs.
"""

import warnings

warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
