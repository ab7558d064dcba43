"""Certificates over ACME: finalize and download (RFC 8555 §7.4), revocation (§7.6)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from josepy.jwk import JWK, JWKEC, JWKRSA

from privca._actor import acme_actor, acting_as
from privca._time import utcnow
from privca.acme import jws, messages
from privca.acme.accounts import Authenticated
from privca.acme.issuer import CertificateInfo, CertificateIssuer, IssuanceRefused, name_of
from privca.acme.orders import Orders, validity_days
from privca.acme.problems import AcmeProblem
from privca.acme.renewal import certificate_by_ari_id, renewal_info
from privca.acme.repository import AcmeRepository, AuthorizationRow, OrderRow
from privca.acme.settings import ACME_DEFAULT_DAYS, AcmeSettings
from privca.acme.state import (
    AuthorizationStatus,
    OrderStatus,
    authorization_as_seen,
    order_finalizing,
    order_issued,
    order_refused,
)
from privca.errors import InputError
from privca.x509.encoding import serial_hex

KEY_COMPROMISE = 1
# RFC 5280 reason codes a subscriber may give (RFC 8555 §7.6), with privca's names.
REVOCATION_REASONS = {
    0: "unspecified",
    KEY_COMPROMISE: "keyCompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
}


def _actor(auth: Authenticated) -> str:
    """The audit log's actor of a request: its account, or the certificate's key."""
    account = auth.account
    return acme_actor(account.id if account else None, account.eab_kid if account else None)


@dataclass(frozen=True)
class Certificates:
    repository: AcmeRepository
    issuer: CertificateIssuer
    settings: AcmeSettings
    orders: Orders

    def finalize(
        self, auth: Authenticated, order_id: str
    ) -> tuple[OrderRow, list[AuthorizationRow]]:
        """Sign the CSR of a ready order, synchronously: one request wins the order."""
        with acting_as(_actor(auth)):
            return self._finalize(auth, order_id)

    def _finalize(
        self, auth: Authenticated, order_id: str
    ) -> tuple[OrderRow, list[AuthorizationRow]]:
        # With its authorizations as seen now: one that has expired proves nothing.
        order, _authorizations = self.orders.order(auth, order_id)
        payload = auth.request.json_payload()
        if not order_finalizing().applies_to(order.status):
            raise AcmeProblem("orderNotReady", f"the order is {order.status}, not ready")
        body = messages.decode(messages.CertificateRequest, payload, "finalize")
        self._check_not_an_account_key(auth, body.csr)
        csr_der = body.csr.public_bytes(Encoding.DER)
        if not self.repository.move_order(order.id, order_finalizing()):
            raise AcmeProblem("orderNotReady", "the order is already being finalized")
        if order.replaces:
            self._check_still_replaceable(order)
        # The certificate record, the order turning valid with it (or refused) and an ARI
        # supersession must all survive a power cut: the account revokes its certificate
        # through the order, and a client polling an order stuck in "processing" never
        # gets the certificate. Nothing of them leaves the server before the block ends,
        # so they reach the disk in one flush instead of one each.
        with self.repository.one_flush():
            serial, not_before, not_after = self._issue(order, csr_der)
            self.repository.move_order(
                order.id,
                order_issued(),
                certificate_serial=serial_hex(serial),
                not_before=not_before,
                not_after=not_after,
            )
            if order.replaces:
                # ARI renewal: the replaced certificate is superseded, as with privca renew,
                # unless another order marked it meanwhile (supersede checks, under a lock).
                replaced = certificate_by_ari_id(self.issuer, order.replaces)
                self.issuer.supersede(replaced.serial, serial)
        return self.orders.order(auth, order.id)

    def _check_still_replaceable(self, order: OrderRow) -> None:
        """Two orders replacing one certificate may both have been accepted (placed at
        once): the first to finalize wins. A processing order refuses when the certificate
        was superseded meanwhile, another order replacing it is valid, or one is being
        finalized that started before (the earlier placed wins a tie); the order is then
        invalid for good."""
        assert order.replaces is not None
        info = certificate_by_ari_id(self.issuer, order.replaces)
        others = [
            o
            for o in self.orders.replacing_orders(order.replaces, order.account_id, utcnow())
            if o.id != order.id
        ]
        ahead = [
            o
            for o in others
            if o.status == OrderStatus.VALID
            or (
                o.status == OrderStatus.PROCESSING
                and (o.created_at, o.id) < (order.created_at, order.id)
            )
        ]
        if info.superseded or ahead:
            problem = AcmeProblem(
                "alreadyReplaced", "the certificate this order replaces has already been replaced"
            )
            self.repository.move_order(
                order.id, order_refused(for_good=True), error=problem.to_json()
            )
            raise problem

    def _check_not_an_account_key(
        self, auth: Authenticated, csr: x509.CertificateSigningRequest
    ) -> None:
        """RFC 8555 §11.1: a certificate must not carry an ACME account key (the account
        key signs requests; a TLS server holding it could be made to sign them). Refused
        for any account's key, found by its thumbprint in the accounts' unique index; the
        order stays ready for a CSR with another key."""
        try:
            public_key = csr.public_key()
        except (ValueError, TypeError):
            return  # a key cryptography cannot load: the issuer refuses the CSR itself
        if _spki(public_key) == _spki(auth.key.key):
            raise AcmeProblem(
                "badCSR",
                "the CSR's public key is this account's key; a certificate needs a key of its own",
            )
        thumbprint = _account_thumbprint(public_key)
        if thumbprint is not None and self.repository.account_by_thumbprint(thumbprint):
            raise AcmeProblem(
                "badCSR",
                "the CSR's public key is an ACME account key; a certificate needs a key of its own",
            )

    def _issue(
        self, order: OrderRow, csr_der: bytes
    ) -> tuple[int, dt.datetime | None, dt.datetime | None]:
        """Issue for a processing order; on any failure the order leaves processing. The
        serial, and the notBefore/notAfter the order asked for as the certificate carries
        them (a notAfter is rounded up to whole days, a notBefore is the issuance time
        backdated a little): a valid order never claims what its certificate does not."""
        try:
            issued = self.issuer.issue(
                csr_der,
                names=[value for _kind, value in order.identifiers],
                profile=order.profile,
                days=self._days(order),
                issuer=order.issuer,
            )
        except IssuanceRefused as exc:
            problem = AcmeProblem(exc.kind, exc.message)
            for_good = exc.kind == "rejectedIdentifier"
            error = problem.to_json() if for_good else None
            self.repository.move_order(order.id, order_refused(for_good=for_good), error=error)
            raise problem from exc
        except BaseException:
            self.repository.move_order(order.id, order_refused(for_good=False))
            raise
        certificate = x509.load_der_x509_certificate(issued.certificate_der)
        return (
            issued.serial,
            certificate.not_valid_before_utc if order.not_before is not None else None,
            certificate.not_valid_after_utc if order.not_after is not None else None,
        )

    def _days(self, order: OrderRow) -> int:
        if order.not_after is not None:
            return validity_days(order.not_after, utcnow())
        return self.settings.profiles.get(order.profile, ACME_DEFAULT_DAYS)

    def certificate(self, auth: Authenticated, order_id: str) -> bytes:
        order = self.orders.own_order(auth, order_id)
        if order.status != OrderStatus.VALID or order.certificate_serial is None:
            raise AcmeProblem("notFound", "the order has no certificate")
        return self.issuer.chain_pem(int(order.certificate_serial, 16))

    def revoke(self, auth: Authenticated) -> None:
        body = messages.decode(messages.Revocation, auth.request.json_payload(), "revokeCert")
        reason_code = body.reason if body.reason is not None else 0
        if reason_code not in REVOCATION_REASONS:
            raise AcmeProblem("badRevocationReason", f"reason code {reason_code} is not allowed")
        certificate: x509.Certificate = body.certificate
        info = self.issuer.lookup(certificate.serial_number)
        if info is None or info.der != certificate.public_bytes(Encoding.DER):
            raise AcmeProblem("notFound", "this CA did not issue that certificate")
        if self._check_revoker(auth, info, certificate) and reason_code == KEY_COMPROMISE:
            # keyCompromise bars the key from every future certificate (issuer.revoke): an
            # account that merely validated the names is not the key's holder, and could
            # lock the subscriber's key out for good.
            raise AcmeProblem(
                "badRevocationReason",
                "only the certificate's key (a request it signs) or the account that ordered "
                "the certificate may revoke it for keyCompromise",
            )
        # An already revoked certificate may still be made keyCompromise (reason 1), e.g.
        # by whoever holds its key: a reason only gets worse, never better (issuer.revoke).
        try:
            with acting_as(_actor(auth)):
                changed = self.issuer.revoke(info.serial, REVOCATION_REASONS[reason_code])
        except IssuanceRefused as exc:
            raise AcmeProblem("alreadyRevoked", exc.message) from exc
        if not changed:
            raise AcmeProblem("alreadyRevoked", "the certificate is already revoked")

    def renewal_info(self, cert_id: str) -> tuple[messages.RenewalInfo, int]:
        """RFC 9773's suggested window for one certificate, and the Retry-After seconds."""
        return renewal_info(self.issuer, cert_id, utcnow())

    def _check_revoker(
        self, auth: Authenticated, info: CertificateInfo, certificate: x509.Certificate
    ) -> bool:
        """The account that ordered the certificate, an account that holds valid
        authorizations for every one of its identifiers, or whoever holds its key (§7.6);
        True for the second, which neither ordered it nor holds its key."""
        if auth.account is not None:
            order = self.repository.order_by_serial(serial_hex(info.serial))
            if order is not None and order.account_id == auth.account.id:
                return False
            if not self._authorized_for(auth.account.id, certificate):
                raise AcmeProblem(
                    "unauthorized",
                    "the certificate was not issued to this account, and the account holds "
                    "no valid authorizations for all of its identifiers",
                )
            return True
        public = certificate.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        signer = auth.key.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if public != signer:
            raise AcmeProblem("unauthorized", "the request is not signed by the certificate key")
        return False

    def _authorized_for(self, account_id: str, certificate: x509.Certificate) -> bool:
        """Whether the account holds a valid, unexpired authorization for every identifier
        of the certificate (a wildcard name needs a wildcard authorization)."""
        wanted = _identifiers(certificate)
        if not wanted:
            return False
        now = utcnow()
        for authz in self.repository.live_authorizations(account_id, now):
            if authorization_as_seen(authz.status, authz.expires, now) != (
                AuthorizationStatus.VALID
            ):
                continue
            wanted.discard((authz.identifier_type, authz.identifier_value, authz.wildcard))
            if authz.wildcard:
                wanted.discard((authz.identifier_type, authz.identifier_value, False))
        return not wanted


def _identifiers(certificate: x509.Certificate) -> set[tuple[str, str, bool]]:
    """The certificate's subjectAltName identifiers as authorizations name them: (type,
    value without "*.", wildcard); empty when it has one no authorization can cover."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    found: set[tuple[str, str, bool]] = set()
    for general in names:
        if isinstance(general, x509.DNSName):
            kind, text = "dns", general.value
        elif isinstance(general, x509.IPAddress):
            kind, text = "ip", str(general.value)
        else:
            return set()
        try:
            value = name_of(kind, text).value
        except InputError:
            return set()
        found.add((kind, value.removeprefix("*."), value.startswith("*.")))
    return found


def _spki(public_key: Any) -> bytes:
    return bytes(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def _account_thumbprint(public_key: Any) -> str | None:
    """The key's thumbprint as an account holding it would have; None for a key no
    account can hold (accounts here sign with RSA or EC keys, jws.ALGORITHMS)."""
    jwk: JWK
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk = JWKRSA(key=public_key)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        jwk = JWKEC(key=public_key)
    else:
        return None
    try:
        return jws.thumbprint(jwk)
    except (ValueError, KeyError, TypeError):  # a curve JOSE has no name for
        return None


__all__ = ["REVOCATION_REASONS", "Certificates"]
