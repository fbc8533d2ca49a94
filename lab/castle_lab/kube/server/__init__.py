"""The Kubernetes API over HTTPS.

    main       the process: API server, controllers and control API on one event loop
    app        the aiohttp application: authentication, resource endpoints, watch streams
    discovery  API groups, resource lists and OpenAPI v3 documents
    tables     server-side printing (meta.k8s.io Table)
    faults     fault injection rules, set through the control API
"""
