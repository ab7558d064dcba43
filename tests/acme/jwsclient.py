"""A deliberately low-level ACME client for hostile tests: it signs whatever it is told."""

from __future__ import annotations

import json
from typing import Any

import josepy as jose
import requests
from cryptography.hazmat.primitives.asymmetric import ec

JOSE = "application/jose+json"


def b64(data: bytes) -> str:
    return jose.b64encode(data).decode()


class RawClient:
    def __init__(self, directory_url: str, root_pem: str, key: jose.JWK | None = None) -> None:
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        self.session.verify = root_pem
        self.directory = self.session.get(directory_url, timeout=10).json()
        self.key = key or jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        self.kid: str | None = None

    @staticmethod
    def alg_for(key: jose.JWK) -> jose.JWASignature:
        if isinstance(key, jose.JWKEC):
            return jose.ES384 if key.key.curve.name == "secp384r1" else jose.ES256
        return jose.RS256

    def nonce(self) -> str:
        return self.session.head(self.directory["newNonce"], timeout=10).headers["Replay-Nonce"]

    def sign(
        self,
        url: str,
        payload: Any,
        *,
        nonce: str | None = None,
        header: dict[str, Any] | None = None,
        key: jose.JWK | None = None,
        use_jwk: bool | None = None,
        alg: jose.JWASignature | None = None,
    ) -> dict[str, str]:
        key = key or self.key
        alg = alg or self.alg_for(key)
        protected: dict[str, Any] = {"alg": alg.name, "url": url}
        protected["nonce"] = nonce if nonce is not None else self.nonce()
        if use_jwk or (use_jwk is None and self.kid is None):
            protected["jwk"] = key.public_key().to_partial_json()
        else:
            protected["kid"] = self.kid
        protected.update(header or {})
        protected = {k: v for k, v in protected.items() if v is not None}
        payload_bytes = (
            b""
            if payload is None
            else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        )
        encoded = b64(json.dumps(protected).encode())
        body = f"{encoded}.{b64(payload_bytes)}".encode()
        signature = alg.sign(key.key, body)
        return {"protected": encoded, "payload": b64(payload_bytes), "signature": b64(signature)}

    def post(
        self,
        url: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = JOSE,
        **kwargs: Any,
    ) -> requests.Response:
        data = raw if raw is not None else json.dumps(self.sign(url, payload, **kwargs)).encode()
        return self.session.post(url, data=data, headers={"Content-Type": content_type}, timeout=30)

    def register(self) -> requests.Response:
        response = self.post(self.directory["newAccount"], {"termsOfServiceAgreed": True})
        self.kid = response.headers.get("Location")
        return response
