#!/bin/bash
# uninstall.sh: remove virt-aa-hook and put back exactly what install.sh found.
#
# Works from /var/lib/virt-aa-hook/install-manifest, last entry first: files and links install.sh
# created are removed, files it changed are restored from their backups, a foreign qemu hook it
# moved aside is moved back, and directories it created are removed when empty. What the hook
# made while guests ran goes too: per-guest profiles and .files (unloaded unless the guest runs),
# its log and rotations, libvirt's cached capabilities of the wrapper's emulator paths; a file an
# admin edited since it was written is kept, and each kept file is named with the reason. It
# refuses while a managed guest runs (--force: proceed, the running guests keep their loaded
# profiles). --dry-run prints exactly the steps the real run takes. The work is
# `virt-aa-hook uninstall` (src/install/) in this tree's bundle; this finds node and runs it.
#
# Usage: uninstall.sh [--root DIR] [--dry-run] [--reload] [--force] [--keep-config] [--node PATH]
set -eu
here=${BASH_SOURCE[0]%/*}
[ "$here" != "${BASH_SOURCE[0]}" ] || here=.
. "$here/bootstrap.sh"
bootstrap uninstall "$@"
