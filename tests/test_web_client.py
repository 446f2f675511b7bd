"""The browser client in real Chromium against the real app: what a teacher and two students see and do.

One long scenario walks a circle's life the way people would, each in a browser context of their own (the teacher
and one student on a laptop, the other student on a phone): signing up, creating a circle and an invite, joining by
the invite link, the feed, the chat both ways (with a student offline for a while), an application and its review,
the member directory's filters. Every assertion is on what the page shows. Screenshots of the key pages at phone
and laptop size land in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import LAPTOP, PASSWORD, PHONE, WAIT_MS, Person, chromium, live_server, person, require_chromium


@pytest.fixture
async def base_url(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[str]:
    require_chromium()
    async with live_server(sqlite_template, tmp_path) as url:
        yield url


@pytest.fixture
async def browser(base_url: str) -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


def expect(target: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT_MS)
    return playwright_expect(target)


# Someone's tile shows a video that has decoded frames: what "I can see them" means to a browser.
VIDEO_PLAYING = """(name) => {
  const tile = [...document.querySelectorAll('li.tile')].find((t) => t.getAttribute('aria-label') === name);
  const video = tile && tile.querySelector('video');
  return Boolean(video) && video.videoWidth > 0 && video.readyState >= 2;
}"""


async def sign_up(someone: Person, *, from_here: bool = False) -> None:
    """Fill the sign-up form; from_here: the person is already on it (say, from an invite page)."""
    page = someone.page
    if not from_here:
        await someone.goto("/#/signup")
    await expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    await page.get_by_label("Display name").fill(someone.name)
    await page.get_by_label("Email").fill(someone.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def open_tab(someone: Person, name: str) -> None:
    tabs = someone.page.get_by_role("navigation", name="Circle sections")
    await tabs.get_by_role("link", name=re.compile(f"^{name}")).click()


async def send_chat(someone: Person, text: str) -> None:
    box = someone.page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")


def chat_messages(someone: Person, text: str) -> Any:
    return someone.page.get_by_role("list", name="Chat messages").get_by_role("listitem").filter(has_text=text)


async def test_a_circle_from_sign_up_to_review(browser: Any, base_url: str) -> None:
    teacher = await person(browser, base_url, "Teacher Tan", viewport=LAPTOP)
    one = await person(browser, base_url, "Student One", viewport=LAPTOP)
    two = await person(browser, base_url, "Student Two", viewport=PHONE)
    people = [teacher, one, two]

    # --- the teacher signs up, signs out, gets the password wrong once, signs in
    await sign_up(teacher)
    await expect(teacher.page.get_by_role("heading", name="My circles")).to_be_visible()
    await expect(teacher.page.get_by_text("You are not in any circle yet.")).to_be_visible()
    await teacher.shot("my-circles-empty")
    await teacher.page.get_by_role("button", name="Sign out").click()
    await expect(teacher.page.get_by_role("heading", name="Sign in")).to_be_visible()
    await teacher.page.get_by_label("Email").fill(teacher.email)
    await teacher.page.get_by_label("Password").fill("not the password")
    await teacher.page.get_by_role("button", name="Sign in").click()
    await expect(teacher.page.get_by_role("alert")).to_contain_text(re.compile("password|invalid|wrong", re.I))
    await teacher.shot("sign-in-error")
    await teacher.page.get_by_label("Password").fill(PASSWORD)
    await teacher.page.get_by_role("button", name="Sign in").click()
    await expect(teacher.page.get_by_role("heading", name="My circles")).to_be_visible()

    # --- the teacher creates a course circle (invite only) and an invite link
    await teacher.page.get_by_role("link", name="Create a circle").click()
    await teacher.page.get_by_label("Name").fill("Algebra I")
    await teacher.page.get_by_label("Description").fill("Monday evening algebra: notes, questions and the class chat.")
    await teacher.page.get_by_label("Who may join").select_option("invite")
    await teacher.page.get_by_role("button", name="Create circle").click()
    await expect(teacher.page.get_by_role("heading", name="Algebra I", level=1)).to_be_visible()
    await expect(teacher.page.get_by_text("You: Owner")).to_be_visible()
    await open_tab(teacher, "Manage")
    await teacher.page.get_by_role("button", name="Invites").click()
    await teacher.page.get_by_role("button", name="Create invite").click()
    link = teacher.page.get_by_label("Invite link (Member)")
    await expect(link).to_have_value(re.compile(r"/join/\S+$"))
    invite_url = await link.input_value()
    await expect(teacher.page.get_by_role("img", name="QR code of the member invite link")).to_be_visible()
    await teacher.shot("manage-invites")

    # --- both students open the invite link signed out, sign up from it, come back to it and accept
    for student in (one, two):
        await student.page.goto(invite_url)
        await expect(student.page.get_by_text("You are invited to join")).to_be_visible()
        await expect(student.page.get_by_role("heading", name="Algebra I")).to_be_visible()
        if student is one:
            await student.shot("join-signed-out")
        await student.page.get_by_role("link", name="Create an account").click()
        await sign_up(student, from_here=True)
        await expect(student.page.get_by_text(f"Signed in as {student.name}.")).to_be_visible()
        await student.page.get_by_role("button", name="Accept invite").click()
        await expect(student.page.get_by_role("heading", name="Algebra I", level=1)).to_be_visible()
        await expect(student.page.get_by_text("You: Member")).to_be_visible()

    # --- the feed: a student posts, the teacher comments, the student sees the comment and reacts
    await one.page.get_by_label("Title (optional)").fill("Homework 1")
    await one.page.get_by_label("Write a post").fill("Is question 3 about quadratic equations?")
    await one.page.get_by_role("button", name="Post", exact=True).click()
    await expect(one.page.get_by_role("article").filter(has_text="Homework 1")).to_be_visible()
    await open_tab(teacher, "Feed")
    post = teacher.page.get_by_role("article").filter(has_text="Homework 1")
    await expect(post).to_contain_text("Student One")
    await post.get_by_role("button", name="Comments (0)").click()
    await post.get_by_label("Write a comment").fill("Yes: factorise first.")
    await post.get_by_role("button", name="Comment", exact=True).click()
    await expect(post.get_by_role("list", name="Comments")).to_contain_text("Yes: factorise first.")
    await post.get_by_role("button", name="Pin").click()
    pinned = teacher.page.get_by_role("article").filter(has_text="Homework 1")
    await expect(pinned.get_by_text("Pinned")).to_be_visible()
    await one.page.reload()
    mine = one.page.get_by_role("article").filter(has_text="Homework 1")
    await expect(mine.get_by_text("Pinned")).to_be_visible()
    await mine.get_by_role("button", name="Comments (1)").click()
    await expect(mine.get_by_role("list", name="Comments")).to_contain_text("Teacher Tan")
    await mine.get_by_role("button", name="Clap").click()
    await expect(mine.get_by_role("button", name="Clap, 1")).to_have_attribute("aria-pressed", "true")
    await one.shot("circle-feed")

    # --- chat both ways, live; typing and a mention
    await teacher.page.reload()
    await expect(teacher.page.get_by_role("heading", name="Chat")).to_be_visible()
    await send_chat(teacher, "Welcome to Algebra I!")
    await expect(chat_messages(one, "Welcome to Algebra I!")).to_have_count(1)
    await one.page.get_by_role("textbox", name="Message").press_sequentially("Thanks @Tea")
    await one.page.get_by_role("button", name="@Teacher Tan").click()
    await expect(teacher.page.get_by_text("Student One is typing…")).to_be_visible()
    await one.page.get_by_role("textbox", name="Message").press_sequentially("see you on Monday")
    await one.page.get_by_role("textbox", name="Message").press("Enter")
    arrived = chat_messages(teacher, "see you on Monday")
    await expect(arrived).to_have_count(1)
    await expect(arrived).to_contain_text("@Teacher Tan")
    await expect(arrived.get_by_text("Mentions you")).to_be_visible()
    welcome = chat_messages(teacher, "Welcome to Algebra I!")
    await welcome.hover()
    await welcome.get_by_role("button", name="Edit your message").click()
    await teacher.page.get_by_role("textbox", name="Edit your message").fill("Welcome to Algebra I, everyone!")
    await teacher.page.get_by_role("button", name="Save", exact=True).click()
    edited = chat_messages(one, "Welcome to Algebra I, everyone!")
    await expect(edited).to_contain_text("(edited)")
    await teacher.shot("circle-chat")

    # --- the phone student: chat is a tab of its own; offline for a while, then back: the message arrives once
    await two.page.reload()
    await expect(two.page.get_by_role("heading", name="Algebra I", level=1)).to_be_visible()
    await open_tab(two, "Chat")
    await expect(chat_messages(two, "see you on Monday")).to_have_count(1)
    await expect(chat_messages(two, "Welcome to Algebra I, everyone!")).to_have_count(1)
    await open_tab(two, "Feed")
    await two.context.set_offline(True)
    await expect(two.page.get_by_role("status").filter(has_text="You are offline")).to_be_visible()
    await two.shot("offline-banner", both=False)
    await send_chat(teacher, "Homework is due Friday.")
    await expect(chat_messages(teacher, "Homework is due Friday.")).to_have_count(1)
    await expect(chat_messages(one, "Homework is due Friday.")).to_have_count(1)
    assert await chat_messages(two, "Homework is due Friday.").count() == 0
    await two.context.set_offline(False)
    await expect(two.page.get_by_role("status").filter(has_text="offline")).to_be_hidden()
    await expect(two.page.get_by_role("link", name="Chat, 1 unread")).to_be_visible()
    await open_tab(two, "Chat")
    await expect(chat_messages(two, "Homework is due Friday.")).to_have_count(1)
    await expect(two.page.get_by_role("link", name="Chat", exact=True)).to_be_visible()
    await send_chat(two, "Got it, thanks!")
    await expect(chat_messages(teacher, "Got it, thanks!")).to_have_count(1)
    await expect(chat_messages(two, "Got it, thanks!")).to_have_count(1)
    assert await chat_messages(two, "Homework is due Friday.").count() == 1
    await two.shot("circle-chat-phone", both=False)

    # --- profiles with tags, then the directory filters them
    for student, tags in ((one, {"Position": "Engineer", "Industry": "Finance"}),
                          (two, {"Position": "Designer", "Education": "Master"})):
        await student.page.get_by_role("link", name=student.name).click()
        for label, value in tags.items():
            await student.page.get_by_label(label, exact=True).fill(value)
        await student.page.get_by_role("button", name="Save profile").click()
        await expect(student.page.get_by_text("Profile saved.")).to_be_visible()
    await one.shot("profile")
    await open_tab(teacher, "Members")
    directory = teacher.page.get_by_role("list", name="Members found")
    await expect(directory.get_by_role("listitem").filter(has_text="Student")).to_have_count(2)
    await teacher.page.get_by_label("Position", exact=True).fill("Designer")
    await teacher.page.get_by_role("button", name="Filter").click()
    await expect(directory.locator("> li")).to_have_count(1)
    await expect(directory).to_contain_text("Student Two")
    await expect(directory).to_contain_text("Education: Master")
    await teacher.shot("members-filtered")
    await teacher.page.get_by_role("button", name="Clear").click()
    await expect(directory.locator("> li")).to_have_count(3)

    # --- moderation: the teacher mutes a student in chat; the student sees it; the audit log records it
    await one.page.get_by_role("link", name="My circles").click()
    await one.page.get_by_role("link", name="Algebra I").click()
    await expect(one.page.get_by_role("textbox", name="Message")).to_be_enabled()
    member = directory.locator("> li").filter(has_text="Student One")
    await member.get_by_text("Manage Student One").click()
    await member.get_by_label("Mute Student One in chat for").select_option(label="1 hour")
    await member.get_by_role("button", name="Apply").click()
    await expect(teacher.page.get_by_text("Student One is muted.")).to_be_visible()
    await expect(one.page.get_by_text("You are muted in this chat until")).to_be_visible()
    await expect(one.page.get_by_role("textbox", name="Message")).to_be_disabled()
    await open_tab(teacher, "Manage")
    await teacher.page.get_by_role("button", name="Moderation").click()
    log = teacher.page.get_by_role("list", name="Audit log entries")
    for entry in ("Teacher Tan muted Student One", "Teacher Tan pinned a post by Student One"):
        await expect(log.get_by_role("listitem").filter(has_text=entry)).to_have_count(1)
    await teacher.shot("manage-moderation")

    # --- a second circle admits by application: a student applies, the teacher approves
    await teacher.goto("/#/circles/new")
    await teacher.page.get_by_label("Name").fill("Evening study group")
    await teacher.page.get_by_label("Kind").select_option("community")
    await teacher.page.get_by_label("Who may join").select_option("application")
    await teacher.shot("create-circle")
    await teacher.page.get_by_role("button", name="Create circle").click()
    await expect(teacher.page.get_by_role("heading", name="Evening study group", level=1)).to_be_visible()
    await open_tab(teacher, "Manage")
    await teacher.page.get_by_role("button", name="Settings").click()
    await teacher.page.get_by_role("button", name="Add a question").click()
    await teacher.page.get_by_label("Question", exact=True).fill("Why do you want to join?")
    await teacher.page.get_by_role("button", name="Save form").click()
    await expect(teacher.page.get_by_text("Application form saved.")).to_be_visible()

    await two.page.get_by_role("link", name="Discover").click()
    await two.page.get_by_label("Search circles").fill("study")
    await two.page.get_by_role("button", name="Search").click()
    await expect(two.page.get_by_role("list", name="Circles found").get_by_role("listitem")).to_have_count(1)
    await two.shot("discover")
    await two.page.get_by_role("link", name="Evening study group").click()
    await two.page.get_by_label("Why do you want to join?").fill("To practise before exams.")
    await two.page.get_by_role("button", name="Send application").click()
    await expect(two.page.get_by_text("Application: Pending")).to_be_visible()
    await expect(two.page.get_by_text("Your application is waiting for review.")).to_be_visible()
    await two.shot("application-pending")

    await teacher.page.get_by_role("button", name="Applications").click()
    queue = teacher.page.get_by_role("list", name="Applications")
    review = queue.get_by_role("listitem").filter(has_text="Student Two")
    await expect(review).to_contain_text("To practise before exams.")
    await teacher.shot("manage-applications")
    await review.get_by_role("button", name="Approve Student Two").click()
    await expect(teacher.page.get_by_text("No application is waiting for review.")).to_be_visible()
    await two.page.reload()
    await expect(two.page.get_by_text("You: Member")).to_be_visible()
    await two.page.get_by_role("link", name="My circles").click()
    mine_list = two.page.get_by_role("list", name="My circles")
    await expect(mine_list.get_by_role("link", name="Evening study group")).to_be_visible()
    await expect(mine_list.get_by_role("link", name="Algebra I")).to_be_visible()
    await two.shot("my-circles")

    # --- the class schedule: the teacher schedules a class and prepares a poll; a student finds it
    await teacher.page.get_by_role("link", name="My circles").click()
    await teacher.page.get_by_role("link", name="Algebra I").click()
    await open_tab(teacher, "Classes")
    await teacher.page.get_by_text("Schedule a class").click()
    await teacher.page.get_by_label("Class title").fill("Lesson 1: linear equations")
    await teacher.page.get_by_label("Length (minutes)").fill("45")
    await teacher.page.get_by_label("Camera").check()
    await teacher.page.get_by_role("button", name="Schedule class").click()
    await expect(teacher.page.get_by_role("heading", name="Lesson 1: linear equations", level=1)).to_be_visible()
    await expect(teacher.page.get_by_text("The class has not started.")).to_be_visible()
    await expect(teacher.page.get_by_text("Students may use their microphone, camera.")).to_be_visible()
    await teacher.page.get_by_text("Prepare a poll").click()
    await teacher.page.get_by_label("Question", exact=True).fill("Solve 2x + 3 = 7")
    await teacher.page.get_by_label("Options (one per line)").fill("x = 1\nx = 2\nx = 5")
    await teacher.page.get_by_label("Correct options (numbers, optional)").fill("2")
    await teacher.page.get_by_role("button", name="Add poll").click()
    await expect(teacher.page.get_by_role("list", name="Polls")).to_contain_text("Solve 2x + 3 = 7")
    await teacher.page.evaluate("window.scrollTo(0, 0)")
    await teacher.shot("class-scheduled")
    await one.page.reload()
    await open_tab(one, "Classes")
    upcoming = one.page.get_by_role("list", name="Upcoming classes")
    await upcoming.get_by_role("link", name="Lesson 1: linear equations").click()
    await expect(one.page.get_by_text("Waiting for the teacher to start the class…")).to_be_visible()
    await expect(one.page.get_by_text("No poll yet.")).to_be_visible()

    errors = [error for someone in people for error in someone.errors]
    assert errors == []


async def test_chat_log_holds_early_messages_and_drops_duplicates(browser: Any, base_url: str) -> None:
    """ChatLog, the client's ordering rule, run in the browser: out-of-order seqs wait, repeats are dropped."""
    page = await (await browser.new_context()).new_page()
    await page.goto(base_url + "/")
    released = await page.evaluate("""async () => {
        const { ChatLog } = await import('/static/chat_log.js');
        const m = (seq) => ({ seq, body: `m${seq}` });
        const log = new ChatLog();
        const out = [];
        const seqs = (list) => list.map((x) => x.seq);
        out.push(seqs(log.acceptLive(m(5))));                      // before the join reply: held
        const join = log.acceptJoin({ messages: [m(3), m(4)], last_seq: 4, gap: false });
        out.push(seqs(join.released), join.reset);                 // 3, 4, then the held 5
        out.push(seqs(log.acceptLive(m(5))));                      // a duplicate
        out.push(seqs(log.acceptLive(m(7))));                      // early: waits for 6
        out.push(seqs(log.acceptLive(m(6))));                      // 6 releases 7
        const again = log.acceptJoin({ messages: [m(7), m(8)], last_seq: 8, gap: false });
        out.push(seqs(again.released), again.reset, log.lastSeq);  // reconnect: only 8 is new
        return out;
    }""")
    assert released == [[], [3, 4, 5], True, [], [], [6, 7], [8], False, 8]


# Every RTCPeerConnection a page makes, so a test can read its getStats() (the page's own code is untouched).
RECORD_PEER_CONNECTIONS = """(() => {
  const Native = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__peerConnections.push(this); }
  };
  // Error toasts come and go: every one shown is kept here, for the test to read.
  window.__errorToasts = [];
  new MutationObserver((changes) => {
    for (const change of changes) {
      for (const node of change.addedNodes) {
        if (node.classList?.contains('toast-error')) window.__errorToasts.push(node.textContent);
      }
    }
  }).observe(document, { childList: true, subtree: true });
})();"""

# getStats() of the video someone's tile shows: frames decoded on the inbound RTP stream carrying that track.
FRAMES_DECODED = """async (name) => {
  const tile = [...document.querySelectorAll('li.tile')].find((t) => t.getAttribute('aria-label') === name);
  const track = tile?.querySelector('video')?.srcObject?.getVideoTracks()[0];
  if (!track) return 0;
  for (const pc of window.__peerConnections) {
    if (pc.connectionState === 'closed') continue;
    for (const stat of (await pc.getStats()).values()) {
      if (stat.type === 'inbound-rtp' && stat.kind === 'video' && stat.trackIdentifier === track.id) {
        return stat.framesDecoded ?? 0;
      }
    }
  }
  return 0;
}"""

# getStats(): audio packets received, over every inbound audio stream of the page.
AUDIO_PACKETS = """async () => {
  let total = 0;
  for (const pc of window.__peerConnections) {
    if (pc.connectionState === 'closed') continue;
    for (const stat of (await pc.getStats()).values()) {
      if (stat.type === 'inbound-rtp' && stat.kind === 'audio') total += stat.packetsReceived ?? 0;
    }
  }
  return total;
}"""


async def rising(someone: Person, script: str, arg: Any = None, *, by: int = 10) -> None:
    """What ``script`` counts keeps increasing: by ``by`` within the wait, then again (it flows, not just arrived).

    Polled from here: ``page.wait_for_function`` takes the promise an async predicate returns for a truthy value,
    so it would return at once whatever getStats() said."""
    for _ in range(2):
        before = await someone.page.evaluate(script, arg)
        deadline = asyncio.get_running_loop().time() + WAIT_MS / 1000
        now = before
        while now < before + by:
            assert asyncio.get_running_loop().time() < deadline, (
                f"{someone.name}: {script.splitlines()[0]} ({arg}) went from {before} to {now}, not by {by}"
            )
            await asyncio.sleep(0.2)
            now = await someone.page.evaluate(script, arg)


async def test_a_live_class(browser: Any, base_url: str) -> None:
    """A teacher runs a class for two students (one on a phone): the lobby, each student decoding the teacher's
    video, a hand and "call on" after which the teacher hears that student, a poll, chat, a dropped connection,
    reactions, the end, the recap in the circle's feed and the attendance report listing both students."""
    teacher = await person(browser, base_url, "Teacher Lin", viewport=LAPTOP)
    wu = await person(browser, base_url, "Student Wu", viewport=PHONE)
    ng = await person(browser, base_url, "Student Ng", viewport=LAPTOP)
    for someone in (teacher, wu, ng):
        await someone.context.grant_permissions(["camera", "microphone"])
        await someone.context.add_init_script(RECORD_PEER_CONNECTIONS)
    teacher.page.on("dialog", lambda dialog: dialog.accept())

    await sign_up(teacher)
    await teacher.page.get_by_role("link", name="Create a circle").click()
    await teacher.page.get_by_label("Name").fill("Physics evening course")
    await teacher.page.get_by_role("button", name="Create circle").click()
    await expect(teacher.page.get_by_role("heading", name="Physics evening course", level=1)).to_be_visible()
    circle_url = teacher.page.url

    # --- the students join the open circle from its page
    for student in (wu, ng):
        await sign_up(student)
        await student.page.goto(circle_url)
        await student.page.get_by_role("button", name="Join circle").click()
        await expect(student.page.get_by_text("You: Member")).to_be_visible()

    # --- the teacher schedules a class: students may use their camera; the microphone is the teacher's to grant
    await open_tab(teacher, "Classes")
    await teacher.page.get_by_text("Schedule a class").click()
    await teacher.page.get_by_label("Class title").fill("Optics")
    await teacher.page.get_by_label("Camera").check()
    await teacher.page.get_by_label("Microphone").uncheck()
    await teacher.page.get_by_label("Students start muted").uncheck()
    await teacher.page.get_by_label("Lobby: teachers admit students").check()
    await teacher.page.get_by_role("button", name="Schedule class").click()
    await expect(teacher.page.get_by_text("The class has not started.")).to_be_visible()
    class_url = teacher.page.url

    # --- Wu waits for the start, then in the lobby until the teacher admits them; Ng arrives once it is live
    await wu.page.goto(class_url)
    await expect(wu.page.get_by_text("Waiting for the teacher to start the class…")).to_be_visible()
    await teacher.page.get_by_role("button", name="Start class").click()
    await expect(teacher.page.get_by_role("status").filter(has_text="You are in the class.")).to_be_visible()
    await expect(wu.page.get_by_text("You are in the lobby: a teacher will let you in.")).to_be_visible()
    lobby = teacher.page.get_by_role("list", name="Lobby")
    await lobby.get_by_role("button", name="Admit Student Wu").click()
    await expect(wu.page.get_by_role("status").filter(has_text="You are in the class.")).to_be_visible()
    await ng.page.reload()  # Ng is on the circle's page (joined it): opened now, it shows the way into the class
    await ng.page.get_by_role("link", name="Join Optics").click()
    await expect(ng.page.get_by_text("You are in the lobby: a teacher will let you in.")).to_be_visible()
    await lobby.get_by_role("button", name="Admit Student Ng").click()
    await expect(ng.page.get_by_role("status").filter(has_text="You are in the class.")).to_be_visible()
    await expect(teacher.page.get_by_text("Nobody is waiting.")).to_be_visible()
    teachers_tile = wu.page.get_by_role("list", name="Teachers").get_by_role("listitem", name="Teacher Lin")
    await expect(teachers_tile).to_be_visible()
    await expect(wu.page.get_by_role("button", name="Turn on microphone")).to_be_disabled()  # not granted

    # --- the teacher's camera through the relay: each student's page decodes it (getStats, framesDecoded rising)
    await teacher.page.get_by_role("button", name="Turn on camera").click()
    for student in (wu, ng):
        await rising(student, FRAMES_DECODED, "Teacher Lin")

    # --- self view and a student's camera: Wu's fake camera in their own tile, and on the teacher's page
    await wu.page.get_by_role("button", name="Turn on camera").click()
    own_tile = wu.page.get_by_role("list", name="Participants").get_by_role("listitem", name="Student Wu (you)")
    await expect(own_tile.locator("video")).to_be_visible()
    await expect(wu.page.get_by_role("button", name="Turn off camera")).to_have_attribute("aria-pressed", "true")
    await expect(wu.page.get_by_role("button", name="Share screen")).to_be_disabled()
    await rising(teacher, FRAMES_DECODED, "Student Wu")
    await rising(wu, FRAMES_DECODED, "Teacher Lin")  # publishing did not stop what Wu receives

    # --- a hand; the teacher calls on Wu, which grants the microphone, and then hears Wu
    assert await teacher.page.evaluate(AUDIO_PACKETS) == 0  # nobody but the teacher may speak yet
    await wu.page.get_by_role("button", name="Raise hand").click()
    queue = teacher.page.get_by_role("list", name="Hand queue")
    await expect(queue).to_contain_text("Student Wu")
    await teacher.shot("live-class-teacher")
    await queue.get_by_role("button", name="Call on").click()
    called = wu.page.get_by_text("The teacher called on you: you may turn on your microphone.")
    await expect(called).to_be_visible()
    await expect(teacher.page.get_by_text("No hand is raised.")).to_be_visible()
    await wu.page.get_by_role("button", name="Turn on microphone").click()
    await rising(teacher, AUDIO_PACKETS, by=25)  # Wu's voice (Chromium's fake microphone) reaches the teacher
    await rising(ng, AUDIO_PACKETS, by=25)  # and the class
    await rising(ng, FRAMES_DECODED, "Teacher Lin")

    # --- a poll: created and opened by the teacher, answered by both students, closed with results for everyone
    await teacher.page.get_by_text("Create a poll").click()
    await teacher.page.get_by_label("New poll question").fill("Which colour bends most in a prism?")
    await teacher.page.get_by_label("Options (one per line)").fill("Red\nViolet")
    await teacher.page.get_by_role("button", name="Create poll").click()
    await teacher.page.get_by_role("button", name="Open poll: Which colour bends most in a prism?").click()
    for student, choice in ((wu, "Violet"), (ng, "Red")):
        await student.page.get_by_label(choice).check()
        await student.page.get_by_role("button", name="Answer").click()
        await expect(student.page.get_by_text("Your answer is in.")).to_be_visible()
    polls = teacher.page.get_by_role("list", name="Class polls")
    await expect(polls).to_contain_text("2 answered")
    await teacher.page.get_by_role("button", name="Close poll").click()
    await expect(wu.page.get_by_text("Violet (your answer)")).to_be_visible()
    await expect(ng.page.get_by_text("Red (your answer)")).to_be_visible()

    # --- class chat both ways, and a reaction
    box = wu.page.get_by_role("textbox", name="Class message")
    await box.fill("Violet, I think!")
    await box.press("Enter")
    await expect(teacher.page.get_by_role("list", name="Class chat messages")).to_contain_text("Violet, I think!")
    await teacher.page.get_by_role("textbox", name="Class message").fill("Correct.")
    await teacher.page.get_by_role("textbox", name="Class message").press("Enter")
    await expect(wu.page.get_by_role("list", name="Class chat messages").get_by_text("Correct.")).to_have_count(1)
    # --- Wu's connection drops for a while: the seat waits; the chat catches up once
    await wu.context.set_offline(True)
    await expect(wu.page.get_by_role("status").filter(has_text="You are offline")).to_be_visible()
    wus_tile = teacher.page.get_by_role("list", name="Participants").get_by_role("listitem", name="Student Wu")
    await expect(wus_tile.get_by_text("Away")).to_be_visible()
    await teacher.page.get_by_role("textbox", name="Class message").fill("Page 42, everyone.")
    await teacher.page.get_by_role("textbox", name="Class message").press("Enter")
    await expect(teacher.page.get_by_role("list", name="Class chat messages")).to_contain_text("Page 42, everyone.")
    await wu.context.set_offline(False)
    class_chat = wu.page.get_by_role("list", name="Class chat messages")
    await expect(class_chat.get_by_text("Page 42, everyone.")).to_have_count(1)
    await expect(wus_tile.get_by_text("Away")).to_be_hidden()
    # Back with a new connection and a new peer on the relay: Wu publishes again and receives again.
    await rising(teacher, FRAMES_DECODED, "Student Wu")
    await rising(wu, FRAMES_DECODED, "Teacher Lin")
    await expect(class_chat.get_by_role("listitem")).to_have_count(3)
    await wu.page.get_by_role("button", name="Clap").click()
    await expect(teacher.page.get_by_text("👏 1")).to_be_visible()
    await wu.shot("live-class-student")
    for someone in (teacher, wu, ng):
        shown = await someone.page.evaluate("window.__errorToasts")
        assert [text for text in shown if "Media" in text] == [], f"{someone.name} saw media errors: {shown}"

    # --- the teacher ends the class: all see it ended; the register lists both students; the recap is in the feed
    await teacher.page.get_by_role("button", name="End class").click()
    for someone in (teacher, wu, ng):
        await expect(someone.page.get_by_text("This class has ended.")).to_be_visible()
    report = teacher.page.get_by_role("table").filter(has_text="Students")
    for name in ("Student Wu", "Student Ng"):
        await expect(report.get_by_role("row", name=re.compile(name))).to_be_visible()
    await expect(report.get_by_role("row", name=re.compile("Absent"))).to_have_count(0)
    await expect(teacher.page.get_by_role("link", name="Download CSV")).to_be_visible()
    await teacher.shot("class-ended-attendance")
    await ng.page.get_by_role("link", name=re.compile("^Read the recap in the circle")).click()
    recap = ng.page.get_by_role("article").filter(has_text="Class recap: Optics")
    await expect(recap).to_contain_text("Attended: 2 of 2 students")
    await expect(recap).to_contain_text("Violet: 1")
    await ng.shot("class-recap")

    assert [*teacher.errors, *wu.errors, *ng.errors] == []
