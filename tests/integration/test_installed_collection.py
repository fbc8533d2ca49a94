"""The collection as its users get it: the Galaxy artifact installed into an empty collections path with only the
collections galaxy.yml declares (the `installed_collection` fixture), run from there alone. test_phoenix.py runs
the lab's bootstrap from this install; ansible-builder renders an execution environment from its metadata."""

import json
import os
import re
import subprocess
import tarfile

import yaml

from harness import COLLECTION, REPO, ansible_env, checked

# A collection named in a task (`community.proxmox.proxmox_kvm:`) or a filter (`| ansible.utils.ipaddr`).
USED_COLLECTION = re.compile(r'^\s*(?:- )?([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*:|\|\s*([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z]',
                             re.M)
BOLD = re.compile(r'\x1b\[[0-9;]*m')
# Plugin types and where the collection keeps them; ansible-doc renders every one.
PLUGIN_DIRS = {'module': 'plugins/modules', 'inventory': 'plugins/inventory', 'filter': 'plugins/filter',
               'lookup': 'plugins/lookup', 'test': 'plugins/test'}


def isolated(installed):
    return ansible_env(dict(os.environ, **installed.env))


def ansible_doc(installed, *args):
    return checked(['ansible-doc', *args], isolated(installed), installed.path)


def test_the_artifact_declares_what_its_roles_and_playbooks_use(installed_collection):
    galaxy = yaml.safe_load((REPO / 'galaxy.yml').read_text())
    assert installed_collection.dependencies == galaxy['dependencies']
    # The empty collections path holds the collection and its declared dependencies, nothing else.
    installed = sorted('{0}.{1}'.format(ns.name, coll.name)
                       for ns in (installed_collection.path / 'ansible_collections').iterdir() for coll in ns.iterdir())
    assert installed == sorted([COLLECTION] + list(galaxy['dependencies']))
    root = installed_collection.root
    used = set()
    for path in list((root / 'roles').rglob('*.yml')) + list((root / 'playbooks').rglob('*.yml')):
        used.update(a or b for a, b in USED_COLLECTION.findall(path.read_text()))
    assert used - {'ansible.builtin', COLLECTION} == set(galaxy['dependencies'])
    with tarfile.open(installed_collection.artifact) as tar:
        names = set(tar.getnames())
    assert {'requirements.txt', 'bindep.txt', 'meta/execution-environment.yml'} <= names
    assert not {'requirements-test.txt', 'playbooks/lab_check.yml'} & names


def test_every_plugin_and_role_renders_with_ansible_doc(installed_collection):
    root = installed_collection.root
    for kind, directory in PLUGIN_DIRS.items():
        files = sorted(p.stem for p in (root / directory).glob('*.py') if not p.name.startswith('_'))
        listed = json.loads(ansible_doc(installed_collection, '-t', kind, '-l', COLLECTION, '--json').stdout)
        if kind in ('module', 'inventory'):  # one plugin per file
            assert sorted(listed) == ['{0}.{1}'.format(COLLECTION, f) for f in files], kind
        else:
            assert bool(listed) == bool(files), (kind, files, listed)
        if not listed:
            continue
        docs = json.loads(ansible_doc(installed_collection, '-t', kind, '--json', *listed).stdout)
        assert sorted(docs) == sorted(listed), kind
        for name, doc in docs.items():
            assert doc['doc'].get('short_description'), name
            if kind == 'module':
                assert doc['examples'] and doc['doc']['attributes'], name
        text = ansible_doc(installed_collection, '-t', kind, *listed)
        rendered = BOLD.sub('', text.stdout)
        for name in listed:
            assert '\n> {0} {1} ('.format(kind.upper(), name) in '\n' + rendered, name
        assert COLLECTION not in text.stderr, text.stderr
    roles = sorted(p.name for p in (root / 'roles').iterdir() if (p / 'meta' / 'argument_specs.yml').exists())
    assert roles == sorted(p.name for p in (root / 'roles').iterdir())
    for role in roles:
        entry_points = json.loads(ansible_doc(installed_collection, '-t', 'role', '--json',
                                              '{0}.{1}'.format(COLLECTION, role)).stdout)
        found = entry_points['{0}.{1}'.format(COLLECTION, role)]['entry_points']
        # A role's entry points: main, or the task files a playbook includes on its own (fleet_tunnels).
        assert found and all(point['short_description'] for point in found.values()), role


def test_the_playbooks_resolve_from_the_install_alone(installed_collection):
    for playbook in sorted(p.stem for p in (installed_collection.root / 'playbooks').glob('*.yml')):
        checked(['ansible-playbook', '--syntax-check', '-i', 'localhost,', '{0}.{1}'.format(COLLECTION, playbook)],
                isolated(installed_collection), installed_collection.path)


def readme_execution_environment():
    """The execution environment definition README.md shows."""
    section = (REPO / 'README.md').read_text().split('\n## Execution environment\n', 1)[1].split('\n## ', 1)[0]
    return re.search(r'```yaml\n(.*?)```', section, re.S).group(1)


def test_an_execution_environment_gets_the_collections_requirements(installed_collection, tmp_path):
    definition = tmp_path / 'execution-environment.yml'
    definition.write_text(readme_execution_environment())
    (tmp_path / 'talosctl').write_text('the talosctl binary of the Talos release')
    checked(['ansible-builder', 'create', '-f', str(definition), '-c', str(tmp_path / 'context'),
             '--output-filename', 'Containerfile'], ansible_env(os.environ), tmp_path)
    containerfile = (tmp_path / 'context' / 'Containerfile').read_text()
    galaxy = yaml.safe_load((tmp_path / 'context' / '_build' / 'requirements.yml').read_text())
    assert galaxy == {'collections': [{'name': COLLECTION}]}
    assert 'ansible-galaxy collection install' in containerfile and 'introspect.py introspect' in containerfile
    assert 'COPY _build/tools/talosctl /usr/local/bin/talosctl' in containerfile
    # What the build's introspect step gathers from the installed collections (meta/execution-environment.yml).
    pip, bindep = tmp_path / 'pip.txt', tmp_path / 'bindep.txt'
    checked(['ansible-builder', 'introspect', '--write-pip', str(pip), '--write-bindep', str(bindep),
             str(installed_collection.path)], ansible_env(os.environ), tmp_path)
    # ansible-core brings PyYAML, so introspect leaves it out.
    assert gathered(pip, COLLECTION) == [line for line in requirement_lines(REPO / 'requirements.txt')
                                         if not line.lower().startswith('pyyaml')]
    assert gathered(bindep, COLLECTION) == requirement_lines(REPO / 'bindep.txt')
    assert 'jsonpatch' in gathered(pip, 'kubernetes.core')
    # bindep reads the file: on this machine (Debian) it needs only what the set-up installs.
    missing = subprocess.run(['bindep', '-b', '-f', str(REPO / 'bindep.txt')], env=ansible_env(os.environ), capture_output=True,
                             text=True, check=False)
    assert missing.returncode == 0 and missing.stdout == '', missing.stdout + missing.stderr


def gathered(path, collection):
    """The requirements introspect gathered from `collection` (it marks each `  # from collection NAME`)."""
    marker = '  # from collection ' + collection
    return [line[:-len(marker)] for line in path.read_text().splitlines() if line.endswith(marker)]


def requirement_lines(path):
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith('#')]
