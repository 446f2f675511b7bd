// The ordered, gap-free record of one circle's chat as this client has seen it. Pure logic, no DOM, no socket.
//
// Sequence numbers are gapless per circle, so the log knows exactly what is missing: `contiguous` is the highest
// seq up to which everything has been applied. A message numbered above contiguous + 1 is held until the ones
// before it arrive; one at or below contiguous is a duplicate and dropped. Until the first join_circle reply
// tells where the circle stands, every live message is held.

export class ChatLog {
  constructor() {
    this.messages = new Map(); // seq -> message, what is shown
    this.held = new Map(); // seq -> message, arrived early
    this.contiguous = null; // null until the first join reply
    this.firstLoaded = null; // lowest seq shown, for paging back over HTTP
  }

  /** The join_circle ack. Returns {released, reset}: reset means throw away what is shown and show `released`. */
  acceptJoin(ack) {
    const reset = this.contiguous === null || ack.gap === true;
    if (reset) {
      this.messages.clear();
      this.firstLoaded = null;
    }
    const released = [];
    for (const message of ack.messages ?? []) {
      if (this.add(message)) released.push(message);
    }
    this.contiguous = Math.max(this.contiguous ?? 0, ack.last_seq ?? 0);
    released.push(...this.drain());
    released.sort((a, b) => a.seq - b.seq);
    return { released, reset };
  }

  /** A live message (message_posted, or the message in a send ack). Returns the messages now in order to show. */
  acceptLive(message) {
    if (this.contiguous === null || message.seq > this.contiguous + 1) {
      if (!this.messages.has(message.seq)) this.held.set(message.seq, message);
      return [];
    }
    if (message.seq <= this.contiguous) return [];
    this.add(message);
    this.contiguous = message.seq;
    return [message, ...this.drain()];
  }

  /** Older messages fetched over HTTP (newest first, as the API returns them). Returns them oldest first. */
  acceptHistory(olderNewestFirst) {
    const added = [];
    for (const message of olderNewestFirst) if (this.add(message)) added.push(message);
    return added.sort((a, b) => a.seq - b.seq);
  }

  /** An edit or a deletion: replace the shown copy. Returns true if the message is shown. */
  update(message) {
    if (!this.messages.has(message.seq)) {
      if (this.held.has(message.seq)) this.held.set(message.seq, message);
      return false;
    }
    this.messages.set(message.seq, message);
    return true;
  }

  /** The seq to send as last_seq when joining again: everything up to it has been seen. */
  get lastSeq() {
    return this.contiguous;
  }

  get hasHeld() {
    return this.held.size > 0;
  }

  get lastShownSeq() {
    let last = 0;
    for (const seq of this.messages.keys()) last = Math.max(last, seq);
    return last;
  }

  add(message) {
    if (this.messages.has(message.seq)) return false;
    this.messages.set(message.seq, message);
    this.firstLoaded = this.firstLoaded === null ? message.seq : Math.min(this.firstLoaded, message.seq);
    return true;
  }

  drain() {
    const released = [];
    for (const seq of [...this.held.keys()]) if (seq <= this.contiguous) this.held.delete(seq);
    while (this.held.has(this.contiguous + 1)) {
      const next = this.held.get(this.contiguous + 1);
      this.held.delete(next.seq);
      this.add(next);
      this.contiguous = next.seq;
      released.push(next);
    }
    return released;
  }
}
