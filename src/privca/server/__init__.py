"""privca serve: CRL, OCSP, CA certificates, health and metrics over HTTP(S).

`build_app(authority, settings)` in app.py is the one entry point; cli/serve.py runs it
under uvicorn.
"""
