"""The lab's Kubernetes: a kube-apiserver that real clients cannot tell from a real one, and the controllers that
stand in for what runs in a cluster.

    api/            the API machinery: objects and their operations, validation, patches, apply, RBAC, auth
    server/         the HTTPS front and the process (`python -m castle_lab.kube.server.main`)
    controllers/    kube-controller-manager's part, storage, Longhorn, Flux and External Secrets
    upstream_crds   the CRDs bundled with the lab (crds/), and their schemas as JSON Schema
"""
