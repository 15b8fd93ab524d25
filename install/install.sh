#!/bin/bash
# install.sh: install (or upgrade) virt-aa-hook on a libvirt host.
#
# Everything it creates or changes is recorded in /var/lib/virt-aa-hook/install-manifest, with a
# backup of every file it modifies, so that uninstall.sh can put back exactly what was there.
# Running it again changes nothing unless a shipped file changed (upgrade). Nothing on the host is
# touched before every AppArmor file it would install or change has compiled with apparmor_parser.
# It ends by printing what is confined and what is not. The work is `virt-aa-hook install`
# (src/install/) in this tree's bundle; this finds node and runs it (bootstrap.sh).
#
# Usage: install.sh [--root DIR] [--dry-run] [--reload] [--adopt-all] [--node PATH]
#                   [--libvirt-version X.Y.Z] [--source DIR]      (--help: what each does)
set -eu
here=${BASH_SOURCE[0]%/*}
[ "$here" != "${BASH_SOURCE[0]}" ] || here=.
. "$here/bootstrap.sh"
bootstrap install "$@"
