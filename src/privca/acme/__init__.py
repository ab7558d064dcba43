"""RFC 8555 ACME server: decode (jws.py) -> state machine (service.py) -> encode (routes.py).

Reaches the CA only through the CertificateIssuer protocol of issuer.py, and the database
only through privca.store.acme.AcmeStore.
"""
