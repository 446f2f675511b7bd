"""Request and response shapes. Requests are strict: unknown fields, wrong types and missing fields are refused."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from server.db.models import InstitutionMember, InstitutionRole, User


def _no_control_chars(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in value):  # C0, DEL and C1
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80), AfterValidator(_no_control_chars)
]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, max_length=120), AfterValidator(_no_control_chars)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
# Keys name JSON members in directory filters: no quotes or backslashes, which JSON paths would have to escape.
CustomKey = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40, pattern=r'^[^"\\]+$'),
    AfterValidator(_no_control_chars),
]
CustomValue = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_no_control_chars)
]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]  # the widest id a column holds on both backends


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RegisterIn(Request):
    email: EmailStr = Field(max_length=254)
    password: Password
    display_name: Name


class LoginIn(Request):
    email: EmailStr = Field(max_length=254)
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class PasswordChangeIn(Request):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: Password


class ProfileIn(Request):
    """Only the fields present are changed; ``null`` clears an optional one."""

    display_name: Name | None = None
    real_name: Annotated[Tag, StringConstraints(max_length=120)] | None = None
    position: Tag | None = None
    education: Tag | None = None
    industry: Tag | None = None
    custom_fields: Annotated[dict[CustomKey, CustomValue], Field(max_length=20)] | None = None

    @model_validator(mode="after")
    def _display_name_required(self) -> ProfileIn:
        if "display_name" in self.model_fields_set and self.display_name is None:
            raise ValueError("display_name cannot be cleared")
        return self

    def changes(self) -> dict[str, Any]:
        changed = self.model_dump(include=self.model_fields_set)
        if changed.get("custom_fields") is None and "custom_fields" in changed:
            changed["custom_fields"] = {}
        return changed


class VerifiedIn(Request):
    verified: bool


class SiteAdminIn(Request):
    site_admin: bool


class InstitutionIn(Request):
    name: Annotated[Name, StringConstraints(max_length=120)]
    owner_id: Id | None = None


class InstitutionRenameIn(Request):
    name: Annotated[Name, StringConstraints(max_length=120)]


class MemberAddIn(Request):
    """Name the user by ``user_id`` or by ``email``, not both."""

    user_id: Id | None = None
    email: EmailStr | None = Field(default=None, max_length=254)
    role: InstitutionRole

    @model_validator(mode="after")
    def _exactly_one_user(self) -> MemberAddIn:
        if (self.user_id is None) == (self.email is None):
            raise ValueError("give exactly one of user_id and email")
        return self


class MemberRoleIn(Request):
    role: InstitutionRole


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UserPublicOut(Out):
    id: int
    display_name: str
    position: str | None
    education: str | None
    industry: str | None
    custom_fields: dict[str, str]
    verified: bool


class UserOut(UserPublicOut):
    """The signed-in user's own view of their account."""

    email: str
    real_name: str | None
    is_site_admin: bool
    created_at: datetime


class MeOut(BaseModel):
    user: UserOut
    csrf_token: str | None = Field(description="echo as X-CSRF-Token on state-changing cookie requests")


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str
    expires_at: datetime


class TokenOut(BaseModel):
    user: UserOut
    token: str = Field(description="send as 'Authorization: Bearer <token>'")
    expires_at: datetime


class InstitutionOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    my_role: InstitutionRole | None


class InstitutionListOut(BaseModel):
    institutions: list[InstitutionOut]


class MemberOut(BaseModel):
    user: UserPublicOut
    real_name: str | None
    email: str
    role: InstitutionRole
    added_at: datetime

    @classmethod
    def of(cls, member: InstitutionMember, user: User) -> MemberOut:
        return cls(user=UserPublicOut.model_validate(user), real_name=user.real_name, email=user.email,
                   role=member.role, added_at=member.added_at)


class MemberListOut(BaseModel):
    members: list[MemberOut]


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = {}


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    error: ErrorBody
