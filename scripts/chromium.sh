#!/usr/bin/env bash
# Make sure headless Chromium and its WebDriver are installed for the
# browser tests (cli/tests/it/browser.rs): Debian's `chromium` and
# `chromium-driver`. Never fails the caller: when they cannot be installed
# it says why and exits 0; the browser tests then skip locally and fail
# under CI=true.
set -uo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
  echo "chromedriver: $(/usr/bin/chromedriver --version 2>/dev/null || echo present)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not installed and apt-get is not available here; the browser tests cannot run" >&2
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "chromium: not installed, not root and no sudo; the browser tests cannot run" >&2
    exit 0
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update; then
  echo "chromium: apt-get update failed; the browser tests cannot run" >&2
  exit 0
fi
if ! "${sudo[@]}" apt-get install -y --no-install-recommends chromium chromium-driver; then
  echo "chromium: apt-get install chromium chromium-driver failed; the browser tests cannot run" >&2
  exit 0
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
