// The circle's chat panel: live over the hub, every message once and in order.
//
// On every (re)connect the panel sends join_circle with the highest contiguous seq it has seen, so the reply holds
// exactly what it missed; ChatLog drops duplicates and holds early arrivals. A message sent while the connection
// is down waits in the outbox with its client_id and is sent again when the connection is back: the server
// treats a repeated client_id as the same message, so a retry can never post twice.

import { h, replace, time } from '../dom.js';
import * as api from '../api.js';
import { ChatLog } from '../chat_log.js';
import { toast } from '../ui.js';
import { fetchRoster, shownName } from './roster.js';

const TYPING_SEND_EVERY_MS = 2000;
const TYPING_SHOWN_MS = 4000;
const HELD_REJOIN_MS = 1500; // a gap that long means the missing message will not come by broadcast
const MODERATOR_ROLES = new Set(['teacher', 'admin', 'owner']);

function newClientId() {
  return crypto.randomUUID ? crypto.randomUUID() : `c${Date.now()}${Math.random().toString(36).slice(2, 12)}`;
}

export class ChatPanel {
  constructor({ circle, me, hub, onUnread = () => {} }) {
    this.circle = circle;
    this.me = me;
    this.hub = hub;
    this.onUnread = onUnread;
    this.log = new ChatLog();
    this.items = new Map(); // seq -> <li>
    this.outbox = new Map(); // client_id -> {body, mentions, li, state}
    this.names = new Map(); // user_id -> display name in this circle
    this.online = new Set();
    this.typers = new Map(); // user_id -> timer
    this.unread = 0;
    this.readSeq = 0;
    this.firstVisibleSeq = 1;
    this.joined = false;
    this.lastTypingSent = 0;
    this.heldTimer = null;
    this.mutedUntil = null;
    this.announcement = false;
    this.removed = false;
    this.offs = [];
    this.build();
  }

  get isModerator() {
    return MODERATOR_ROLES.has(this.circle.my_role);
  }

  build() {
    this.status = h('span', { class: 'chat-status muted' });
    this.list = h('ol', { class: 'messages', 'aria-label': 'Chat messages' });
    this.empty = h('p', { class: 'muted chat-empty', hidden: true }, 'No messages yet. Say hello!');
    this.outboxList = h('ol', { class: 'messages outbox', 'aria-label': 'Messages being sent' });
    this.earlier = h('button', { type: 'button', class: 'link earlier', hidden: true, onclick: () => this.loadEarlier() },
      'Load earlier messages');
    this.scroller = h('div', { class: 'chat-scroll', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions',
      tabindex: '0', 'aria-label': 'Chat' }, this.earlier, this.empty, this.list, this.outboxList);
    this.typing = h('p', { class: 'typing muted', 'aria-live': 'polite' });
    this.notice = h('p', { class: 'chat-notice', role: 'status', hidden: true });
    this.input = h('textarea', { id: `chat-input-${this.circle.id}`, name: 'message', rows: 2, maxlength: 4000,
      placeholder: 'Message the circle… (@ to mention)', 'aria-autocomplete': 'list',
      'aria-controls': `chat-mentions-${this.circle.id}` });
    this.suggestions = h('ul', { class: 'mention-suggestions', id: `chat-mentions-${this.circle.id}`,
      'aria-label': 'Mention a member', hidden: true });
    this.sendButton = h('button', { type: 'submit', class: 'primary' }, 'Send');
    this.composer = h('form', { class: 'chat-composer', 'aria-label': 'Send a chat message' },
      h('label', { for: this.input.id, class: 'visually-hidden' }, 'Message'),
      this.suggestions, this.input, this.sendButton);
    this.composer.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener('keydown', (event) => this.onKey(event));
    this.input.addEventListener('input', () => {
      this.signalTyping();
      this.suggestMentions();
    });
    this.el = h('aside', { class: 'chat-panel', 'aria-labelledby': `chat-title-${this.circle.id}` },
      h('header', { class: 'chat-head' }, h('h2', { id: `chat-title-${this.circle.id}` }, 'Chat'), this.status),
      this.scroller, this.typing, this.notice, this.composer);
    if (this.circle.archived) this.setNotice('This circle is archived: the chat is read-only.', true);
  }

  start() {
    const mine = (handler) => (payload) => {
      if (payload && payload.circle_id === this.circle.id) handler(payload);
    };
    this.offs.push(
      this.hub.on('message_posted', mine((m) => this.onLive(m))),
      this.hub.on('message_edited', mine((m) => this.onUpdate(m))),
      this.hub.on('message_deleted', mine((m) => this.onUpdate({ ...this.log.messages.get(m.seq), ...m, deleted: true, body: '' }))),
      this.hub.on('member_typing', mine((p) => this.onTyping(p.user_id))),
      this.hub.on('presence_changed', mine((p) => this.onPresence(p))),
      this.hub.on('read_position', mine((p) => this.setUnread(p.unread, p.read_seq))),
      this.hub.on('muted', mine((p) => this.onMuted(p))),
      this.hub.on('announcement_mode_changed', mine((p) => this.onAnnouncement(p.on))),
      this.hub.on('circle_left', mine(() => this.onRemoved())),
      this.hub.on('mentioned', mine((p) => this.onMentioned(p))),
      this.hub.onState((state) => this.onHubState(state)),
      this.hub.onConnect(() => this.join()),
    );
    this.onVisibility = () => this.visibilityChanged();
    document.addEventListener('visibilitychange', this.onVisibility);
    window.addEventListener('resize', this.onVisibility);
    this.loadNames();
  }

  unmount() {
    for (const off of this.offs) off();
    this.offs = [];
    clearTimeout(this.heldTimer);
    for (const timer of this.typers.values()) clearTimeout(timer);
    document.removeEventListener('visibilitychange', this.onVisibility);
    window.removeEventListener('resize', this.onVisibility);
    if (this.hub.connected && this.joined) this.hub.call('leave_circle', { circle_id: this.circle.id }).catch(() => {});
  }

  // --- joining and receiving ---

  async join() {
    if (this.removed) return;
    let ack;
    try {
      ack = await this.hub.call('join_circle', { circle_id: this.circle.id, last_seq: this.log.lastSeq });
    } catch (error) {
      if (error.code === 'not_a_member' || error.code === 'not_found') this.onRemoved();
      else if (error.code !== 'offline') toast(`Chat: ${error.message}`, 'error');
      return;
    }
    this.joined = true;
    this.firstVisibleSeq = ack.first_visible_seq ?? 1;
    this.online = new Set(ack.online ?? []);
    const { released, reset } = this.log.acceptJoin(ack);
    if (reset) {
      this.list.replaceChildren();
      this.items.clear();
    }
    this.show(released, { fromJoin: true });
    this.empty.hidden = this.items.size > 0 || this.outbox.size > 0;
    this.setUnread(ack.unread ?? 0, ack.read_seq ?? 0);
    this.renderStatus();
    this.updateEarlier();
    this.watchHeld();
    this.flushOutbox();
    this.visibilityChanged();
  }

  onLive(message) {
    const released = this.log.acceptLive(message);
    this.show(released, { fromJoin: false });
    this.watchHeld();
  }

  onUpdate(message) {
    if (this.log.update(message)) this.renderMessage(message);
  }

  /** Put released messages on screen; count the ones that are new and not one's own as unread. */
  show(messages, { fromJoin }) {
    if (!messages.length) return;
    const stick = this.nearBottom();
    let fresh = 0;
    for (const message of messages) {
      if (this.items.has(message.seq)) continue;
      this.renderMessage(message);
      if (message.author) {
        this.names.set(message.author.user_id, message.author.name);
        this.clearTyping(message.author.user_id);
      }
      if (!fromJoin && message.author?.user_id !== this.me.id && !message.deleted) fresh += 1;
    }
    if (fresh) this.setUnread(this.unread + fresh, this.readSeq);
    if (stick || fromJoin) this.scrollToBottom();
    this.visibilityChanged();
  }

  renderMessage(message) {
    const mentionsMe = (message.mentions ?? []).includes(this.me.id);
    const mine = message.author?.user_id === this.me.id;
    const li = h('li', {
      class: ['message', mine ? 'mine' : '', mentionsMe ? 'mention' : '', message.deleted ? 'deleted' : ''].join(' ').trim(),
      dataset: { seq: message.seq },
    },
    h('p', { class: 'message-head' },
      h('span', { class: 'author' }, message.author?.name ?? 'Deleted user'), ' ', time(message.created_at),
      message.edited_at && !message.deleted ? h('span', { class: 'muted' }, ' (edited)') : null,
      mentionsMe ? h('span', { class: 'badge mention-badge' }, 'Mentions you') : null),
    h('p', { class: 'message-body' }, message.deleted ? 'Message deleted' : message.body));
    if (!message.deleted && (mine || this.isModerator) && !this.circle.archived) {
      const tools = h('span', { class: 'message-tools' });
      if (mine) {
        tools.append(h('button', {
          type: 'button', class: 'link', 'aria-label': 'Edit your message', onclick: () => this.editMessage(li, message),
        }, 'Edit'));
      }
      tools.append(h('button', {
        type: 'button', class: 'link danger', 'aria-label': `Delete message from ${message.author?.name ?? 'unknown'}`,
        onclick: () => this.hub.call('delete_message', { circle_id: this.circle.id, seq: message.seq })
          .catch((error) => toast(error.message, 'error')),
      }, 'Delete'));
      li.append(tools);
    }
    const old = this.items.get(message.seq);
    if (old) {
      old.replaceWith(li);
    } else {
      // Usually the newest: append. Earlier history is inserted before the first later item.
      let next = null;
      for (const [seq, item] of this.items) if (seq > message.seq && (!next || seq < Number(next.dataset.seq))) next = item;
      this.list.insertBefore(li, next);
    }
    this.items.set(message.seq, li);
    this.empty.hidden = true;
  }

  /** Edit one's own message in place; the edit arrives for everyone as message_edited. */
  editMessage(li, message) {
    const box = h('textarea', { class: 'edit-box', rows: 2, maxlength: 4000, 'aria-label': 'Edit your message', value: message.body });
    const save = h('button', { type: 'button', class: 'primary' }, 'Save');
    const cancel = h('button', { type: 'button', class: 'link' }, 'Cancel');
    const editor = h('div', { class: 'message-edit' }, box, h('div', { class: 'row' }, save, cancel));
    li.querySelector('.message-body').replaceWith(editor);
    cancel.addEventListener('click', () => this.renderMessage(this.log.messages.get(message.seq) ?? message));
    save.addEventListener('click', async () => {
      const body = box.value.trim();
      if (!body) return;
      save.disabled = true;
      try {
        const ack = await this.hub.call('edit_message', { circle_id: this.circle.id, seq: message.seq, body });
        this.onUpdate(ack.message);
      } catch (error) {
        toast(error.message, 'error');
        save.disabled = false;
      }
    });
    box.focus();
  }

  watchHeld() {
    clearTimeout(this.heldTimer);
    if (!this.log.hasHeld) return;
    this.heldTimer = setTimeout(() => {
      if (this.log.hasHeld && this.hub.connected) this.join();
    }, HELD_REJOIN_MS);
  }

  async loadEarlier() {
    const before = this.log.firstLoaded;
    if (!before) return;
    this.earlier.disabled = true;
    try {
      const data = await api.get(api.path`/api/circles/${this.circle.id}/messages`, { before, limit: 50 });
      this.firstVisibleSeq = data.first_visible_seq ?? this.firstVisibleSeq;
      const height = this.scroller.scrollHeight;
      for (const message of this.log.acceptHistory(data.messages)) this.renderMessage(message);
      this.scroller.scrollTop += this.scroller.scrollHeight - height;
      if (!data.next_before) this.firstVisibleSeq = Math.max(this.firstVisibleSeq, this.log.firstLoaded ?? 1);
    } catch (error) {
      toast(error.message, 'error');
    } finally {
      this.earlier.disabled = false;
      this.updateEarlier();
    }
  }

  updateEarlier() {
    const first = this.log.firstLoaded;
    this.earlier.hidden = !(first && first > this.firstVisibleSeq);
  }

  // --- sending ---

  send() {
    const body = this.input.value.trim();
    if (!body) return;
    if (this.composerBlocked()) return;
    const clientId = newClientId();
    const mentions = this.mentionsIn(body);
    const li = h('li', { class: 'message mine pending', dataset: { clientId } },
      h('p', { class: 'message-head' }, h('span', { class: 'author' }, this.me.display_name), ' ',
        h('span', { class: 'pending-state muted' }, 'Sending…')),
      h('p', { class: 'message-body' }, body));
    this.outbox.set(clientId, { body, mentions, li });
    this.outboxList.append(li);
    this.empty.hidden = true;
    this.input.value = '';
    this.hideSuggestions();
    this.scrollToBottom();
    this.deliver(clientId);
  }

  async deliver(clientId) {
    const entry = this.outbox.get(clientId);
    if (!entry || entry.inFlight) return;
    if (!this.hub.connected || !this.joined) {
      this.setPendingState(entry, 'Waiting for the connection…');
      return;
    }
    entry.inFlight = true;
    this.setPendingState(entry, 'Sending…');
    try {
      const ack = await this.hub.call('send_message', {
        circle_id: this.circle.id, client_id: clientId, body: entry.body, mentions: entry.mentions,
      });
      this.outbox.delete(clientId);
      entry.li.remove();
      this.onLive(ack.message);
    } catch (error) {
      entry.inFlight = false;
      if (error.code === 'offline' || error.code === 'timeout') {
        this.setPendingState(entry, 'Waiting for the connection…');
      } else {
        this.failPending(clientId, entry, error);
      }
    }
  }

  flushOutbox() {
    for (const clientId of this.outbox.keys()) this.deliver(clientId);
  }

  setPendingState(entry, text) {
    entry.li.querySelector('.pending-state').textContent = text;
  }

  failPending(clientId, entry, error) {
    const message = error.code === 'rate_limited' ? 'Sending too fast. Try again in a moment.' : error.message;
    entry.li.classList.add('failed');
    const state = entry.li.querySelector('.pending-state');
    replace(state, h('span', { role: 'alert' }, `Not sent: ${message}`), ' ',
      h('button', { type: 'button', class: 'link', onclick: () => { entry.li.classList.remove('failed'); this.deliver(clientId); } }, 'Retry'),
      ' ',
      h('button', { type: 'button', class: 'link', onclick: () => { this.outbox.delete(clientId); entry.li.remove(); } }, 'Discard'));
    if (error.code === 'muted') this.onMuted({ until: error.details?.until ?? null });
  }

  onKey(event) {
    if (!this.suggestions.hidden && (event.key === 'Tab' || event.key === 'Enter')) {
      const first = this.suggestions.querySelector('button');
      if (first) {
        event.preventDefault();
        first.click();
        return;
      }
    }
    if (event.key === 'Escape') this.hideSuggestions();
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.send();
    }
  }

  signalTyping() {
    const now = Date.now();
    if (!this.hub.connected || !this.joined || now - this.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    this.lastTypingSent = now;
    this.hub.call('typing', { circle_id: this.circle.id }).catch(() => {});
  }

  // --- mentions ---

  async loadNames() {
    try {
      for (const member of await fetchRoster(this.circle.id)) this.names.set(member.user_id, shownName(member));
      this.renderStatus();
      this.renderTyping();
    } catch {
      // Names also arrive with messages; mention suggestions simply stay shorter.
    }
  }

  suggestMentions() {
    const before = this.input.value.slice(0, this.input.selectionStart);
    const found = /(?:^|\s)@([^\s@]{0,30})$/.exec(before);
    if (!found) {
      this.hideSuggestions();
      return;
    }
    const prefix = found[1].toLowerCase();
    const matches = [...this.names.entries()]
      .filter(([id, name]) => id !== this.me.id && name.toLowerCase().startsWith(prefix))
      .slice(0, 6);
    if (!matches.length) {
      this.hideSuggestions();
      return;
    }
    replace(this.suggestions, matches.map(([, name]) => h('li', null, h('button', {
      type: 'button', class: 'link', onclick: () => {
        const start = this.input.selectionStart - found[1].length;
        this.input.value = `${this.input.value.slice(0, start)}${name} ${this.input.value.slice(this.input.selectionStart)}`;
        this.input.focus();
        this.hideSuggestions();
      },
    }, `@${name}`))));
    this.suggestions.hidden = false;
  }

  hideSuggestions() {
    this.suggestions.hidden = true;
    this.suggestions.replaceChildren();
  }

  mentionsIn(body) {
    const ids = [];
    for (const [id, name] of this.names) if (id !== this.me.id && body.includes(`@${name}`)) ids.push(id);
    return ids.slice(0, 20);
  }

  onMentioned(payload) {
    if (!this.isVisible()) {
      const by = this.names.get(payload.by) ?? 'Someone';
      toast(`${by} mentioned you in the chat of ${this.circle.name}.`);
    }
  }

  // --- typing, presence, read position ---

  onTyping(userId) {
    if (userId === this.me.id) return;
    clearTimeout(this.typers.get(userId));
    this.typers.set(userId, setTimeout(() => this.clearTyping(userId), TYPING_SHOWN_MS));
    this.renderTyping();
  }

  clearTyping(userId) {
    if (!this.typers.has(userId)) return;
    clearTimeout(this.typers.get(userId));
    this.typers.delete(userId);
    this.renderTyping();
  }

  renderTyping() {
    const names = [...this.typers.keys()].map((id) => this.names.get(id) ?? 'Someone');
    this.typing.textContent = names.length === 0 ? ''
      : names.length === 1 ? `${names[0]} is typing…`
        : names.length === 2 ? `${names[0]} and ${names[1]} are typing…`
          : 'Several people are typing…';
  }

  onPresence({ user_id: userId, online }) {
    if (online) this.online.add(userId);
    else this.online.delete(userId);
    this.renderStatus();
  }

  renderStatus() {
    const names = [...this.online].map((id) => this.names.get(id)).filter(Boolean);
    this.status.textContent = `${this.online.size} online`;
    this.status.title = names.join(', ');
  }

  setUnread(count, readSeq) {
    this.unread = Math.max(0, count);
    this.readSeq = Math.max(this.readSeq, readSeq ?? 0);
    this.onUnread(this.unread);
  }

  isVisible() {
    return this.el.isConnected && this.el.offsetParent !== null && document.visibilityState === 'visible';
  }

  /** Called when the panel may have come into view (tab change, resize, the page shown again). */
  visibilityChanged() {
    if (!this.joined || !this.isVisible()) return;
    const last = this.log.lastShownSeq;
    if (last > this.readSeq || this.unread > 0) this.markRead(last);
  }

  async markRead(seq) {
    if (this.marking || !seq) return;
    this.marking = true;
    try {
      const ack = await this.hub.call('mark_read', { circle_id: this.circle.id, seq });
      this.setUnread(ack.unread, ack.read_seq);
    } catch {
      // Not fatal: the count is corrected on the next join.
    } finally {
      this.marking = false;
    }
  }

  // --- moderation state ---

  onMuted({ until }) {
    this.mutedUntil = until ? new Date(until) : null;
    this.updateComposer();
  }

  onAnnouncement(on) {
    this.announcement = on;
    this.updateComposer();
  }

  onRemoved() {
    this.removed = true;
    this.joined = false;
    this.setNotice('You are no longer a member of this circle.', true);
  }

  onHubState(state) {
    if (state !== 'connected') this.joined = false;
    this.el.dataset.connection = state;
  }

  composerBlocked() {
    return this.removed || this.circle.archived || (this.mutedUntil && this.mutedUntil > new Date())
      || (this.announcement && !this.isModerator);
  }

  updateComposer() {
    if (this.mutedUntil && this.mutedUntil > new Date()) {
      this.setNotice(`You are muted in this chat until ${this.mutedUntil.toLocaleString()}.`, true);
    } else if (this.announcement && !this.isModerator) {
      this.setNotice('Announcement mode: only teachers and admins can post right now.', true);
    } else if (!this.removed && !this.circle.archived) {
      this.setNotice('', false);
    }
  }

  setNotice(text, blocked) {
    this.notice.textContent = text;
    this.notice.hidden = !text;
    this.input.disabled = blocked;
    this.sendButton.disabled = blocked;
  }

  nearBottom() {
    return this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 80;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}
