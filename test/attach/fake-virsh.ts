/**
 * A stand-in virsh, really exec'd: domains are files in $DIR/domains next to it, every call is
 * logged to $DIR/calls, `define` records where its XML file was. Shared by the adopt tests.
 */
export const FAKE_VIRSH = `#!/bin/sh
set -eu
DIR=$(dirname "$0")
printf '%s\\n' "$*" >> "$DIR/calls"
if [ "$1" = -c ]; then shift 2; fi
case $1 in
  list) ls "$DIR/domains" ;;
  dumpxml) [ -f "$DIR/domains/$4" ] || { echo "error: failed to get domain '$4'" >&2; exit 1; }; cat "$DIR/domains/$4" ;;
  define) name=$(sed -n 's:.*<name>\\(.*\\)</name>.*:\\1:p' "$2"); cp "$2" "$DIR/domains/$name"; echo "Domain '$name' defined from $2" ;;
  *) exit 3 ;;
esac
`;
