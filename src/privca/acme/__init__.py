"""RFC 8555 ACME server: decode (jws.py) -> use cases (service.py and the modules it wires)
-> encode (routes.py).

Reaches the CA only through the CertificateIssuer protocol of issuer.py and its storage
only through the AcmeRepository protocol of repository.py; server/acme.py wires both to a
CertificateAuthority. Nothing here imports privca.store or privca.authority.
"""
