// The in-class chat: numbered per class like circle chat, so the same ChatLog keeps it in order, once.

import { h, time } from '../dom.js';
import { ChatLog } from '../chat_log.js';
import { toast } from '../ui.js';

function newClientId() {
  return crypto.randomUUID ? crypto.randomUUID() : `c${Date.now()}${Math.random().toString(36).slice(2, 12)}`;
}

export function classChat({ hub, classId, me }) {
  const log = new ChatLog();
  const list = h('ol', { class: 'messages', 'aria-label': 'Class chat messages' });
  const scroller = h('div', { class: 'chat-scroll', role: 'log', 'aria-live': 'polite', tabindex: '0', 'aria-label': 'Class chat' }, list);
  const input = h('input', { id: `class-chat-${classId}`, name: 'message', maxlength: 4000, autocomplete: 'off',
    placeholder: 'Message the class…' });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const composer = h('form', { class: 'chat-composer', 'aria-label': 'Send a message to the class' },
    h('label', { for: input.id, class: 'visually-hidden' }, 'Class message'), input, send);
  const el = h('section', { class: 'card room-panel class-chat', 'aria-labelledby': `class-chat-title-${classId}` },
    h('h2', { id: `class-chat-title-${classId}` }, 'Class chat'), scroller, composer);

  const show = (messages) => {
    const stick = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
    for (const message of messages) {
      list.append(h('li', { class: `message${message.author?.user_id === me.id ? ' mine' : ''}`, dataset: { seq: message.seq } },
        h('p', { class: 'message-head' }, h('span', { class: 'author' }, message.author?.name ?? 'Someone'), ' ', time(message.created_at)),
        h('p', { class: 'message-body' }, message.body)));
    }
    if (stick) scroller.scrollTop = scroller.scrollHeight;
  };

  composer.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = input.value.trim();
    if (!body) return;
    send.disabled = true;
    try {
      const ack = await hub.call('send_class_message', { class_id: classId, client_id: newClientId(), body });
      input.value = '';
      show(log.acceptLive(ack.message));
    } catch (error) {
      toast(error.code === 'rate_limited' ? 'Sending too fast. Try again in a moment.' : error.message, 'error');
    } finally {
      send.disabled = false;
    }
  });

  return {
    el,
    get lastSeq() {
      return log.lastSeq;
    },
    accept(chat) {
      if (!chat) return;
      const { released, reset } = log.acceptJoin(chat);
      if (reset) list.replaceChildren();
      show(released);
    },
    live(message) {
      show(log.acceptLive(message));
    },
    setEnabled(enabled) {
      input.disabled = !enabled;
      send.disabled = !enabled;
      input.placeholder = enabled ? 'Message the class…' : 'The class chat opens when you are in the live class.';
    },
  };
}
