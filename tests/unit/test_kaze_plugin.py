"""The Kaze OpenClaw plugin's own tests (Node's built-in runner) run as part of the Python suite."""

import os
import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[2]
NODE = REPO / '.lab' / 'tools' / 'bin' / 'node'
PLUGIN = REPO / 'files' / 'openclaw' / 'kaze'


def test_node_test_runner_passes_the_plugin_tests():
    assert os.access(NODE, os.X_OK), '{0} is missing (make setup installs Node.js)'.format(NODE)
    result = subprocess.run([str(NODE), '--test', '--test-reporter=tap', 'test/'], cwd=PLUGIN, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    counts = dict(line[2:].split(' ', 1) for line in result.stdout.splitlines() if line.startswith('# '))
    assert int(counts['pass']) >= 16 and counts['fail'] == '0', result.stdout


def test_plugin_files_ship_with_the_collection():
    galaxy = (REPO / 'galaxy.yml').read_text()
    ignored = galaxy.split('build_ignore:', 1)[1].split('\n\n', 1)[0]
    assert 'files' not in ignored
    for name in ('index.js', 'package.json', 'openclaw.plugin.json'):
        assert (PLUGIN / name).is_file()
