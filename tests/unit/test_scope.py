"""The one access rule: requested ∩ visible, deny by default, inputs bounded before any work."""
from __future__ import annotations

import pytest

from services.scope import (MAX_PARTNERS_PER_REQUEST, OPEN_ACCESS, Principal, Scope, ScopeError, earliest_start,
                            scope_for, system_scope)

NOW = 1_796_000_000.0
ADMIN = Principal("ada", "admin")
STAFF = Principal("sam", "staff")
PM = Principal("pat", "partner_manager", frozenset({"acme", "zeta"}))
NOBODY = Principal("nora", "partner_manager", frozenset())


def test_no_selection_sees_every_visible_partner():
    assert scope_for(ADMIN).partners is None
    assert scope_for(STAFF).partners is None
    assert scope_for(OPEN_ACCESS).partners is None
    assert scope_for(PM).partners == ("acme", "zeta")


def test_a_principal_without_partners_sees_nothing_not_everything():
    scope = scope_for(NOBODY)
    assert scope.partners == () and scope.is_empty
    assert scope_for(NOBODY, requested=["acme"], explicit="drop").partners == ()


def test_no_principal_is_refused():
    with pytest.raises(ScopeError) as err:
        scope_for(None)
    assert err.value.status == 401


def test_selection_intersected_for_pages_and_refused_for_the_api():
    assert scope_for(PM, requested=["zeta", "hidden", "acme"], explicit="drop").partners == ("acme", "zeta")
    with pytest.raises(ScopeError) as err:
        scope_for(PM, requested=["acme", "hidden"])
    assert (err.value.status, err.value.field) == (403, "partner")
    assert scope_for(STAFF, requested=["zeta", "acme", "acme"]).partners == ("acme", "zeta")


@pytest.mark.parametrize("bad", ["*", "", "ACME", "a b", "x" * 65, "acme\n", None, 7, ["acme"]])
def test_only_partner_ids_are_partners(bad):
    with pytest.raises(ScopeError) as err:
        scope_for(ADMIN, requested=[bad])
    assert (err.value.status, err.value.field) == (400, "partner")


def test_partners_per_request_are_bounded():
    ids = [f"p{i}" for i in range(MAX_PARTNERS_PER_REQUEST)]
    assert len(scope_for(ADMIN, requested=ids).partners) == MAX_PARTNERS_PER_REQUEST
    with pytest.raises(ScopeError) as err:
        scope_for(ADMIN, requested=ids + ["one-more"])
    assert err.value.field == "partner"


@pytest.mark.parametrize("start, end, field", [
    (NOW, NOW - 60, "from"),                              # reversed
    (NOW, NOW, "from"),                                   # empty
    (earliest_start(NOW) - 1, NOW, "from"),               # older than the day rollups keep
    (NOW - 731 * 86400, NOW, "from"),
    (NOW, NOW + 2 * 86400, "to"),                         # too far ahead
    (float("nan"), NOW, "from"),
])
def test_ranges_are_bounded_by_what_the_rollups_keep(start, end, field):
    with pytest.raises(ScopeError) as err:
        scope_for(ADMIN, start=start, end=end, now=NOW)
    assert (err.value.status, err.value.field) == (400, field)


def test_the_longest_range_allowed_is_accepted():
    scope = scope_for(ADMIN, start=earliest_start(NOW), end=NOW, now=NOW)
    assert scope.end - scope.start > 729 * 86400


def test_every_partner_only_for_principals_that_see_them_all():
    with pytest.raises(ValueError):
        Scope(PM, None)
    assert system_scope().partners is None
    assert system_scope(partners=["b", "a"]).partners == ("a", "b")


def test_cache_key_separates_partner_sets():
    a = scope_for(PM, start=NOW - 3600, end=NOW)
    b = scope_for(ADMIN, start=NOW - 3600, end=NOW)
    assert a.cache_key() != b.cache_key()
