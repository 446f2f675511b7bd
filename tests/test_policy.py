"""server.policy as tables: every answer written out by hand, so a change to a rule shows up as a failing row.

Outcomes: ``ALLOW`` (no exception), or the exact error class the policy must raise. ``NotFound`` means "you may not
even know this institution exists"; ``Forbidden`` means "you know it, and may not do this".
"""

from __future__ import annotations

import pytest

from rooms.errors import Conflict, DomainError, Forbidden, NotFound
from server.db.models import InstitutionRole
from server.policy import (
    Actor,
    InstitutionAction,
    SiteAction,
    check_institution,
    check_institution_member_change,
    check_set_verified,
    check_site,
)

ALLOW = None
Outcome = type[DomainError] | None

OWNER, ADMIN, TEACHER, STAFF = (
    InstitutionRole.OWNER, InstitutionRole.ADMIN, InstitutionRole.TEACHER, InstitutionRole.STAFF
)
ROLES: tuple[InstitutionRole | None, ...] = (OWNER, ADMIN, TEACHER, STAFF, None)

USER = Actor(user_id=1, is_site_admin=False)
SITE_ADMIN = Actor(user_id=1, is_site_admin=True)


def assert_outcome(expected: Outcome, call: object) -> None:
    """Run ``call()`` and check it allowed, or raised exactly ``expected`` (siblings never count)."""
    assert callable(call)
    if expected is None:
        call()
        return
    with pytest.raises(DomainError) as caught:
        call()
    assert type(caught.value) is expected, f"expected {expected.__name__}, got {type(caught.value).__name__}"


def _id(value: object) -> str:
    return "none" if value is None else str(value)


# --- check_site ---------------------------------------------------------------------------------------------------

# action -> (signed-in user, site admin)
SITE_TABLE: dict[SiteAction, tuple[Outcome, Outcome]] = {
    SiteAction.CREATE_INSTITUTION: (Forbidden, ALLOW),
    SiteAction.GRANT_SITE_ADMIN: (Forbidden, ALLOW),
    SiteAction.CREATE_CIRCLE: (ALLOW, ALLOW),  # anyone signed in may start a circle of their own
}


def test_site_table_covers_every_action() -> None:
    assert set(SITE_TABLE) == set(SiteAction), "a SiteAction was added or removed: give it a row in SITE_TABLE"


@pytest.mark.parametrize(
    ("action", "actor", "expected"),
    [(action, actor, row[i]) for action, row in SITE_TABLE.items() for i, actor in enumerate((USER, SITE_ADMIN))],
    ids=lambda v: ("site-admin" if v.is_site_admin else "user") if isinstance(v, Actor) else _id(v),
)
def test_check_site(action: SiteAction, actor: Actor, expected: Outcome) -> None:
    assert_outcome(expected, lambda: check_site(actor, action))


# --- check_institution --------------------------------------------------------------------------------------------

ACTIONS = (
    InstitutionAction.VIEW, InstitutionAction.RENAME, InstitutionAction.MANAGE_MEMBERS, InstitutionAction.CREATE_CIRCLE
)
# role -> one outcome per action above
INSTITUTION_TABLE: dict[InstitutionRole | None, tuple[Outcome, Outcome, Outcome, Outcome]] = {
    #          view      rename     manage     create circle
    OWNER:   (ALLOW,    ALLOW,     ALLOW,     ALLOW),
    ADMIN:   (ALLOW,    ALLOW,     ALLOW,     ALLOW),
    TEACHER: (ALLOW,    Forbidden, Forbidden, ALLOW),
    STAFF:   (ALLOW,    Forbidden, Forbidden, Forbidden),
    None:    (NotFound, NotFound,  NotFound,  NotFound),
}


def test_institution_table_covers_every_role_and_action() -> None:
    assert set(INSTITUTION_TABLE) == {*InstitutionRole, None}
    assert set(ACTIONS) == set(InstitutionAction), "an InstitutionAction was added or removed: give it a column"


@pytest.mark.parametrize(
    ("role", "action", "expected"),
    [(role, action, row[i]) for role, row in INSTITUTION_TABLE.items() for i, action in enumerate(ACTIONS)],
    ids=_id,
)
def test_check_institution(role: InstitutionRole | None, action: InstitutionAction, expected: Outcome) -> None:
    assert_outcome(expected, lambda: check_institution(USER, role, action))


@pytest.mark.parametrize("action", ACTIONS, ids=str)
@pytest.mark.parametrize("role", ROLES, ids=_id)
def test_site_admin_may_do_anything_in_any_institution(role: InstitutionRole | None, action: InstitutionAction) -> None:
    check_institution(SITE_ADMIN, role, action)


# --- check_institution_member_change -------------------------------------------------------------------------------

SITE = "site-admin"  # a site admin who is not a member of the institution
ActorKey = InstitutionRole | None | str


def _actor(key: ActorKey) -> tuple[Actor, InstitutionRole | None]:
    if key == SITE:
        return SITE_ADMIN, None
    assert key is None or isinstance(key, InstitutionRole)
    return USER, key


def _change(key: ActorKey, *, current: InstitutionRole | None, new: InstitutionRole | None, owners: int,
            target_is_actor: bool = False) -> object:
    actor, role = _actor(key)
    return lambda: check_institution_member_change(
        actor, role, target_is_actor=target_is_actor, current=current, new=new, owners=owners
    )


# Adding someone who is not a member yet (current None), as each role. Columns: new role O, A, T, S.
ADD_TABLE: dict[ActorKey, tuple[Outcome, Outcome, Outcome, Outcome]] = {
    OWNER: (ALLOW, ALLOW, ALLOW, ALLOW),
    ADMIN: (Forbidden, Forbidden, ALLOW, ALLOW),
    TEACHER: (Forbidden, Forbidden, Forbidden, Forbidden),
    STAFF: (Forbidden, Forbidden, Forbidden, Forbidden),
    None: (NotFound, NotFound, NotFound, NotFound),
    SITE: (ALLOW, ALLOW, ALLOW, ALLOW),
}
NEW_COLUMNS = (OWNER, ADMIN, TEACHER, STAFF)


@pytest.mark.parametrize(
    ("actor", "new", "expected"),
    [(key, new, row[i]) for key, row in ADD_TABLE.items() for i, new in enumerate(NEW_COLUMNS)],
    ids=_id,
)
def test_add_member(actor: ActorKey, new: InstitutionRole, expected: Outcome) -> None:
    assert_outcome(expected, _change(actor, current=None, new=new, owners=1))


# Changing another member's role, with two owners so the last-owner rule stays out of the way.
# Rows: the member's current role; columns: the new role O, A, T, S.
CHANGE_BY_ADMIN: dict[InstitutionRole, tuple[Outcome, Outcome, Outcome, Outcome]] = {
    OWNER: (Forbidden, Forbidden, Forbidden, Forbidden),
    ADMIN: (Forbidden, Forbidden, Forbidden, Forbidden),
    TEACHER: (Forbidden, Forbidden, ALLOW, ALLOW),
    STAFF: (Forbidden, Forbidden, ALLOW, ALLOW),
}
CHANGE_CASES: list[tuple[ActorKey, InstitutionRole, InstitutionRole, Outcome]] = [
    *[(ADMIN, current, new, row[i]) for current, row in CHANGE_BY_ADMIN.items() for i, new in enumerate(NEW_COLUMNS)],
    *[(OWNER, current, new, ALLOW) for current in NEW_COLUMNS for new in NEW_COLUMNS],
    *[(SITE, current, new, ALLOW) for current in NEW_COLUMNS for new in NEW_COLUMNS],
    *[(TEACHER, current, new, Forbidden) for current in NEW_COLUMNS for new in NEW_COLUMNS],
    *[(STAFF, current, new, Forbidden) for current in NEW_COLUMNS for new in NEW_COLUMNS],
    *[(None, current, new, NotFound) for current in NEW_COLUMNS for new in NEW_COLUMNS],
]


@pytest.mark.parametrize(("actor", "current", "new", "expected"), CHANGE_CASES, ids=_id)
def test_change_someone_elses_role(
    actor: ActorKey, current: InstitutionRole, new: InstitutionRole, expected: Outcome
) -> None:
    assert_outcome(expected, _change(actor, current=current, new=new, owners=2))


# Removing another member (new None), with two owners. Columns: the member's current role O, A, T, S.
REMOVE_TABLE: dict[ActorKey, tuple[Outcome, Outcome, Outcome, Outcome]] = {
    OWNER: (ALLOW, ALLOW, ALLOW, ALLOW),
    ADMIN: (Forbidden, Forbidden, ALLOW, ALLOW),
    TEACHER: (Forbidden, Forbidden, Forbidden, Forbidden),
    STAFF: (Forbidden, Forbidden, Forbidden, Forbidden),
    None: (NotFound, NotFound, NotFound, NotFound),
    SITE: (ALLOW, ALLOW, ALLOW, ALLOW),
}


@pytest.mark.parametrize(
    ("actor", "current", "expected"),
    [(key, current, row[i]) for key, row in REMOVE_TABLE.items() for i, current in enumerate(NEW_COLUMNS)],
    ids=_id,
)
def test_remove_someone_else(actor: ActorKey, current: InstitutionRole, expected: Outcome) -> None:
    assert_outcome(expected, _change(actor, current=current, new=None, owners=2))


# Acting on yourself: (actor role, site admin?, current, new, owners) -> outcome.
SELF_CASES: list[tuple[str, Actor, InstitutionRole | None, InstitutionRole | None, InstitutionRole | None, int,
                       Outcome]] = [
    # Any member may leave, whatever their role: leaving needs only to be a member.
    ("staff leaves", USER, STAFF, STAFF, None, 1, ALLOW),
    ("teacher leaves", USER, TEACHER, TEACHER, None, 1, ALLOW),
    ("admin leaves", USER, ADMIN, ADMIN, None, 1, ALLOW),
    ("owner leaves, another owner stays", USER, OWNER, OWNER, None, 2, ALLOW),
    ("last owner may not leave", USER, OWNER, OWNER, None, 1, Conflict),
    ("site admin member leaves", SITE_ADMIN, TEACHER, TEACHER, None, 1, ALLOW),
    ("site admin, last owner, may not leave", SITE_ADMIN, OWNER, OWNER, None, 1, Conflict),
    # Not a member: there is nothing to leave, and the institution stays invisible.
    ("non-member 'leaves'", USER, None, None, None, 1, NotFound),
    # A site admin who is not a member passes the policy; the service then answers "not a member".
    ("site admin non-member 'leaves'", SITE_ADMIN, None, None, None, 1, ALLOW),
    # Changing your own role is managing members, not leaving.
    ("teacher demotes self to staff", USER, TEACHER, TEACHER, STAFF, 1, Forbidden),
    ("staff promotes self to teacher", USER, STAFF, STAFF, TEACHER, 1, Forbidden),
    ("admin promotes self to owner", USER, ADMIN, ADMIN, OWNER, 1, Forbidden),
    ("admin demotes self to teacher", USER, ADMIN, ADMIN, TEACHER, 1, Forbidden),
    ("last owner demotes self", USER, OWNER, OWNER, ADMIN, 1, Conflict),
    ("owner demotes self, another owner stays", USER, OWNER, OWNER, ADMIN, 2, ALLOW),
    ("owner re-sets own role to owner", USER, OWNER, OWNER, OWNER, 1, ALLOW),
    ("non-member adds self as owner", USER, None, None, OWNER, 0, NotFound),
    ("non-member adds self as staff", USER, None, None, STAFF, 0, NotFound),
]


@pytest.mark.parametrize(("label", "actor", "role", "current", "new", "owners", "expected"), SELF_CASES,
                         ids=[case[0] for case in SELF_CASES])
def test_acting_on_yourself(
    label: str, actor: Actor, role: InstitutionRole | None, current: InstitutionRole | None,
    new: InstitutionRole | None, owners: int, expected: Outcome,
) -> None:
    assert_outcome(expected, lambda: check_institution_member_change(
        actor, role, target_is_actor=True, current=current, new=new, owners=owners))


# The last owner: who is told what. Access comes first, so only someone allowed to make the change learns that it
# collides with the last-owner rule; a non-member learns nothing (NotFound), a member without the right is Forbidden.
# (actor, new) with current = owner and a single owner.
LAST_OWNER_CASES: list[tuple[ActorKey, InstitutionRole | None, Outcome]] = [
    (None, None, NotFound),
    (None, ADMIN, NotFound),
    (STAFF, None, Forbidden),
    (STAFF, ADMIN, Forbidden),
    (TEACHER, None, Forbidden),
    (TEACHER, STAFF, Forbidden),
    (ADMIN, None, Forbidden),
    (ADMIN, TEACHER, Forbidden),
    (OWNER, None, Conflict),
    (OWNER, ADMIN, Conflict),
    (OWNER, STAFF, Conflict),
    (SITE, None, Conflict),
    (SITE, ADMIN, Conflict),
    (SITE, OWNER, ALLOW),
]


@pytest.mark.parametrize(("actor", "new", "expected"), LAST_OWNER_CASES, ids=_id)
def test_last_owner_protection_comes_after_access(
    actor: ActorKey, new: InstitutionRole | None, expected: Outcome
) -> None:
    assert_outcome(expected, _change(actor, current=OWNER, new=new, owners=1))


def test_last_owner_conflict_carries_its_code() -> None:
    with pytest.raises(Conflict) as caught:
        check_institution_member_change(USER, OWNER, target_is_actor=True, current=OWNER, new=None, owners=1)
    assert caught.value.instance_code == "last_owner"


@pytest.mark.parametrize("owners", [2, 3])
def test_an_owner_may_remove_another_owner_when_one_remains(owners: int) -> None:
    check_institution_member_change(USER, OWNER, target_is_actor=False, current=OWNER, new=None, owners=owners)


# --- check_set_verified -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("actor", "administers_user", "expected"),
    [
        (USER, False, Forbidden),
        (USER, True, ALLOW),
        (SITE_ADMIN, False, ALLOW),
        (SITE_ADMIN, True, ALLOW),
    ],
    ids=["user", "institution-admin-of-user", "site-admin", "site-admin-and-institution-admin"],
)
def test_check_set_verified(actor: Actor, administers_user: bool, expected: Outcome) -> None:
    assert_outcome(expected, lambda: check_set_verified(actor, administers_user=administers_user))
