"""The Kubernetes API machinery, without HTTP.

    objects    KubeApi: create, read, update, patch, apply and delete, with the server's rules
    store      objects of every resource type, one resourceVersion counter, watch fan-out
    snapshot   the store as an etcd snapshot carries it: dump, integrity check, restore
    registry   the resource types served: built-ins and those CRDs add
    builtin    built-in objects decoded against the Kubernetes 1.35 schemas (openapi/): types, unknown fields
    validation names, keys, Service ports and immutable fields of built-in kinds, in upstream's words
    defaults   the defaults the API server gives built-in objects
    schema     custom resources against their structural openAPIV3Schema
    patch      JSON patch, merge patch and strategic merge patch
    apply      field ownership (managedFields) and server-side apply
    selectors  label and field selectors, LabelSelectors
    eviction   the pods/eviction subresource and PodDisruptionBudgets
    rbac       RBAC authorization
    auth       the cluster's PKI, client-certificate users and ServiceAccount tokens
    protobuf   request bodies in Kubernetes' protobuf encoding
    errors     Status bodies of failed requests
"""
