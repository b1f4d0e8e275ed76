"""What Orthanc loads (``"PythonScript": "<checkout>/plugin/entry.py"``).

The Python embedded in Orthanc knows nothing of the checkout's virtual environment: this script puts the package
folder and the ``.venv`` site-packages of the matching Python version on ``sys.path`` itself, then starts the
plugin. A wrong setting raises here, and Orthanc stops at start-up with the message in its log.
"""

from __future__ import annotations

import sys
from pathlib import Path

_PLUGIN = Path(__file__).resolve().parent
_CHECKOUT = _PLUGIN.parent


def _add_dependencies() -> None:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = _CHECKOUT / ".venv" / "lib" / version / "site-packages"
    for folder in (site_packages, _PLUGIN):
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    if not site_packages.is_dir():
        # The orthancteam image installs the dependencies system-wide; a bare checkout needs `make venv`.
        import orthanc

        orthanc.LogWarning(f"anonymizer: no {site_packages}; using the system's Python packages")


_add_dependencies()

from orthanc_anonymizer.server import glue  # noqa: E402

glue.start()
