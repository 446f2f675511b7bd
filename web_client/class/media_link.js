// The connection's media with the relay (docs/media.md): one RTCPeerConnection, what this person publishes on
// sendonly transceivers, and everyone else's tracks as the relay maps them ({mid: {user_id, kind}}).
//
// Every negotiation step runs in one promise chain, so a pushed media_offer never interleaves with our own; the
// client is the polite side of glare: on negotiation_conflict it rolls back, lets the relay's offer be answered,
// then offers again. A new socket connection means a new peer on the relay: restart() builds it again and
// publishes the same tracks.
//
// With several server processes, a class's media is carried by one of them: media_join elsewhere is refused with
// use_media_node and that process's URL. The link then opens a second hub connection there, joins the class on it
// (the same seat: another device of the same person) and signals media over it; the page's own connection keeps
// carrying everything else.

import { Hub } from '../socket.js';

const GATHER_TIMEOUT_MS = 3000;

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState !== 'complete') return;
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    pc.addEventListener('icegatheringstatechange', check);
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
}

const NODE_CONNECT_TIMEOUT_MS = 10000;

/** Resolves once ``hub`` is connected; rejects after ``ms``. */
function connected(hub, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error('The class\'s media server could not be reached.')); }, ms);
    const off = hub.onState((state) => {
      if (state !== 'connected') return;
      clearTimeout(timer);
      queueMicrotask(() => off());
      resolve();
    });
  });
}

export class MediaLink {
  constructor(hub, classId, { onRemote = () => {}, onProblem = () => {} } = {}) {
    this.home = hub; // the page's hub connection, where the class is joined
    this.hub = hub; // where media is signalled: the home connection, or one to the class's media node
    this.node = null; // {hub, offs, joinedOn, awaited} of that second connection, when there is one
    this.offs = [];
    this.classId = classId;
    this.onRemote = onRemote; // called whenever the remote tracks change
    this.onProblem = onProblem; // called with a message when media fails
    this.pc = null;
    this.sending = new Map(); // kind -> {track, transceiver}
    this.wanted = new Map(); // kind -> track: what we publish, kept across restarts
    this.remote = {}; // mid -> {user_id, kind}
    this.chain = Promise.resolve();
    this.closed = false;
    this.audioOnly = false;
    this.listen(hub);
  }

  /** Take the media pushes from ``hub`` (and no longer from the one before). */
  listen(hub) {
    for (const off of this.offs) off();
    this.hub = hub;
    this.offs = [
      hub.on('media_offer', (message) => this.step(() => this.answer(message))),
      hub.on('media_tracks', (message) => {
        this.remote = message.tracks ?? this.remote;
        this.audioOnly = Boolean(message.audio_only);
        if (this.audioOnly) this.onProblem('Your connection is slow: video is paused, audio continues.');
        this.onRemote();
      }),
      hub.on('media_closed', () => {
        this.onProblem('The media connection failed; reconnecting it.');
        this.restart();
      }),
    ];
  }

  /** Run one negotiation step after the ones before it; a failure is reported, the chain goes on. */
  step(work) {
    this.chain = this.chain.then(work).catch((error) => {
      if (!this.closed) this.onProblem(`Media: ${error.message ?? error}`);
    });
    return this.chain;
  }

  call(event, payload = {}) {
    return this.hub.call(event, { class_id: this.classId, ...payload });
  }

  /** (Re)create the peer on the relay and publish what was published before. */
  restart() {
    return this.step(async () => {
      if (this.closed) return;
      if (this.pc && this.hub.connected) await this.call('media_leave').catch(() => {}); // the same connection
      this.dropPeer();
      const { ice_servers: iceServers, offer } = await this.joinMedia();
      const pc = new RTCPeerConnection({ iceServers: iceServers ?? [], bundlePolicy: 'max-bundle' });
      this.pc = pc;
      pc.addEventListener('icecandidate', (event) => {
        if (this.pc !== pc) return;
        this.call('media_candidate', { candidate: event.candidate ? event.candidate.toJSON() : null }).catch(() => {});
      });
      pc.addEventListener('track', (event) => {
        // A remote track is "muted" while no media arrives on it: tiles show it only while it flows.
        event.track.addEventListener('mute', () => this.onRemote());
        event.track.addEventListener('unmute', () => this.onRemote());
        this.onRemote();
      });
      // Others publish: the relay's first offer is in the reply, answered before we offer anything. (An offer of
      // ours made first would cross it, and Chromium would then refuse every later offer of this connection.)
      if (offer) await this.answer(offer);
      for (const [kind, track] of this.wanted) this.addSender(kind, track);
      if (this.sending.size) await this.offer();
    });
  }

  /** media_join where this class's media is carried, following use_media_node to another process. */
  async joinMedia() {
    if (this.node) await this.joinNode();
    try {
      return await this.call('media_join');
    } catch (error) {
      if (error.code !== 'use_media_node' || !error.details?.url || this.closed) throw error;
      await this.moveTo(error.details.url);
      await this.joinNode();
      return this.call('media_join');
    }
  }

  /** The media node's connection joins the class, once per connection (it reconnects on its own). */
  async joinNode() {
    const id = this.node.hub.connectionId;
    if (this.node.joinedOn === id) return;
    await this.call('join_class');
    this.node.joinedOn = id;
  }

  /** Signal media over a connection of our own to ``url`` from now on. */
  async moveTo(url) {
    if (this.node?.hub.url !== url) {
      this.closeNode();
      const hub = new Hub({ url });
      const node = { hub, offs: [], joinedOn: null, awaited: false };
      // A connect nobody waits for (a reconnect after a drop, or one after moveTo gave up waiting): join the class
      // there again and rebuild the peer, as on the home connection.
      node.offs.push(hub.onConnect(() => { if (!node.awaited && this.node === node) this.restart(); }));
      this.node = node;
      hub.start();
    }
    const node = this.node;
    this.listen(node.hub);
    node.awaited = true;
    try {
      await connected(node.hub, NODE_CONNECT_TIMEOUT_MS);
    } finally {
      node.awaited = false;
    }
  }

  closeNode() {
    if (!this.node) return;
    const { hub, offs } = this.node;
    this.node = null;
    for (const off of offs) off();
    const stop = () => hub.stop();
    if (hub.connected) hub.call('leave_class', { class_id: this.classId }).catch(() => {}).finally(stop);
    else stop();
  }

  publish(kind, track) {
    this.wanted.set(kind, track);
    return this.step(async () => {
      if (!this.pc) return; // restart() publishes it once the peer exists
      this.addSender(kind, track);
      await this.offer();
    });
  }

  unpublish(kind) {
    this.wanted.delete(kind);
    return this.step(async () => {
      const sending = this.sending.get(kind);
      if (!sending || !this.pc) return;
      this.sending.delete(kind);
      sending.transceiver.direction = 'inactive';
      await this.offer();
    });
  }

  setAudioOnly(on) {
    return this.call('media_audio_only', { on }).then(() => { this.audioOnly = on; });
  }

  addSender(kind, track) {
    const stream = new MediaStream([track]);
    const transceiver = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    this.sending.set(kind, { track, transceiver });
  }

  async offer() {
    const pc = this.pc;
    const local = await pc.createOffer();
    await pc.setLocalDescription(local);
    await gathered(pc);
    const tracks = {};
    for (const [kind, { transceiver }] of this.sending) if (transceiver.mid !== null) tracks[transceiver.mid] = kind;
    let reply;
    try {
      reply = await this.call('media_offer', { sdp: pc.localDescription.sdp, tracks });
    } catch (error) {
      if (error.code !== 'negotiation_conflict') throw error;
      await pc.setLocalDescription({ type: 'rollback' });
      this.step(() => this.offer()); // after the relay's crossing offer, queued behind this step
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    this.remote = reply.tracks ?? {};
    this.onRemote();
  }

  async answer(message) {
    const pc = this.pc;
    if (!pc) return;
    await pc.setRemoteDescription({ type: 'offer', sdp: message.sdp });
    await pc.setLocalDescription();
    await gathered(pc);
    this.remote = message.tracks ?? {};
    await this.call('media_answer', { sdp: pc.localDescription.sdp });
    this.onRemote();
  }

  /** Everyone else's live tracks: user_id -> {camera, screen, microphone} (MediaStreamTracks). */
  remoteTracks() {
    const byUser = new Map();
    if (!this.pc) return byUser;
    for (const transceiver of this.pc.getTransceivers()) {
      const owner = transceiver.mid !== null ? this.remote[transceiver.mid] : null;
      if (!owner || transceiver.currentDirection === 'inactive' || transceiver.currentDirection === 'sendonly') continue;
      if (!byUser.has(owner.user_id)) byUser.set(owner.user_id, {});
      byUser.get(owner.user_id)[owner.kind] = transceiver.receiver.track;
    }
    return byUser;
  }

  dropPeer() {
    this.sending.clear();
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
    this.remote = {};
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.offs) off();
    if (this.pc && this.hub.connected) this.call('media_leave').catch(() => {});
    this.dropPeer();
    this.closeNode();
    this.onRemote();
  }
}
