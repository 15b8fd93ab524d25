/**
 * The one fake for commands that read a domain's live XML through virsh: a script at
 * <root>/usr/bin/virsh (where `--root` makes the commands look for it) that prints
 * <root>/live/<name>.xml (its last argument) and logs its arguments to <root>/virsh-calls.
 */
export const FAKE_VIRSH = `#!/bin/sh
# Test fixture standing in for virsh: prints <root>/live/<last argument>.xml.
DIR=$(dirname "$0")/../..
printf '%s\\n' "$*" >> "$DIR/virsh-calls"
for a; do name=$a; done
[ -f "$DIR/live/$name.xml" ] || { echo "error: failed to get domain '$name'" >&2; exit 1; }
cat "$DIR/live/$name.xml"
`;
