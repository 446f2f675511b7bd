// Everyone in a circle, for naming people (chat authors, mentions, the audit log): the directory paged through.

import * as api from '../api.js';

const PAGE = 100; // the directory's largest page

/** The circle's members (at most `max`), as the directory lists them. */
export async function fetchRoster(circleId, max = 1000) {
  const members = [];
  let after = null;
  do {
    const data = await api.get(api.path`/api/circles/${circleId}/members`, { limit: PAGE, after });
    members.push(...data.members);
    after = data.next_after;
  } while (after && members.length < max);
  return members;
}

export function shownName(member) {
  return member.nickname || member.name;
}
