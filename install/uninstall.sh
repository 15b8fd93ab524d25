#!/bin/bash
# uninstall.sh: remove virt-aa-hook and put back exactly what install.sh found.
#
# Works from /var/lib/virt-aa-hook/install-manifest, last entry first: files and links install.sh
# created are removed, files it changed are restored from their backups, a foreign qemu hook it
# moved aside is moved back, and directories it created are removed when empty. Per-guest profiles
# in /etc/apparmor.d/libvirt/ are left alone: they are the admin's. The work is
# `virt-aa-hook uninstall` (src/install/) in this tree's bundle; this finds node and runs it.
#
# Usage: uninstall.sh [--root DIR] [--dry-run] [--reload] [--force] [--node PATH]
set -eu
here=${BASH_SOURCE[0]%/*}
[ "$here" != "${BASH_SOURCE[0]}" ] || here=.
. "$here/bootstrap.sh"
bootstrap uninstall "$@"
