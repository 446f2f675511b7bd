// The live room as this client knows it: the snapshot from join_class, kept current by the room's pushes.
// Pure state, no DOM: the view reads it after every change.

export class RoomState {
  constructor(meId) {
    this.meId = meId;
    this.role = null; // teacher | assistant | student | observer
    this.placement = null; // waiting_for_start | lobby | joined
    this.phase = 'scheduled';
    this.locked = false;
    this.participants = new Map(); // user_id -> Participant
    this.hands = [];
    this.lobby = []; // [{user_id, name}] (teachers)
    this.waiting = [];
    this.names = new Map();
    this.poll = null; // the open poll, as this person sees it
    this.polls = new Map(); // teachers: every poll of the class by id
  }

  get isStaff() {
    return this.role === 'teacher' || this.role === 'assistant';
  }

  get me() {
    return this.participants.get(this.meId) ?? null;
  }

  /** What this person may publish now (empty unless seated in a live class). */
  get myMedia() {
    return new Set(this.me?.may_publish ?? []);
  }

  name(userId) {
    return this.names.get(userId) ?? `Participant ${userId}`;
  }

  applyJoin(ack) {
    this.role = ack.role;
    this.placement = ack.placement;
    this.applyNames(ack.names);
    this.applySnapshot(ack.room);
    this.poll = ack.poll ?? null;
  }

  applyNames(names) {
    for (const [id, name] of Object.entries(names ?? {})) this.names.set(Number(id), name);
  }

  applySnapshot(room) {
    if (!room) return;
    this.phase = room.phase;
    this.locked = room.locked;
    this.participants = new Map(room.participants.map((p) => [p.user_id, p]));
    this.hands = [...room.hands];
    const named = (id) => ({ user_id: id, name: this.name(id) });
    if (room.lobby) this.lobby = room.lobby.map(named);
    if (room.waiting) this.waiting = room.waiting.map(named);
    if (this.participants.has(this.meId)) this.placement = 'joined';
    else if (room.lobby.includes(this.meId)) this.placement = 'lobby';
  }

  joined(participant, name) {
    this.participants.set(participant.user_id, participant);
    if (name) this.names.set(participant.user_id, name);
  }

  left(userId) {
    this.participants.delete(userId);
    this.hands = this.hands.filter((id) => id !== userId);
  }

  changed(participants) {
    for (const p of participants) this.participants.set(p.user_id, p);
  }

  lobbyChanged({ lobby, waiting }) {
    this.lobby = lobby ?? [];
    this.waiting = waiting ?? [];
    for (const entry of [...this.lobby, ...this.waiting]) this.names.set(entry.user_id, entry.name);
  }

  pollSeen(pushed) {
    // Broadcasts carry the poll as the room sees it; one's own answer comes only in one's own acks: keep it.
    const known = this.poll && this.poll.id === pushed.id ? this.poll : null;
    const poll = pushed.my_answer == null && known?.my_answer ? { ...pushed, my_answer: known.my_answer } : pushed;
    if (this.isStaff) this.polls.set(poll.id, poll);
    if (poll.state === 'open') this.poll = poll;
    else if (this.poll && this.poll.id === poll.id) this.poll = poll;
  }

  /** The teacher first, then the other staff, then students in the order they sit, observers last. */
  orderedParticipants() {
    const rank = { teacher: 0, assistant: 1, student: 2, observer: 3 };
    return [...this.participants.values()].sort((a, b) => (rank[a.role] ?? 9) - (rank[b.role] ?? 9));
  }
}
