"""Where a platform JWT says who the user is and which roles they have
(``api.auth.platform_jwt.platform_claims``), for Keycloak- and Auth0-style tokens."""

from __future__ import annotations

import pytest

from api.auth.platform_jwt import ClaimRules, platform_claims
from api.errors import ApiError

pytestmark = pytest.mark.unit

KEYCLOAK = {
    "sub": "0b7c6e52-5d0f-4a7e-9a43-1c2d3e4f5a6b",
    "exp": 2_000_000_000,
    "typ": "Bearer",
    "realm_access": {"roles": ["writer", "admin"]},
    "resource_access": {"account": {"roles": ["view-profile"]}},
}
AUTH0 = {
    "sub": "auth0|65f0c0ffee",
    "exp": 2_000_000_000,
    "https://infinitescribe.example/user_id": "ann",
    "https://infinitescribe.example/roles": ["admin"],
}


def test_keycloak_roles_are_read_from_a_dotted_path() -> None:
    claims = platform_claims(KEYCLOAK, ClaimRules(roles_claim="realm_access.roles"))
    assert (claims.sub, claims.roles) == (KEYCLOAK["sub"], ["writer", "admin"])


def test_auth0_namespaced_claims_with_dots_in_their_name_are_found_as_they_are() -> None:
    rules = ClaimRules(
        subject_claim="https://infinitescribe.example/user_id",
        roles_claim="https://infinitescribe.example/roles",
    )
    claims = platform_claims(AUTH0, rules)
    assert (claims.sub, claims.roles) == ("ann", ["admin"])


def test_no_roles_claim_means_no_roles_but_a_null_one_is_refused() -> None:
    rules = ClaimRules(roles_claim="realm_access.roles")
    assert platform_claims({"sub": "ann", "exp": 2_000_000_000}, rules).roles == []
    with pytest.raises(ApiError) as refused:
        platform_claims(
            {"sub": "ann", "exp": 2_000_000_000, "realm_access": {"roles": None}}, rules
        )
    assert refused.value.code == "token_invalid"


def test_a_subject_user_ids_cannot_hold_is_refused_by_name() -> None:
    with pytest.raises(ApiError) as refused:
        platform_claims(AUTH0, ClaimRules())
    assert refused.value.status == 401
    assert "sub" in refused.value.message
