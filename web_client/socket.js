// The hub connection (Socket.IO): one per signed-in tab (and one more to a class's media node, when another
// process carries its media: see class/media_link.js), with our own reconnection loop.
//
// Socket.IO's built-in reconnection is off because every (re)connect needs a fresh token from
// POST /api/socket-token (tokens live about a minute, and a cookie alone never opens a socket). The loop here
// fetches a token, connects, and on any loss retries with backoff; listeners registered with onConnect() run
// after every successful (re)connect, which is where circle chats send join_circle with their last_seq.
//
// States: 'idle' (not started), 'connecting' (first attempt), 'connected', 'reconnecting' (lost, retrying),
// 'offline' (the browser reports no network), 'signed_out' (the HTTP session is gone; nothing to retry).

import { io } from './vendor/socket.io.esm.min.js';
import * as api from './api.js';

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const ACK_TIMEOUT_MS = 10000;

/** A refused hub request: code is the server's error code, or 'offline' / 'timeout' from here. */
export class HubError extends Error {
  constructor(code, message, details = null) {
    super(message);
    this.name = 'HubError';
    this.code = code;
    this.details = details;
  }
}

/** Socket.IO's path under a base URL: https://school.example/node/2/ -> /node/2/socket.io/ */
function socketPath(url) {
  return `${new URL(url).pathname.replace(/\/+$/, '')}/socket.io/`;
}

export class Hub {
  /** url: another process to connect to (a class's media node, docs/media.md); by default this page's server. */
  constructor({ url = null } = {}) {
    this.url = url;
    this.state = 'idle';
    this.attempt = 0;
    this.socket = null;
    this.retryTimer = null;
    this.running = false;
    this.stateListeners = new Set();
    this.connectListeners = new Set();
    this.handlers = new Map(); // event -> Set of handlers, re-attached to every new socket
    this.onOnline = () => this.retryNow();
    this.onOffline = () => this.wentOffline();
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.setState('connecting');
    this.connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.dropSocket();
    this.setState('idle');
  }

  get connected() {
    return this.state === 'connected';
  }

  /** This connection's id on the server (a new one after every reconnect). */
  get connectionId() {
    return this.connected ? this.socket?.id ?? null : null;
  }

  onState(listener) {
    this.stateListeners.add(listener);
    listener(this.state, this);
    return () => this.stateListeners.delete(listener);
  }

  /** Runs after every successful connect and reconnect (and at once if connected now). */
  onConnect(listener) {
    this.connectListeners.add(listener);
    if (this.connected) listener();
    return () => this.connectListeners.delete(listener);
  }

  /** Listen to a server push; returns a function that stops listening. */
  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(handler);
    this.socket?.on(event, handler);
    return () => {
      this.handlers.get(event)?.delete(handler);
      this.socket?.off(event, handler);
    };
  }

  /** Send a request and wait for its ack: resolves with the ack, rejects with a HubError. */
  async call(event, payload, { timeout = ACK_TIMEOUT_MS } = {}) {
    if (!this.connected || !this.socket) throw new HubError('offline', 'Not connected to the live server.');
    let ack;
    try {
      ack = await this.socket.timeout(timeout).emitWithAck(event, payload);
    } catch {
      throw new HubError('timeout', 'The live server did not answer in time.');
    }
    if (!ack || ack.ok !== true) {
      const error = ack?.error ?? {};
      throw new HubError(error.code ?? 'internal', error.message ?? 'The request was refused.', error.details);
    }
    return ack;
  }

  retryNow() {
    if (!this.running || this.connected || this.state === 'signed_out') return;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.setState('reconnecting');
    this.connect();
  }

  // --- internals ---

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    for (const listener of this.stateListeners) listener(state, this);
  }

  wentOffline() {
    if (!this.running) return;
    clearTimeout(this.retryTimer);
    this.dropSocket();
    this.setState('offline');
  }

  dropSocket() {
    if (!this.socket) return;
    const socket = this.socket;
    this.socket = null;
    socket.removeAllListeners();
    socket.disconnect();
  }

  scheduleRetry() {
    if (!this.running) return;
    this.dropSocket();
    if (navigator.onLine === false) {
      this.setState('offline');
      return;
    }
    this.setState(this.attempt === 0 && this.state === 'connecting' ? 'connecting' : 'reconnecting');
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), base / 2 + Math.random() * base);
  }

  async connect() {
    if (!this.running) return;
    this.dropSocket();
    let token;
    try {
      ({ token } = await api.post('/api/socket-token'));
    } catch (error) {
      if (error.status === 401) {
        this.running = false;
        this.setState('signed_out');
      } else {
        this.scheduleRetry();
      }
      return;
    }
    if (!this.running) return;
    // forceNew: every attempt gets its own Manager, so nothing of a dead connection is reused.
    const options = { autoConnect: false, reconnection: false, forceNew: true, auth: { token } };
    const socket = this.url ? io(this.url, { ...options, path: socketPath(this.url) }) : io(options);
    this.socket = socket;
    for (const [event, handlers] of this.handlers) for (const handler of handlers) socket.on(event, handler);
    socket.on('connect', () => {
      if (socket !== this.socket) return;
      this.attempt = 0;
      this.setState('connected');
      for (const listener of this.connectListeners) listener();
    });
    socket.on('connect_error', () => {
      // Refused (expired or invalid token) or unreachable: either way a new token and a new attempt.
      if (socket === this.socket) this.scheduleRetry();
    });
    socket.on('disconnect', () => {
      if (socket === this.socket) this.scheduleRetry();
    });
    socket.connect();
  }
}

export const hub = new Hub();
