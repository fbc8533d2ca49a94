"""Flux's controllers, each acting only while its Deployment (from Flux's install manifest) is Available.

    common     conditions, Ready rules, artifact storage, the reconcile loop of one Flux kind
    source     source-controller's GitRepository
    kustomize  kustomize-controller's Kustomization
    envsubst   post-build variable substitution
    objects    what kustomize-controller knows about the objects it applies (durations, inventory, health, semver)
    helm       source-controller's HelmRepository and HelmChart, helm-controller's HelmRelease
"""
