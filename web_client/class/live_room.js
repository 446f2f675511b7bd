// The live room of a class: the video grid (teacher large, students as tiles, self view), one's own microphone,
// camera and screen within what the room allows, hands, reactions, polls and the class chat; for teachers and
// assistants the lobby, start / end, lock, mute (all), media grants, the hand queue with "call on", removal and
// the poll controls. Everything travels over the hub (docs/protocol.md, "Live classes"); on every reconnect the
// room is joined again with the chat's last_seq, so the seat, hands and chat carry on.

import { h, replace } from '../dom.js';
import { hub } from '../socket.js';
import { act, badge, toast } from '../ui.js';
import { RoomState } from './room_state.js';
import { LocalMedia } from './media.js';
import { MediaLink } from './media_link.js';
import { classChat } from './class_chat.js';
import { pollPanel } from './live_polls.js';

export const REACTIONS = [
  ['clap', '👏', 'Clap'], ['thumbs_up', '👍', 'Thumbs up'], ['heart', '❤️', 'Heart'], ['laugh', '😂', 'Laugh'],
  ['surprised', '😮', 'Surprised'], ['confused', '😕', 'Confused'], ['faster', '⏩', 'Faster, please'],
  ['slower', '🐢', 'Slower, please'],
];
const MEDIA_LABEL = { microphone: 'Microphone', camera: 'Camera', screen: 'Screen' };
const MEDIA_ICON = { microphone: '🎤', camera: '📷', screen: '🖥️' };
const LEFT_REASON = {
  removed: 'A teacher removed you from this class.',
  denied: 'A teacher did not admit you this time. You may ask again.',
  left_circle: 'You are no longer a member of this circle.',
};

export function mount(el, ctx) {
  const { lesson, me } = ctx;
  const classId = lesson.id;
  const state = new RoomState(me.id);
  const offs = [];
  let out = null; // why this connection is out of the room, when it is
  const link = new MediaLink(hub, classId, {
    onRemote: () => { renderGrid(); renderControls(); },
    onProblem: (text) => toast(text, 'error'),
  });
  const media = new LocalMedia({ link, onChange: () => renderControls() });
  const remoteViews = new Map(); // user_id -> {video, audio}: kept across renders so playback never restarts
  let mediaConnection = null; // the hub connection the relay peer belongs to

  // --- layout ---
  const status = h('p', { class: 'room-status', role: 'status' });
  const staffBar = h('div', { class: 'row room-staff', role: 'group', 'aria-label': 'Class controls' });
  const stage = h('ul', { class: 'stage', 'aria-label': 'Teachers' });
  const tiles = h('ul', { class: 'tiles', 'aria-label': 'Participants' });
  const reactionsShown = h('div', { class: 'reactions-shown', 'aria-live': 'polite' });
  const myControls = h('div', { class: 'my-controls', role: 'group', 'aria-label': 'Your microphone, camera and screen' });
  const reactionBar = h('div', { class: 'reaction-bar', role: 'group', 'aria-label': 'React' });
  const hands = h('section', { class: 'card room-panel', 'aria-labelledby': `hands-${classId}` });
  const lobby = h('section', { class: 'card room-panel', 'aria-labelledby': `lobby-${classId}`, hidden: true });
  const polls = pollPanel({ hub, classId, state, lesson });
  const chat = classChat({ hub, classId, me });
  const selfVideo = h('video', { autoplay: true, muted: true, playsinline: true, class: 'self-video' });
  selfVideo.muted = true;
  const audioBox = h('div', { class: 'visually-hidden', 'aria-hidden': 'true' });
  const room = h('section', { class: 'live-room', 'aria-label': 'Live room' }, audioBox,
    h('div', { class: 'room-bar' }, status, staffBar),
    h('div', { class: 'room-layout' },
      h('div', { class: 'room-main' },
        h('div', { class: 'room-grid' }, stage, tiles, reactionsShown),
        h('div', { class: 'room-actions' }, myControls, reactionBar)),
      h('div', { class: 'room-side' }, lobby, hands, polls.el, chat.el)));
  el.append(room);

  // --- joining ---
  async function join() {
    if (out) return;
    let ack;
    try {
      ack = await hub.call('join_class', { class_id: classId, last_seq: chat.lastSeq });
    } catch (error) {
      if (error.code === 'class_ended' || error.code === 'class_cancelled') {
        ctx.reload();
        return;
      }
      if (error.code === 'offline') return;
      out = error.message;
      render();
      if (error.code === 'room_locked' || error.code === 'room_full') {
        status.append(' ', h('button', { type: 'button', onclick: () => { out = null; join(); } }, 'Try again'));
      }
      return;
    }
    state.applyJoin(ack);
    chat.accept(ack.chat);
    polls.opened(ack.poll);
    pollKey = null;
    render();
    startMedia();
  }

  /** Once seated in the live class, on every new hub connection: a peer with the relay (docs/media.md). */
  function startMedia() {
    if (out || state.placement !== 'joined' || state.phase !== 'live') return;
    if (mediaConnection === hub.connectionId) return;
    mediaConnection = hub.connectionId;
    link.restart();
  }

  const on = (event, handler) => offs.push(hub.on(event, (payload) => {
    if (payload && payload.class_id === classId) handler(payload);
  }));
  on('class_started', ({ room: snapshot, names }) => { state.applyNames(names); state.applySnapshot(snapshot); join(); });
  on('class_admitted', () => join());
  on('class_ended', () => { toast('The class has ended.'); ctx.reload(); });
  on('class_left', ({ reason }) => {
    if (reason === 'ended') return; // class_ended reloads the page
    out = LEFT_REASON[reason] ?? 'You left the class.';
    media.close();
    link.close();
    render();
  });
  on('participant_joined', ({ participant, name }) => { state.joined(participant, name); render(); });
  on('participant_left', ({ user_id: userId }) => { state.left(userId); render(); });
  on('participants_changed', ({ participants }) => { state.changed(participants); render(); });
  on('hands_changed', ({ hands: raised }) => { state.hands = raised; render(); });
  on('called_on', ({ user_id: userId }) => {
    if (userId === me.id) toast('The teacher called on you: you may turn on your microphone.');
  });
  on('class_locked', ({ locked }) => { state.locked = locked; render(); });
  on('lobby_changed', (payload) => { state.lobbyChanged(payload); render(); });
  on('reactions', ({ counts }) => showReactions(counts));
  for (const event of ['poll_created', 'poll_opened', 'poll_results', 'poll_closed']) {
    on(event, ({ poll }) => { state.pollSeen(poll); polls.render(); });
  }
  on('class_message_posted', (message) => chat.live(message));
  offs.push(hub.onConnect(() => join()));
  offs.push(hub.onState((connection) => { room.dataset.connection = connection; }));

  // --- rendering ---
  let pollKey = null;
  function render() {
    renderStatus();
    renderStaffBar();
    renderGrid();
    renderControls();
    renderHands();
    renderLobby();
    // The poll panel holds forms being filled in: redraw it only when what it offers changes.
    const key = `${state.role}/${state.placement}/${state.phase}/${out}`;
    if (key !== pollKey) {
      pollKey = key;
      polls.render();
    }
    chat.setEnabled(state.placement === 'joined' && state.phase === 'live' && !out);
  }

  let lastPhase = null;
  function renderStatus() {
    if (state.phase !== lastPhase) {
      lastPhase = state.phase;
      ctx.onPhase?.(state.phase);
    }
    const texts = {
      waiting_for_start: state.isStaff ? 'The class has not started.' : 'Waiting for the teacher to start the class…',
      lobby: 'You are in the lobby: a teacher will let you in.',
      joined: state.phase === 'live' ? 'You are in the class.' : 'You are in the room; the class has not started.',
    };
    replace(status, out ?? texts[state.placement] ?? 'Joining the class…',
      state.phase === 'live' ? [' ', badge('Live', 'live')] : null,
      state.locked ? [' ', badge('Locked', 'warn')] : null,
      state.role ? [' ', badge(`You: ${state.role}`, 'role')] : null);
  }

  function control(label, handler, props = {}) {
    const button = h('button', { type: 'button', ...props }, label);
    button.addEventListener('click', () => act(button, handler));
    return button;
  }

  function call(event, payload = {}) {
    return hub.call(event, { class_id: classId, ...payload }).then((ack) => {
      if (ack.room) {
        state.applySnapshot(ack.room);
        render();
      }
      return ack;
    });
  }

  function renderStaffBar() {
    staffBar.replaceChildren();
    if (out || !state.isStaff) return;
    const live = state.phase === 'live';
    if (state.role === 'teacher' && state.phase === 'scheduled') {
      staffBar.append(control('Start class', () => call('start_class'), { class: 'primary' }));
    }
    if (live) {
      staffBar.append(
        control(state.locked ? 'Unlock class' : 'Lock class', () => call('lock_class', { locked: !state.locked })),
        control('Mute all', () => call('mute_all')));
    }
    if (state.role === 'teacher' && live) {
      staffBar.append(control('End class', async () => {
        if (!confirm('End the class for everyone?')) return;
        await call('end_class');
      }, { class: 'danger' }));
    }
  }

  function renderGrid() {
    const teachers = [];
    const others = [];
    for (const participant of state.orderedParticipants()) {
      (participant.role === 'teacher' ? teachers : others).push(tile(participant));
    }
    replace(stage, teachers.length ? teachers : h('li', { class: 'tile empty-tile' }, h('p', { class: 'muted' }, 'The teacher has not joined yet.')));
    replace(tiles, others);
    for (const [userId, views] of remoteViews) {
      if (state.participants.has(userId)) continue;
      views.audio.remove();
      remoteViews.delete(userId);
    }
  }

  function tile(participant) {
    const isMe = participant.user_id === me.id;
    const name = isMe ? `${state.name(participant.user_id)} (you)` : state.name(participant.user_id);
    const handUp = state.hands.includes(participant.user_id);
    const allowed = new Set(participant.may_publish);
    let view;
    const remote = isMe ? null : remoteView(participant.user_id);
    if (isMe && media.selfVideo) {
      view = selfVideo;
      if (selfVideo.srcObject !== media.stream) selfVideo.srcObject = media.stream;
    } else if (remote) {
      view = remote;
    } else {
      const initials = name.split(/\s+/).slice(0, 2).map((w) => [...w][0] ?? '').join('').toUpperCase();
      view = h('div', { class: 'tile-placeholder', 'aria-hidden': 'true' }, initials);
    }
    const li = h('li', { class: `tile role-${participant.role}${handUp ? ' hand-up' : ''}${participant.away ? ' away' : ''}`,
      dataset: { userId: participant.user_id }, 'aria-label': name },
    h('div', { class: 'tile-view' }, view, handUp ? h('span', { class: 'tile-hand' }, '✋ Hand raised') : null),
    h('div', { class: 'tile-info' },
      h('span', { class: 'tile-name' }, name),
      participant.role !== 'student' ? badge(participant.role, 'role') : null,
      participant.away ? badge('Away') : null,
      participant.force_muted ? badge('Muted', 'warn') : null,
      h('span', { class: 'tile-media', 'aria-label': allowed.size ? `May use: ${[...allowed].map((k) => MEDIA_LABEL[k].toLowerCase()).join(', ')}` : 'May not publish' },
        ['microphone', 'camera', 'screen'].map((kind) => h('span', { class: allowed.has(kind) ? 'on' : 'off', 'aria-hidden': 'true', title: MEDIA_LABEL[kind] },
          MEDIA_ICON[kind])))));
    if (state.isStaff && participant.role === 'student' && state.phase === 'live' && !out) li.append(studentTools(participant, name, allowed));
    return li;
  }

  /** The video element showing someone's screen or camera from the relay, or null; their audio plays hidden. */
  function remoteView(userId) {
    const tracks = link.remoteTracks().get(userId) ?? {};
    let views = remoteViews.get(userId);
    if (!views) {
      views = { video: h('video', { autoplay: true, playsinline: true, class: 'remote-video' }), audio: h('audio', { autoplay: true }) };
      views.video.muted = true; // sound comes from the audio element, so autoplay is never blocked for video
      remoteViews.set(userId, views);
    }
    const show = (element, track) => {
      const current = element.srcObject?.getTracks()[0] ?? null;
      if (current === (track ?? null)) return;
      element.srcObject = track ? new MediaStream([track]) : null;
      if (track) element.play().catch(() => {});
    };
    show(views.audio, tracks.microphone);
    if (tracks.microphone && !views.audio.isConnected) audioBox.append(views.audio);
    const video = [tracks.screen, tracks.camera].find((track) => track && !track.muted) ?? null;
    show(views.video, video);
    return video ? views.video : null;
  }

  function studentTools(participant, name, allowed) {
    const userId = participant.user_id;
    const tools = h('details', { class: 'tile-tools' }, h('summary', null, `Manage ${name}`));
    const row = h('div', { class: 'row' },
      control('Call on', () => call('call_on', { user_id: userId })),
      control('Mute', () => call('mute', { user_id: userId }), { disabled: participant.force_muted }));
    for (const kind of ['microphone', 'camera', 'screen']) {
      const has = allowed.has(kind);
      row.append(control(has ? `Revoke ${MEDIA_LABEL[kind].toLowerCase()}` : `Allow ${MEDIA_LABEL[kind].toLowerCase()}`,
        () => call(has ? 'revoke_media' : 'grant_media', { user_id: userId, media: kind })));
    }
    row.append(control('Remove', async () => {
      if (!confirm(`Remove ${name} from this class?`)) return;
      await call('remove_participant', { user_id: userId });
    }, { class: 'danger' }));
    tools.append(row);
    return tools;
  }

  function renderControls() {
    myControls.replaceChildren();
    reactionBar.replaceChildren();
    if (out || state.placement !== 'joined') return;
    const allowed = state.myMedia;
    media.enforce(allowed);
    for (const kind of ['microphone', 'camera', 'screen']) {
      const onNow = media.isOn(kind);
      const label = `${onNow ? 'Turn off' : 'Turn on'} ${MEDIA_LABEL[kind].toLowerCase()}`;
      const button = h('button', { type: 'button', 'aria-pressed': String(onNow), disabled: !allowed.has(kind) && !onNow,
        title: allowed.has(kind) ? label : `${MEDIA_LABEL[kind]}: not allowed right now` },
      kind === 'screen' ? (onNow ? 'Stop sharing' : 'Share screen') : label);
      button.addEventListener('click', () => act(button, async () => {
        try {
          await media.toggle(kind);
        } catch (error) {
          throw new Error(error.name === 'NotAllowedError' ? `The browser was not allowed to use the ${kind}.` : error.message);
        }
        renderGrid();
      }));
      myControls.append(button);
    }
    if (link.audioOnly) {
      myControls.append(control('Resume video', () => link.setAudioOnly(false).then(() => renderControls())));
    }
    if (state.role === 'student' && state.phase === 'live') {
      const raised = state.hands.includes(me.id);
      myControls.append(control(raised ? 'Lower hand' : 'Raise hand',
        () => call(raised ? 'lower_hand' : 'raise_hand'), { 'aria-pressed': String(raised) }));
    }
    if (state.phase === 'live') {
      reactionBar.append(...REACTIONS.map(([kind, emoji, label]) => h('button', {
        type: 'button', class: 'reaction', 'aria-label': label, title: label,
        onclick: () => hub.call('react', { class_id: classId, kind }).catch((error) => toast(error.message, 'error')),
      }, emoji)));
    }
  }

  function renderHands() {
    const queue = state.hands;
    replace(hands, h('h2', { id: `hands-${classId}` }, `Raised hands (${queue.length})`),
      queue.length ? h('ol', { class: 'hand-queue', 'aria-label': 'Hand queue' }, queue.map((userId) => h('li', { class: 'row' },
        h('span', null, state.name(userId)),
        state.isStaff && !out ? [control('Call on', () => call('call_on', { user_id: userId })),
          control('Lower', () => call('lower_hand', { user_id: userId }))] : null)))
        : h('p', { class: 'muted' }, 'No hand is raised.'));
  }

  function renderLobby() {
    lobby.hidden = !state.isStaff || out !== null;
    if (lobby.hidden) return;
    replace(lobby, h('h2', { id: `lobby-${classId}` }, `Lobby (${state.lobby.length})`),
      state.lobby.length ? h('ul', { class: 'plain-list', 'aria-label': 'Lobby' }, state.lobby.map(({ user_id: userId, name }) =>
        h('li', { class: 'row' }, h('span', null, name),
          control(`Admit ${name}`, () => call('admit', { user_id: userId }), { class: 'primary' }),
          control('Deny', () => call('deny', { user_id: userId }))))) : h('p', { class: 'muted' }, 'Nobody is waiting.'),
      state.waiting.length ? h('p', { class: 'muted' }, `Waiting for the start: ${state.waiting.map((w) => w.name).join(', ')}`) : null);
  }

  const REACTION_EMOJI = Object.fromEntries(REACTIONS.map(([kind, emoji]) => [kind, emoji]));
  function showReactions(counts) {
    const entries = Object.entries(counts ?? {}).filter(([, n]) => n > 0);
    if (!entries.length) return;
    const bubble = h('p', { class: 'reaction-bubble' }, entries.map(([kind, n]) => `${REACTION_EMOJI[kind] ?? kind} ${n}`).join('  '));
    reactionsShown.append(bubble);
    setTimeout(() => bubble.remove(), 2500);
  }

  render();
  return {
    unmount() {
      for (const off of offs) off();
      media.close();
      link.close();
      if (hub.connected && !out) hub.call('leave_class', { class_id: classId }).catch(() => {});
    },
  };
}
