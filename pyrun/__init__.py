"""pyrun: a rootless, runc-compatible OCI container runtime in Python.

The package is a library first (``pyrun.container.create`` and ``pyrun.container.lifecycle``
are the API); ``pyrun.commands.cli`` is a thin command line over it.  Imports here stay minimal: every pyrun
command pays for them before doing anything.
"""

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"
