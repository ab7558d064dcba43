"""Adopting a CA built by hand (the OpenSSL runbook, `openssl ca`) or with easy-rsa.

Everything is read and checked in memory first (plan.py, openssl.py, easyrsa.py); only a
complete, consistent plan is written into a new privca home (adoption.py). doctor.py finds
the weaknesses such CAs usually carry; export.py writes the inventory back as an OpenSSL
`index.txt` for tools that read one (`openssl ca`, `openssl ocsp -index`).
"""
