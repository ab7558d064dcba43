"""Authorizations and challenges (RFC 8555 §7.5): reading them, deactivating one, and
starting a validation that runs in the validators' own pool."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from privca._time import utcnow
from privca.acme import jws
from privca.acme.accounts import Authenticated
from privca.acme.challenges import Deadline, Validator
from privca.acme.problems import AcmeProblem
from privca.acme.repository import AcmeRepository, AuthorizationRow, ChallengeRow, ProblemDocument
from privca.acme.settings import AcmeSettings
from privca.acme.state import (
    authorization_as_seen,
    authorization_may_deactivate,
    challenge_may_start,
)

log = logging.getLogger("privca.acme")


@dataclass(frozen=True)
class Authorizations:
    repository: AcmeRepository
    validator: Validator
    settings: AcmeSettings

    def authorization(
        self, auth: Authenticated, authz_id: str
    ) -> tuple[AuthorizationRow, list[ChallengeRow]]:
        """The authorization with its challenges; a payload deactivates it (§7.5.2)."""
        if auth.request.is_post_as_get:
            found, challenges = self.repository.authorization_with_challenges(authz_id)
            return self._as_seen(auth, found), challenges
        authz = self._own_authorization(auth, authz_id)
        payload = auth.request.json_payload()
        if payload.get("status") != "deactivated":
            raise AcmeProblem("malformed", "an authorization can only be deactivated")
        if authorization_may_deactivate(authz.status):
            self.repository.deactivate_authorization(authz.id)
        found, challenges = self.repository.authorization_with_challenges(authz_id)
        return self._as_seen(auth, found), challenges

    def _own_authorization(self, auth: Authenticated, authz_id: str) -> AuthorizationRow:
        return self._as_seen(auth, self.repository.authorization(authz_id))

    @staticmethod
    def _as_seen(auth: Authenticated, authz: AuthorizationRow | None) -> AuthorizationRow:
        """The signer's authorization with its status as of now (notFound for others)."""
        if authz is None or not auth.owns(authz.account_id):
            raise AcmeProblem("notFound", "no such authorization")
        return replace(authz, status=authorization_as_seen(authz.status, authz.expires, utcnow()))

    def challenge(
        self, auth: Authenticated, challenge_id: str
    ) -> tuple[ChallengeRow, AuthorizationRow, PendingValidation | None]:
        """The challenge; a POST with a payload asks for validation, which the caller runs
        in the validation pool (the returned PendingValidation) and then reads the result."""
        challenge, authz = self.challenge_state(auth, challenge_id)
        if auth.request.is_post_as_get:
            return challenge, authz, None
        auth.request.json_payload()  # {} asks for validation; anything else is ignored
        if not challenge_may_start(challenge.status, authz.status):
            return challenge, authz, None
        # The deadline starts now: time spent waiting for a free validator counts.
        deadline = Deadline(self.settings.validation_timeout)
        if not self.repository.start_challenge(challenge.id):
            return self.repository.challenge(challenge.id) or challenge, authz, None
        key_authorization = f"{challenge.token}.{jws.thumbprint(auth.key)}"
        pending = PendingValidation(self, challenge, authz, key_authorization, deadline)
        return challenge, authz, pending

    def challenge_state(
        self, auth: Authenticated, challenge_id: str
    ) -> tuple[ChallengeRow, AuthorizationRow]:
        challenge, authz = self.repository.challenge_with_authorization(challenge_id)
        if challenge is None:
            raise AcmeProblem("notFound", "no such challenge")
        return challenge, self._as_seen(auth, authz)

    def validate(
        self,
        challenge: ChallengeRow,
        authz: AuthorizationRow,
        key_authorization: str,
        deadline: Deadline,
    ) -> None:
        """Validate and record the result: runs in the validation pool."""
        value = ("*." if authz.wildcard else "") + authz.identifier_value
        error: ProblemDocument | None = None
        try:
            self.validator.validate(
                challenge.type, authz.identifier_type, value, key_authorization, deadline
            )
        except AcmeProblem as problem:
            error = problem.to_json()
        except Exception as exc:  # a validator bug must still settle the challenge
            log.exception("validating challenge %s failed", challenge.id)
            failed = AcmeProblem("serverInternal", f"validation failed: {type(exc).__name__}")
            error = failed.to_json()
        self.repository.finish_challenge(challenge, valid=error is None, now=utcnow(), error=error)


@dataclass(frozen=True)
class PendingValidation:
    """A started validation: `run` (in the validation pool) validates and records."""

    authorizations: Authorizations
    challenge: ChallengeRow
    authorization: AuthorizationRow
    key_authorization: str
    deadline: Deadline

    def run(self) -> None:
        self.authorizations.validate(
            self.challenge, self.authorization, self.key_authorization, self.deadline
        )


__all__ = ["Authorizations", "PendingValidation"]
