#!/usr/bin/env bash
# The web app in a real browser: headless Chromium from Debian's packages, driven by Playwright (no browser download).
# Installs Chromium (apt-get, as root or through sudo), the app extra and playwright into .venv, then runs
# tests/app/test_browser.py: load the page, upload a clip, see the preview, make a mistake (one-line error), outpaint,
# see the result video. Screenshots land in $M3DDM_SCREENSHOTS (default /tmp/m3ddm-browser). About a minute once
# installed. Not part of CI's run (installing a browser there costs minutes); the test skips there without Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
fi
.venv/bin/pip install -q -e ".[dev,app]" playwright
export M3DDM_SCREENSHOTS="${M3DDM_SCREENSHOTS:-/tmp/m3ddm-browser}" M3DDM_REQUIRE_BROWSER=1
export GRADIO_ANALYTICS_ENABLED=False
mkdir -p "$M3DDM_SCREENSHOTS"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/app/test_browser.py
echo "screenshots in $M3DDM_SCREENSHOTS: $(ls "$M3DDM_SCREENSHOTS" | tr '\n' ' ')"
