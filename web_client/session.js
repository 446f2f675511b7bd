// Who is signed in. Everything else asks here, and listens for changes (sign in, sign out, profile edits).

import * as api from './api.js';

let currentUser = null;
const listeners = new Set();

export function me() {
  return currentUser;
}

export function onChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function set(user) {
  const changedIdentity = (currentUser?.id ?? null) !== (user?.id ?? null);
  currentUser = user;
  for (const listener of listeners) listener(user, changedIdentity);
}

/** At start-up: the cookie session, if there is one. Returns the user or null. */
export async function restore() {
  try {
    const data = await api.get('/api/me');
    api.setCsrfToken(data.csrf_token);
    set(data.user);
  } catch (error) {
    if (error.status !== 401) throw error;
    set(null);
  }
  return currentUser;
}

export async function signIn(email, password) {
  const data = await api.post('/api/auth/login', { email, password });
  api.setCsrfToken(data.csrf_token);
  set(data.user);
  return data.user;
}

export async function signUp(displayName, email, password) {
  const data = await api.post('/api/auth/register', { display_name: displayName, email, password });
  api.setCsrfToken(data.csrf_token);
  set(data.user);
  return data.user;
}

export async function signOut() {
  try {
    await api.post('/api/auth/logout');
  } finally {
    api.setCsrfToken(null);
    set(null);
  }
}

/** The session ended on the server (expired, or signed out elsewhere). */
export function expired() {
  if (currentUser) {
    api.setCsrfToken(null);
    set(null);
  }
}

export function updated(user) {
  set(user);
}
