#!/usr/bin/env python3
"""Print how long `castle-lab up` takes: from an empty state directory (Vault initialised),
again with the state kept (Vault only unsealed), and when everything is already up.

Runs its own lab (.lab/bench-lab on 127.0.30.x) so it never touches the developer's.
"""

import shutil
import subprocess
import time

from benchlab import lab_environ

ENV = lab_environ('bench-lab', '127.0.30')


def castle_lab(*args):
    began = time.monotonic()
    subprocess.run(['castle-lab', *args], env=ENV, check=True, capture_output=True)
    return time.monotonic() - began


def main():
    castle_lab('down')
    shutil.rmtree(ENV['CASTLE_LAB_DIR'], ignore_errors=True)
    try:
        cold = castle_lab('up')
        warm_up = castle_lab('up')
        castle_lab('down')
        restart = castle_lab('up')
    finally:
        castle_lab('down')
        shutil.rmtree(ENV['CASTLE_LAB_DIR'], ignore_errors=True)
    print('castle-lab up, empty state (vault init): {0:.1f}s'.format(cold))
    print('castle-lab up, state kept (vault unseal): {0:.1f}s'.format(restart))
    print('castle-lab up, already up:                {0:.1f}s'.format(warm_up))


if __name__ == '__main__':
    main()
