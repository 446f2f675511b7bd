// The circle's feed: sections as filters, pinned posts on top, the composer, and each post with its reactions
// and comments (one level of replies).

import { append, h, replace, time } from '../dom.js';
import * as api from '../api.js';
import { act, emptyState, failure, field, form, loading, toast, valueOf } from '../ui.js';

export const REACTIONS = [
  ['like', '👍', 'Like'], ['heart', '❤️', 'Love'], ['laugh', '😂', 'Laugh'],
  ['wow', '😮', 'Wow'], ['sad', '😢', 'Sad'], ['clap', '👏', 'Clap'],
];

export function mount(el, ctx) {
  const { circle } = ctx;
  const base = api.path`/api/circles/${circle.id}`;
  let sectionId = null;
  const sectionName = new Map(ctx.sections.map((s) => [s.id, s.name]));
  const list = h('div', { class: 'feed-list' });
  const filters = h('div', { class: 'section-filters', role: 'group', 'aria-label': 'Filter by section' });

  function renderFilters() {
    if (!ctx.sections.length) return;
    const choice = (id, label) => h('button', {
      type: 'button', class: 'chip', 'aria-pressed': String(sectionId === id),
      onclick: () => { sectionId = id; renderFilters(); load(); },
    }, label);
    replace(filters, choice(null, 'All'), ctx.sections.map((s) => choice(s.id, s.name)));
  }

  const canPost = ctx.isMember && !circle.archived;
  const composer = canPost ? buildComposer() : null;

  function buildComposer() {
    const title = field({ label: 'Title (optional)', name: 'title', maxlength: 200 });
    const body = field({ label: 'Write a post', name: 'body', kind: 'textarea', required: true, rows: 3, maxlength: 20000 });
    const fields = [title, body];
    let section = null;
    if (ctx.sections.length) {
      section = field({ label: 'Section', name: 'section_id', kind: 'select',
        options: [['', 'No section'], ...ctx.sections.map((s) => [s.id, s.name])], value: '' });
      fields.push(section);
    }
    const composerForm = form({
      label: 'New post', fields, submit: 'Post', className: 'stack composer',
      onSubmit: async () => {
        const chosen = section ? valueOf(section) : '';
        const post = await api.post(`${base}/posts`, {
          title: valueOf(title) || null, body: valueOf(body), section_id: chosen ? Number(chosen) : null,
        });
        title.control.value = '';
        body.control.value = '';
        list.querySelector('.empty')?.remove();
        const card = postCard(post);
        const after = list.querySelector('.post:not(.pinned)') ?? list.querySelector('.more');
        if (after) after.before(card);
        else list.append(card);
      },
    });
    return h('div', { class: 'card' }, composerForm);
  }

  async function load() {
    replace(list, loading());
    let before = null;
    const more = h('button', { type: 'button', class: 'more', hidden: true }, 'Show older posts');
    async function page(first) {
      const data = await api.get(`${base}/posts`, { section_id: sectionId, before, limit: 20 });
      const cards = [...(first ? data.pinned : []), ...data.posts].map(postCard);
      if (first) replace(list, cards.length ? cards : emptyState('No posts yet.'), more);
      else more.before(...cards);
      before = data.next_before;
      more.hidden = !before;
    }
    more.addEventListener('click', () => act(more, () => page(false)));
    try {
      await page(true);
    } catch (error) {
      replace(list, error.status === 401 || error.status === 403 || error.status === 404
        ? emptyState('Join this circle to read its feed.')
        : failure(error, load));
    }
  }

  function postCard(post) {
    const isAuthor = post.author && ctx.me && post.author.user_id === ctx.me.id;
    const card = h('article', { class: `card post${post.pinned ? ' pinned' : ''}`, dataset: { postId: post.id } });
    const comments = h('div', { class: 'comments', hidden: true });
    const commentsButton = h('button', { type: 'button', class: 'link', 'aria-expanded': 'false' });
    const setCount = (n) => { post.comment_count = n; commentsButton.textContent = `Comments (${n})`; };
    setCount(post.comment_count);
    commentsButton.addEventListener('click', () => {
      const open = comments.hidden;
      comments.hidden = !open;
      commentsButton.setAttribute('aria-expanded', String(open));
      if (open) loadComments(post, comments, setCount);
    });
    const reactions = h('div', { class: 'reactions', role: 'group', 'aria-label': 'Reactions' });
    const renderReactions = () => replace(reactions, REACTIONS.map(([kind, emoji, label]) => {
      const count = post.reactions?.[kind] ?? 0;
      const mine = post.my_reactions?.includes(kind);
      return h('button', {
        type: 'button', class: 'reaction', 'aria-pressed': String(Boolean(mine)), disabled: !ctx.isMember,
        'aria-label': `${label}${count ? `, ${count}` : ''}`, title: label,
        onclick: (event) => act(event.currentTarget, async () => {
          const url = api.path`/api/circles/${circle.id}/posts/${post.id}/reactions/${kind}`;
          Object.assign(post, mine ? await api.del(url) : await api.put(url));
          renderReactions();
        }),
      }, emoji, count ? h('span', { class: 'count' }, String(count)) : null);
    }));
    renderReactions();

    const tools = h('div', { class: 'post-tools' });
    if (ctx.isModerator && !circle.archived) {
      tools.append(h('button', {
        type: 'button', class: 'link',
        onclick: (event) => act(event.currentTarget, async () => {
          await api.put(api.path`/api/circles/${circle.id}/posts/${post.id}/pinned`, { pinned: !post.pinned });
          toast(post.pinned ? 'Post unpinned.' : 'Post pinned.');
          load();
        }),
      }, post.pinned ? 'Unpin' : 'Pin'));
    }
    if ((isAuthor || ctx.isModerator) && !circle.archived) {
      tools.append(h('button', {
        type: 'button', class: 'link danger',
        onclick: (event) => {
          if (!confirm('Delete this post?')) return;
          act(event.currentTarget, async () => {
            await api.del(api.path`/api/circles/${circle.id}/posts/${post.id}`);
            card.remove();
            toast('Post deleted.');
          });
        },
      }, 'Delete'));
    }

    append(card, [
      h('header', { class: 'post-head' },
        h('span', { class: 'author' }, post.author?.name ?? 'Deleted user'),
        ' · ', time(post.created_at),
        post.section_id && sectionName.has(post.section_id) ? h('span', { class: 'badge' }, sectionName.get(post.section_id)) : null,
        post.pinned ? h('span', { class: 'badge pin' }, 'Pinned') : null,
        post.edited_at ? h('span', { class: 'muted' }, ' (edited)') : null),
      post.title ? h('h3', { class: 'post-title' }, post.title) : null,
      h('div', { class: 'post-body' }, post.body),
      h('footer', { class: 'post-foot' }, reactions, commentsButton, tools),
      comments]);
    return card;
  }

  async function loadComments(post, box, setCount) {
    replace(box, loading('Loading comments…'));
    const url = api.path`/api/circles/${circle.id}/posts/${post.id}/comments`;
    let all = [];
    try {
      let after = null;
      do {
        const data = await api.get(url, { after, limit: 100 });
        all = all.concat(data.comments);
        after = data.next_after;
      } while (after);
    } catch (error) {
      replace(box, failure(error, () => loadComments(post, box, setCount)));
      return;
    }
    const render = () => {
      const top = all.filter((c) => !c.parent_id);
      const replies = (id) => all.filter((c) => c.parent_id === id);
      const item = (comment, isReply) => {
        const li = h('li', { class: 'comment' },
          h('p', { class: 'comment-head' }, h('span', { class: 'author' }, comment.author?.name ?? 'Deleted user'),
            ' · ', time(comment.created_at)),
          h('p', { class: 'comment-body' }, comment.body));
        const actions = h('div', { class: 'comment-tools' });
        if (!isReply && ctx.isMember && !circle.archived) {
          actions.append(h('button', { type: 'button', class: 'link', onclick: () => {
            li.append(commentForm(comment.id, `Reply to ${comment.author?.name ?? 'comment'}`));
            li.querySelector('form textarea')?.focus();
          } }, 'Reply'));
        }
        const mine = comment.author && ctx.me && comment.author.user_id === ctx.me.id;
        if ((mine || ctx.isModerator) && !circle.archived) {
          actions.append(h('button', { type: 'button', class: 'link danger', onclick: (event) => act(event.currentTarget, async () => {
            await api.del(api.path`/api/circles/${circle.id}/posts/${post.id}/comments/${comment.id}`);
            const gone = new Set([comment.id, ...replies(comment.id).map((c) => c.id)]);
            all = all.filter((c) => !gone.has(c.id));
            setCount(all.length);
            render();
          }) }, 'Delete'));
        }
        li.append(actions);
        if (!isReply) {
          const children = replies(comment.id);
          if (children.length) li.append(h('ul', { class: 'replies' }, children.map((c) => item(c, true))));
        }
        return li;
      };
      replace(box,
        top.length ? h('ul', { class: 'comment-list', 'aria-label': 'Comments' }, top.map((c) => item(c, false))) : h('p', { class: 'muted' }, 'No comments yet.'),
        ctx.isMember && !circle.archived ? commentForm(null, 'Write a comment') : null);
    };
    const commentForm = (parentId, label) => {
      const body = field({ label, name: 'body', kind: 'textarea', required: true, rows: 2, maxlength: 4000 });
      return form({
        label: parentId ? 'Reply to a comment' : 'New comment', fields: [body], submit: parentId ? 'Reply' : 'Comment',
        className: 'stack comment-form',
        onSubmit: async () => {
          const comment = await api.post(url, { body: valueOf(body), parent_id: parentId });
          all.push(comment);
          setCount(all.length);
          render();
        },
      });
    };
    render();
  }

  append(el, [filters, composer, list]);
  renderFilters();
  load();
}
