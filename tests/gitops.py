"""The real git CLI against the lab's Git host, with the lab's CA and credentials."""

from conftest import REPO

# Answers git's credential requests from CASTLE_GITOPS_USERNAME/_TOKEN: the token is in no argv or URL.
CREDENTIAL_HELPER = ('!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" "$CASTLE_GITOPS_USERNAME" '
                     '"$CASTLE_GITOPS_TOKEN"; }; f')


def git(lab, env, *args, token=None, check=True, cwd=None, env_extra=None):
    """Run git with the lab's CA and credentials (or `token` instead of the lab's)."""
    # GIT_SSL_CAINFO, when the machine sets it, wins over http.sslCAInfo: both name the lab CA.
    git_env = dict(env, GIT_SSL_CAINFO=env['CASTLE_GITOPS_CA'], GIT_TERMINAL_PROMPT='0',
                   CASTLE_GITOPS_TOKEN=token or env['CASTLE_GITOPS_TOKEN'], **(env_extra or {}))
    return lab.run('git', '-c', 'http.sslCAInfo=' + env['CASTLE_GITOPS_CA'], '-c', 'credential.helper=',
                   '-c', 'credential.helper=' + CREDENTIAL_HELPER, '-c', 'user.name=castle-test',
                   '-c', 'user.email=castle-test@localhost', *args, env=git_env, check=check, cwd=cwd or REPO)
