"""Shapes of live classes, shared by the HTTP routes (scheduling, reports) and the Socket.IO events (the room)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from rooms.classroom import Media
from rooms.polls import MAX_OPTIONS, PollState
from rooms.reactions import ClassReaction
from server.api.chat_schemas import ClientId, MessageBody, Seq
from server.api.schemas import Id, Request, _no_control_chars
from server.db.models import ClassMessage, ClassSession
from server.services import classes

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                  AfterValidator(_no_control_chars)]
Description = Annotated[str, StringConstraints(max_length=4000)]
Question = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
                     AfterValidator(_no_control_chars)]
Option = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                   AfterValidator(_no_control_chars)]
OptionIndex = Annotated[int, Field(ge=0, lt=MAX_OPTIONS)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a time zone, e.g. 2026-12-01T09:00:00Z")
    return value


Moment = Annotated[datetime, AfterValidator(_aware)]


class ClassSettingsIn(Request):
    lobby: bool = False
    mute_on_entry: bool = False
    students_may: list[Media] = Field(default_factory=lambda: [Media.CAMERA, Media.MICROPHONE], max_length=3)
    max_participants: Annotated[int, Field(ge=2, le=1000)] = 300
    late_after_minutes: Annotated[int, Field(ge=0, le=240)] = 10
    present_percent: Annotated[int, Field(ge=1, le=100)] = 85

    def stored(self) -> dict[str, Any]:
        values = self.model_dump(mode="json", include=self.model_fields_set)
        if "students_may" in values:
            values["students_may"] = sorted(set(values["students_may"]))
        return values


class ClassIn(Request):
    title: Title
    description: Description = ""
    starts_at: Moment
    ends_at: Moment
    teacher_ids: list[Id] | None = Field(None, max_length=10, description="default: you")
    settings: ClassSettingsIn = Field(default_factory=ClassSettingsIn)


class ClassPatchIn(Request):
    title: Title | None = None
    description: Description | None = None
    starts_at: Moment | None = None
    ends_at: Moment | None = None
    teacher_ids: list[Id] | None = Field(None, max_length=10)
    settings: ClassSettingsIn | None = None


class ClassSettingsOut(BaseModel):
    lobby: bool
    mute_on_entry: bool
    students_may: list[str]
    max_participants: int
    late_after_minutes: int
    present_percent: int


class ClassOut(BaseModel):
    id: int
    circle_id: str
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    state: str = Field(description="scheduled, live, ended or cancelled")
    teacher_ids: list[int]
    settings: ClassSettingsOut
    started_at: datetime | None
    ended_at: datetime | None
    recap_post_id: int | None

    @classmethod
    def of(cls, session: ClassSession, teachers: list[int]) -> ClassOut:
        return cls(id=session.id, circle_id=session.circle_id, title=session.title, description=session.description,
                   starts_at=session.scheduled_start, ends_at=session.scheduled_end, state=session.state.value,
                   teacher_ids=teachers, settings=ClassSettingsOut(**{**classes.DEFAULT_SETTINGS, **session.settings}),
                   started_at=session.started_at, ended_at=session.ended_at, recap_post_id=session.recap_post_id)


class ClassListQuery(BaseModel):
    model_config = {"extra": "forbid"}
    when: Literal["upcoming", "past"] = "upcoming"
    cursor: Annotated[str, StringConstraints(max_length=80)] | None = Field(
        None, description="next_cursor of the previous page")
    limit: Annotated[int, Field(ge=1, le=100)] = 20


class ClassListOut(BaseModel):
    classes: list[ClassOut]
    next_cursor: str | None


class AttendanceLineOut(BaseModel):
    user_id: int
    name: str
    circle_role: str | None
    first_join: datetime | None
    last_leave: datetime | None
    attended_minutes: float
    share: float = Field(description="of the scheduled time, 0 to 1")
    status: str = Field(description="present, late, left_early or absent")


class AttendanceOut(BaseModel):
    class_: ClassOut = Field(alias="class")
    scheduled_minutes: float
    measured_minutes: float = Field(
        description="what the shares are of: the class as it ran (so far, while live), or its schedule before it")
    counts: dict[str, int] = Field(description="students per status")
    students: list[AttendanceLineOut] = Field(
        description="the register: the circle's members (not its staff or fans) who had joined by the class's end")
    teachers: list[AttendanceLineOut] = Field(description="the class's teachers")
    others: list[AttendanceLineOut] = Field(
        description="others who came: the circle's staff and fans, later members, people no longer in the circle")

    model_config = {"populate_by_name": True}


# --- polls ---


class PollIn(Request):
    question: Question
    options: list[Option] = Field(min_length=2, max_length=MAX_OPTIONS)
    multiple: bool = False
    correct: list[OptionIndex] | None = Field(None, max_length=MAX_OPTIONS, description="a quiz's right options")


class PollResultsOut(BaseModel):
    counts: list[int] = Field(description="per option")
    answered: int
    correct_answers: int | None

    @classmethod
    def of(cls, view: classes.PollView) -> PollResultsOut:
        return cls(counts=view.results.counts, answered=view.results.answered,
                   correct_answers=view.results.correct_answers)


class PollOut(BaseModel):
    id: int
    question: str
    options: list[str]
    multiple: bool
    state: str
    correct: list[int] | None = Field(description="shown to students once the poll is closed")
    results: PollResultsOut | None = Field(description="live for teachers; for everyone once closed")
    my_answer: list[int] | None = None

    @classmethod
    def of(cls, view: classes.PollView, *, staff: bool, viewer: int | None = None) -> PollOut:
        closed = view.poll.state is PollState.CLOSED
        mine = view.poll.answers.get(viewer) if viewer is not None else None
        return cls(id=view.id, question=view.poll.question, options=list(view.poll.options),
                   multiple=view.poll.multiple, state=view.poll.state.value,
                   correct=sorted(view.poll.correct) if view.poll.correct is not None and (staff or closed) else None,
                   results=PollResultsOut.of(view) if staff or closed else None,
                   my_answer=sorted(mine) if mine is not None else None)


class PollListOut(BaseModel):
    polls: list[PollOut]


# --- socket payloads ---


class ClassRefIn(Request):
    class_id: Id


class JoinClassIn(ClassRefIn):
    last_seq: Seq | None = Field(None, description="the highest in-class chat seq already seen")


class LockIn(ClassRefIn):
    locked: bool


class TargetIn(ClassRefIn):
    user_id: Id


class LowerHandIn(ClassRefIn):
    user_id: Id | None = Field(None, description="default: your own hand")


class MediaGrantIn(TargetIn):
    media: Media


class ReactIn(ClassRefIn):
    kind: ClassReaction


class ClassMessageIn(ClassRefIn):
    client_id: ClientId
    body: MessageBody


class CreatePollIn(ClassRefIn, PollIn):
    pass


class PollRefIn(ClassRefIn):
    poll_id: Id


class AnswerIn(PollRefIn):
    choice: list[OptionIndex] = Field(min_length=1, max_length=MAX_OPTIONS)


class ClassHistoryQuery(BaseModel):
    model_config = {"extra": "forbid"}
    after: Annotated[int, Field(ge=0, le=2**31 - 1)] = Field(0, description="a sequence number")
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class ClassHistoryOut(BaseModel):
    messages: list[ClassMessageOut] = Field(description="oldest first")
    next_after: int | None


class ClassMessageOut(BaseModel):
    class_id: int
    seq: int
    client_id: str
    author: dict[str, Any] | None
    body: str
    created_at: datetime

    @classmethod
    def of(cls, message: ClassMessage, names: dict[int, str]) -> ClassMessageOut:
        author = None
        if message.author_id is not None:
            author = {"user_id": message.author_id, "name": names.get(message.author_id, "")}
        return cls(class_id=message.session_id, seq=message.seq, client_id=message.client_id, author=author,
                   body=message.body, created_at=message.created_at)
