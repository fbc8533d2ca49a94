"""The Kubernetes API machinery, without HTTP.

    objects    KubeApi: create, read, update, patch, apply and delete, with the server's rules
    store      objects of every resource type, one resourceVersion counter, watch fan-out
    registry   the resource types served: built-ins and those CRDs add
    schema     custom resources against their structural openAPIV3Schema
    patch      JSON patch, merge patch and strategic merge patch
    apply      field ownership (managedFields) and server-side apply
    selectors  label and field selectors
    rbac       RBAC authorization
    auth       the cluster's PKI, client-certificate users and ServiceAccount tokens
    protobuf   request bodies in Kubernetes' protobuf encoding
    errors     Status bodies of failed requests
"""
