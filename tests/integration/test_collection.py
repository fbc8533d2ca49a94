"""The collection as a Galaxy artifact, and the set-up that every command runs first."""

import json
import subprocess
import tarfile

from conftest import REPO, lab_environ


def run(*args, env_update=None, **kwargs):
    env = lab_environ('unused', '127.0.10', 'unused')
    env.update(env_update or {})
    return subprocess.run(list(args), cwd=REPO, capture_output=True, text=True, check=True, env=env, **kwargs)


def test_second_setup_changes_nothing():
    # By now `make test` has run set-up once; a second run only checks stamps and versions.
    lines = run('scripts/setup.sh', timeout=120).stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('setup: ready'), lines


def test_galaxy_build_gives_an_installable_artifact_without_the_lab(tmp_path):
    run('ansible-galaxy', 'collection', 'build', '--output-path', str(tmp_path))
    artifact = next(tmp_path.glob('ephemeral-castle-*.tar.gz'))
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile('MANIFEST.json'))
    assert manifest['collection_info']['namespace'] == 'ephemeral'
    assert manifest['collection_info']['name'] == 'castle'
    assert manifest['collection_info']['license'] == ['GPL-3.0-or-later']
    for left_out in ('lab', 'bench', '.lab', '.venv', 'tests/output', 'inventories/lab'):
        assert not any(n == left_out or n.startswith(left_out + '/') for n in names), left_out
    assert 'meta/runtime.yml' in names
    assert 'plugins/doc_fragments/attributes.py' in names
    run('ansible-galaxy', 'collection', 'install', '--offline', '--force', '-p', str(tmp_path / 'installed'), str(artifact))
    installed = tmp_path / 'installed' / 'ansible_collections' / 'ephemeral' / 'castle'
    assert json.loads((installed / 'MANIFEST.json').read_text())['collection_info']['version'] == \
        manifest['collection_info']['version']
    listed = run('ansible-galaxy', 'collection', 'list', 'ephemeral.castle', '-p', str(tmp_path / 'installed')).stdout
    assert 'ephemeral.castle' in listed
    # The main playbooks run by name from the installed copy (peer collections from the checkout's set-up).
    collections = '{0}:{1}'.format(tmp_path / 'installed', REPO / '.collections')
    for playbook in ('bootstrap', 'phoenix'):
        assert 'playbooks/{0}.yml'.format(playbook) in names, playbook
        checked = run('ansible-playbook', '--syntax-check', '-i', 'localhost,', 'ephemeral.castle.' + playbook,
                      env_update={'ANSIBLE_COLLECTIONS_PATH': collections}).stdout
        assert 'playbook: {0}'.format(installed / 'playbooks' / (playbook + '.yml')) in checked, checked
