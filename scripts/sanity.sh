#!/usr/bin/env bash
# ansible-test sanity on the files the Galaxy artifact ships, from an ansible_collections tree.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TREE=$ROOT/.build/ansible_collections/ephemeral/castle
PYTHON_VERSION=$("$ROOT/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

mkdir -p "$TREE"
# The same exclusions as galaxy.yml's build_ignore, so sanity sees what Galaxy ships.
rsync -a --delete --delete-excluded --exclude .git --filter=":- .gitignore" --exclude-from=<("$ROOT/.venv/bin/python" - "$ROOT/galaxy.yml" <<'PY'
import sys, yaml
for entry in yaml.safe_load(open(sys.argv[1]))['build_ignore']:
    print('/' + entry if '/' in entry or not entry.startswith('*') else entry)
PY
) "$ROOT/" "$TREE/"
cd "$TREE"
# ansible-test lists a collection's files with git when it sits in a work tree; give the copy
# its own, or it would inherit the repository's ignore rules for .build/ and see nothing.
[ -d .git ] || git init -q
git add -A
exec "$ROOT/.venv/bin/ansible-test" sanity --color no --python "$PYTHON_VERSION" --requirements "$@"
