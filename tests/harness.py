"""Running Ansible as an operator does, for the tests: a module ad hoc (`ansible localhost -m`), a playbook
(`ansible-playbook`), the PLAY RECAP of a run, and the collection built and installed on its own."""

import configparser
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
VENV_BIN = pathlib.Path(sys.executable).parent
COLLECTION = 'ephemeral.castle'
# The line an ad hoc run prints before the module's result: `localhost | CHANGED => {`.
RESULT_LINE = re.compile(r'^\S+ \| [A-Z!]+ => ', re.M)
DIFF_LINE = re.compile(r'^[-+] ')
RECAP_LINE = re.compile(r'^(\S+)\s+: (.+)$')


class ModuleResult(object):
    """What an ad hoc module run gave: its exit code, its output and the module's result."""

    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.output = proc.stdout + proc.stderr
        found = RESULT_LINE.search(proc.stdout)
        # Ansible stopped before the module ran (a bad argument, an unknown module): its message is all there is.
        self.result = json.loads(proc.stdout[found.end():]) if found else {'failed': True, 'msg': self.output}
        self.diff = [line for line in proc.stdout.splitlines()
                     if DIFF_LINE.match(line) and not line.startswith(('--- ', '+++ '))]

    @property
    def changed(self):
        return self.result.get('changed')

    @property
    def failed(self):
        return self.rc != 0 or bool(self.result.get('failed'))

    @property
    def msg(self):
        return self.result.get('msg', '')


def ansible_env(env):
    """`env` with the virtualenv's commands first on PATH and the checkout's ansible.cfg unless it names one."""
    env = dict(env)
    env.setdefault('ANSIBLE_CONFIG', str(REPO / 'ansible.cfg'))
    env['PATH'] = '{0}:{1}'.format(VENV_BIN, env.get('PATH', ''))
    return env


def run_module(env, module, /, *, check=False, diff=False, extra_vars=None, inventory=None, **args):
    """Run a module ad hoc on localhost, as `ansible localhost -m` does: `module` is one of the collection's
    (`talos_info`) or an FQCN; the keyword arguments other than these four are the module's arguments.

    The arguments go on the command line as JSON (`ansible -a` reads no file). `extra_vars` travel in a private
    file (-e @file), so secret values the arguments name as templates ("{{ token }}") are on no command line
    and in no echo of the task."""
    fqcn = module if module.count('.') == 2 else '{0}.{1}'.format(COLLECTION, module)
    argv = ['ansible', 'localhost', '-m', fqcn] + (['-a', json.dumps(args)] if args else [])
    argv += ['-i', str(inventory)] if inventory else []
    return ModuleResult(ansible(argv, env, check, diff, extra_vars))


def run_playbook(env, playbook, *args, inventory=None, check=False, diff=False, extra_vars=None, cwd=REPO):
    """ansible-playbook `playbook` (a path, or a collection's playbook by FQCN) with `args` after it: the
    CompletedProcess, whatever its exit code."""
    argv = ['ansible-playbook'] + (['-i', str(inventory)] if inventory else []) + [str(playbook)] + list(args)
    return ansible(argv, env, check, diff, extra_vars, cwd)


def ansible(argv, env, check, diff, extra_vars, cwd=REPO):
    argv = argv + (['--check'] if check else []) + (['--diff'] if diff else [])
    with tempfile.TemporaryDirectory(prefix='castle-vars-') as private:
        if extra_vars:
            path = pathlib.Path(private) / 'vars.json'
            path.touch(mode=0o600)
            path.write_text(json.dumps(extra_vars))
            argv += ['-e', '@' + str(path)]
        # The timeout only stops a run that hangs: the runs themselves wait with deadlines of their own.
        return subprocess.run(argv, env=ansible_env(env), cwd=cwd, capture_output=True, text=True, timeout=1800,
                              check=False)


def play_recap(output):
    """The PLAY RECAP of a playbook run's output (text or CompletedProcess) as {host: {'ok': 3, 'changed': 0, ...}}."""
    text = getattr(output, 'stdout', output)
    if 'PLAY RECAP' not in text:
        raise AssertionError('no PLAY RECAP in the output:\n' + text[-3000:])
    found = {}
    for line in text.rsplit('PLAY RECAP', 1)[1].splitlines()[1:]:
        match = RECAP_LINE.match(line)
        if not match:
            break
        found[match.group(1)] = {key: int(value) for key, value in (part.split('=') for part in match.group(2).split())}
    return found


class InstalledCollection(object):
    """The collection's Galaxy artifact installed, with only the dependencies it declares, into an empty
    collections path; `env` makes Ansible see that path and nothing else."""

    def __init__(self, artifact, path, dependencies, env):
        self.artifact = artifact
        self.path = path
        self.dependencies = dependencies
        self.env = env

    @property
    def root(self):
        namespace, name = COLLECTION.split('.')
        return self.path / 'ansible_collections' / namespace / name


def peer_source(fqcn):
    """Where the checkout's set-up put a collection (`.collections/`, taken from the `ansible` package)."""
    namespace, name = fqcn.split('.')
    return REPO / '.collections' / 'ansible_collections' / namespace / name


def isolated_config(directory):
    """The checkout's ansible.cfg without what points into the checkout (its collections path, its inventory)."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO / 'ansible.cfg')
    for option in ('collections_path', 'collections_paths', 'inventory'):
        config.remove_option('defaults', option)
    path = directory / 'ansible.cfg'
    with path.open('w') as out:
        config.write(out)
    return path


def checked(argv, env, cwd):
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise AssertionError('{0} exited {1}:\n{2}{3}'.format(' '.join(argv), proc.returncode, proc.stdout, proc.stderr))
    return proc


def install_collection(directory):
    """Build the collection with ansible-galaxy and install the artifact into `directory`/collections, offline,
    with the collections its MANIFEST.json declares taken from the checkout's set-up."""
    env = ansible_env(os.environ)
    dist = directory / 'dist'
    checked(['ansible-galaxy', 'collection', 'build', '--output-path', str(dist)], env, REPO)
    (artifact,) = dist.glob('*.tar.gz')
    with tarfile.open(artifact) as tar:
        dependencies = json.load(tar.extractfile('MANIFEST.json'))['collection_info']['dependencies']
    requirements = directory / 'requirements.yml'
    requirements.write_text(yaml.safe_dump({'collections': [{'name': str(artifact), 'type': 'file'}] + [
        {'name': str(peer_source(fqcn)), 'type': 'dir'} for fqcn in dependencies]}))
    isolated = dict(ANSIBLE_CONFIG=str(isolated_config(directory)), ANSIBLE_COLLECTIONS_PATH=str(directory / 'collections'),
                    ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false')
    checked(['ansible-galaxy', 'collection', 'install', '--offline', '-r', str(requirements),
             '-p', str(directory / 'collections')], dict(env, **isolated), directory)
    return InstalledCollection(artifact, directory / 'collections', dependencies, isolated)
