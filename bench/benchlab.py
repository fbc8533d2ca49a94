"""What the benchmarks share: a lab of their own, and commands that fail loudly."""

import json
import os
import pathlib
import shlex
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def lab_environ(name, net):
    """Environment of a bench lab (.lab/<name> on <net>.x), apart from every other lab."""
    bins = [pathlib.Path(sys.executable).parent, REPO / '.lab' / 'tools' / 'bin']
    return dict(os.environ, CASTLE_LAB_DIR=str(REPO / '.lab' / name), CASTLE_LAB_NET=net,
                CASTLE_LAB_OPENCLAW_USER='castle-claw-' + name, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'),
                PATH=':'.join([str(b) for b in bins] + [os.environ['PATH']]))


def run(argv, env):
    """Run a command from the repository; exit with its output when it fails."""
    result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit('{0} failed:\n{1}\n{2}'.format(shlex.join(argv), result.stdout[-3000:], result.stderr[-2000:]))
    return result.stdout


def lab_info(lab, *services):
    """`castle-lab env --json` for these services (all started ones by default): their variables, the lab's paths
    (`inventory_file`, `ca_cert`, ...) and each service's address, ports and files."""
    return json.loads(run(['castle-lab', 'env', '--json', *services], lab))


def client_env(lab, *services):
    """The lab's environment plus what `castle-lab env` exports for these services."""
    return dict(lab, **lab_info(lab, *services)['env'])
