"""Re-vendor OpenSeadragon into ``wsi_engine/viewer/static/openseadragon/`` from the npm registry.

The viewer (``wsi-engine view``) ships the library inside the package so that
nothing is fetched at run time. This script fetches the pinned release with
``npm pack`` into a temporary folder and copies the minified build, its button
images and its licence; run it to change the pinned version::

    python tools/vendor_openseadragon.py            # the pinned VERSION
    python tools/vendor_openseadragon.py 6.1.1      # another release
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "6.1.1"
TARGET = Path(__file__).resolve().parents[1] / "wsi_engine" / "viewer" / "static" / "openseadragon"


def vendor(version: str = VERSION, target: Path = TARGET) -> None:
    """Replace ``target`` with ``openseadragon.min.js``, ``images/``, ``LICENSE.txt`` and ``VERSION`` of ``version``."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"openseadragon@{version}", "--silent"], cwd=tmp, check=True)
        (archive,) = Path(tmp).glob("openseadragon-*.tgz")
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        build = Path(tmp) / "package" / "build" / "openseadragon"
        staging = target.with_name(target.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copy2(build / "openseadragon.min.js", staging)
        shutil.copytree(build / "images", staging / "images")
        shutil.copy2(Path(tmp) / "package" / "LICENSE.txt", staging)
        (staging / "VERSION").write_text(version + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    print(f"OpenSeadragon {version} vendored into {target}")


if __name__ == "__main__":
    vendor(sys.argv[1] if len(sys.argv) > 1 else VERSION)
