"""Private Git repositories over HTTPS (castle_lab.git.server: smart HTTP through `git http-backend`,
Basic auth with a per-lab token), seeded with the example GitOps repository, and the Flux install
manifest published beside them like a release download."""

import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile

from .. import pki
from ..git import flux_manifest
from ..git.server import USERNAME
from ..process import LabError
from .base import Service

SEED = pathlib.Path(__file__).resolve().parent.parent / 'git' / 'seed'
IDENTITY = ['-c', 'user.name=castle-lab', '-c', 'user.email=castle-lab@localhost', '-c', 'commit.gpgsign=false']
# Answers git's credential requests from the environment, so the token is in no argv and no URL.
CREDENTIAL_HELPER = '!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" "$CASTLE_GITOPS_USERNAME" ' \
                    '"$CASTLE_GITOPS_TOKEN"; }; f'


def git(*args, cwd=None, timeout=30, env=None, options=()):
    try:
        return subprocess.run(['git', *IDENTITY, *options, *args], cwd=cwd, check=True, capture_output=True, text=True,
                              timeout=timeout, env=env).stdout
    except subprocess.CalledProcessError as exc:
        raise LabError('git {0}: {1}'.format(args[0], (exc.stderr or exc.stdout).strip().splitlines()[-1:])) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError('git {0}: no answer in {1}s'.format(args[0], timeout)) from exc


def client_options(ca):
    """git -c options for the lab's Git host: its CA, and credentials from CASTLE_GITOPS_USERNAME/_TOKEN."""
    return ['-c', 'http.sslCAInfo=' + str(ca), '-c', 'credential.helper=', '-c', 'credential.helper=' + CREDENTIAL_HELPER]


def client_env(ca, token):
    """The environment for client_options; GIT_SSL_CAINFO would override http.sslCAInfo, so it names the CA too."""
    return dict(os.environ, GIT_SSL_CAINFO=str(ca), GIT_TERMINAL_PROMPT='0', CASTLE_GITOPS_USERNAME=USERNAME,
                CASTLE_GITOPS_TOKEN=token)


class GitService(Service):
    name = 'git'
    host = 3
    port = 8443

    @property
    def repos(self):
        return self.dir / 'repos'

    @property
    def releases(self):
        return self.dir / 'flux'

    @property
    def token_file(self):
        return self.dir / 'token'

    @property
    def flux_manifest(self):
        return self.releases / flux_manifest.VERSION / 'install.yaml'

    @property
    def base_url(self):
        return 'https://{0}:{1}'.format(self.address, self.port)

    def url(self, repo='gitops'):
        return '{0}/{1}.git'.format(self.base_url, repo)

    @property
    def flux_manifest_url(self):
        return '{0}/flux/{1}/install.yaml'.format(self.base_url, flux_manifest.VERSION)

    def token(self):
        try:
            return self.token_file.read_text().strip()
        except FileNotFoundError as exc:
            raise LabError('git: no token in {0}; run castle-lab up git'.format(self.token_file)) from exc

    def prepare(self):
        self.cert, self.key = pki.issue_server_cert(self.cfg, self.dir, 'git', [self.address])
        if not self.token_file.exists():
            pki.write_secret(self.token_file, secrets.token_hex(20))
        self.flux_manifest.parent.mkdir(parents=True, exist_ok=True)
        self.flux_manifest.write_text(flux_manifest.render())
        self.repos.mkdir(exist_ok=True)
        for seed in sorted(p for p in SEED.iterdir() if p.is_dir()):
            bare = self.repos / (seed.name + '.git')
            if not (bare / 'HEAD').exists():
                self._seed(seed, bare)
            git('--git-dir', str(bare), 'config', 'http.receivepack', 'true')

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
        return [sys.executable, '-m', 'castle_lab.git.server', '--host', self.address, '--port', str(self.port),
                '--cert', str(self.cert), '--key', str(self.key), '--repos', str(self.repos),
                '--releases', str(self.releases), '--token-file', str(self.token_file)]

    def check(self):
        refs = git('ls-remote', self.url(), 'refs/heads/main', timeout=10, options=client_options(self.cfg.ca_cert),
                   env=client_env(self.cfg.ca_cert, self.token()))
        if not refs.strip():
            raise LabError('{0} has no main branch'.format(self.url()))
        return '{0} at {1}, Flux {2} manifest at {3}'.format(self.url(), refs.split()[0][:12], flux_manifest.VERSION,
                                                            self.flux_manifest_url)

    def files(self):
        return dict(super().files(), token=self.token_file, repos=self.repos, flux_manifest=self.flux_manifest)

    def env(self):
        return {'CASTLE_GITOPS_URL': self.url(), 'CASTLE_GITOPS_USERNAME': USERNAME,
                'CASTLE_GITOPS_TOKEN': self.token(), 'CASTLE_GITOPS_CA': str(self.cfg.ca_cert),
                'CASTLE_FLUX_VERSION': flux_manifest.VERSION, 'CASTLE_FLUX_MANIFEST': str(self.flux_manifest),
                'CASTLE_FLUX_MANIFEST_URL': self.flux_manifest_url}
