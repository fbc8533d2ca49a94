"""The lab's Git host.

    server         the process (`python -m castle_lab.git.server`): smart HTTP over HTTPS through `git http-backend`
    flux_manifest  the Flux install manifest published beside the repositories
    seed/          the repositories the host starts with (gitops)
"""
