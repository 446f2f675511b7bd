// The HTTP API: JSON in and out, the session cookie, and the CSRF token echoed on every state-changing request.
//
// The cookie is HttpOnly, so the client never sees the session itself; it keeps only the CSRF token that
// POST /api/auth/login (or register) returned, or that GET /api/me returns again after a page reload.

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

let csrfToken = null;
let unauthorizedHandler = null;

export function setCsrfToken(token) {
  csrfToken = token ?? null;
}

/** Called with the error when a request that needed a session got 401 (the session ended or expired). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/** An error the API answered with ({error: {code, message, details}}), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** The problems of a 422 answer as {field: problem}. */
  fieldProblems() {
    const problems = {};
    for (const item of Array.isArray(this.details) ? this.details : []) {
      if (item && item.field) problems[String(item.field).split('.').pop()] = item.problem ?? 'is not valid';
    }
    return problems;
  }
}

/**
 * path`/api/circles/${id}/posts` percent-encodes each interpolated value, so ids and tokens can never
 * change the shape of a URL.
 */
export function path(strings, ...values) {
  return strings.reduce((out, part, i) => out + part + (i < values.length ? encodeURIComponent(values[i]) : ''), '');
}

function withQuery(url, query) {
  if (!query) return url;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${url}?${text}` : url;
}

async function send(method, url, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (UNSAFE.has(method) && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  try {
    return await fetch(url, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
  }
}

async function errorFrom(response) {
  const data = await response.json().catch(() => null);
  const error = data && data.error ? data.error : {};
  return new ApiError(response.status, error.code ?? `http_${response.status}`,
    error.message ?? (response.statusText || 'The request failed'), error.details ?? null);
}

export async function request(method, url, { body, query } = {}) {
  const target = withQuery(url, query);
  let response = await send(method, target, body);
  if (response.status === 403 && UNSAFE.has(method)) {
    // The token may be stale (signed in again in another tab): fetch the session's current one and retry once.
    const error = await errorFrom(response.clone());
    if (error.code === 'csrf_failed' && (await refreshCsrfToken())) response = await send(method, target, body);
  }
  if (response.status === 204) return null;
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && unauthorizedHandler) unauthorizedHandler(error);
    throw error;
  }
  const type = response.headers.get('Content-Type') ?? '';
  return type.includes('application/json') ? response.json() : response.text();
}

async function refreshCsrfToken() {
  const response = await send('GET', '/api/me');
  if (!response.ok) return false;
  const me = await response.json();
  setCsrfToken(me.csrf_token);
  return Boolean(me.csrf_token);
}

export const get = (url, query) => request('GET', url, { query });
export const post = (url, body = {}) => request('POST', url, { body });
export const put = (url, body = {}) => request('PUT', url, { body });
export const patch = (url, body = {}) => request('PATCH', url, { body });
export const del = (url) => request('DELETE', url);
