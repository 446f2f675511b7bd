// The choices a circle's settings offer, as [value, label] pairs for selects (creating and editing a circle).

export const VISIBILITY = [['public', 'Public: listed, anyone can read'], ['unlisted', 'Unlisted: anyone with the link'],
  ['private', 'Private: members only']];
export const JOIN_POLICY = [['open', 'Open: anyone may join'], ['application', 'By application, reviewed by admins'],
  ['invite', 'By invite only']];
export const KIND = [['course', 'Course'], ['community', 'Community']];
export const CHAT_HISTORY = [['all', 'New members see all chat history'], ['since_join', 'New members see chat from when they joined']];
