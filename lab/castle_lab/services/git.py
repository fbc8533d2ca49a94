"""Bare git repositories served by `git daemon` on loopback, seeded with the example GitOps repository."""

import pathlib
import shutil
import subprocess
import tempfile

from ..process import LabError
from .base import Service

SEED = pathlib.Path(__file__).resolve().parent.parent / 'seed'
IDENTITY = ['-c', 'user.name=castle-lab', '-c', 'user.email=castle-lab@localhost', '-c', 'commit.gpgsign=false']


def git(*args, cwd=None, timeout=30):
    try:
        return subprocess.run(['git', *IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True,
                              timeout=timeout).stdout
    except subprocess.CalledProcessError as exc:
        raise LabError('git {0}: {1}'.format(args[0], (exc.stderr or exc.stdout).strip().splitlines()[-1:])) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError('git {0}: no answer in {1}s'.format(args[0], timeout)) from exc


class GitService(Service):
    name = 'git'
    host = 3
    port = 9418

    @property
    def repos(self):
        return self.dir / 'repos'

    def url(self, repo='gitops'):
        return 'git://{0}:{1}/{2}.git'.format(self.address, self.port, repo)

    def prepare(self):
        self.repos.mkdir(exist_ok=True)
        for seed in sorted(p for p in SEED.iterdir() if p.is_dir()):
            bare = self.repos / (seed.name + '.git')
            if not (bare / 'HEAD').exists():
                self._seed(seed, bare)

    @staticmethod
    def _seed(seed, bare):
        git('init', '--quiet', '--bare', '--initial-branch=main', str(bare))
        with tempfile.TemporaryDirectory() as work:
            shutil.copytree(seed, work, dirs_exist_ok=True)
            git('init', '--quiet', '--initial-branch=main', cwd=work)
            git('add', '--all', cwd=work)
            git('commit', '--quiet', '-m', 'Seed the {0} repository'.format(seed.name), cwd=work)
            git('push', '--quiet', str(bare), 'main', cwd=work)

    def command(self):
        return ['git', 'daemon', '--base-path=' + str(self.repos), '--export-all', '--enable=receive-pack',
                '--listen=' + self.address, '--port={0}'.format(self.port), '--reuseaddr', '--informative-errors',
                str(self.repos)]

    def check(self):
        refs = git('ls-remote', self.url(), 'refs/heads/main', timeout=10)
        if not refs.strip():
            raise LabError('{0} has no main branch'.format(self.url()))
        return '{0} at {1}'.format(self.url(), refs.split()[0][:12])

    def env(self):
        return {'CASTLE_GITOPS_URL': self.url()}
