// Where labels go: most important first, each at the first place around its anchor where
// its box touches no label placed before it, no marker and no overlay, inside the view;
// a label with no such place is hidden (never drawn over another).

const PAD = 5;  // px of air around every box
const RINGS = [0, 1, 2, 3.2, 4.6, 6.4, 8.6, 11.5];
const DIRECTIONS = [[1, 0], [-1, 0], [0, -1], [0, 1], [1, -1], [-1, -1], [1, 1], [-1, 1],
                    [1, -0.5], [-1, -0.5], [1, 0.5], [-1, 0.5]];

export function intersects(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function grow(box, by) {
  return { x: box.x - by, y: box.y - by, w: box.w + 2 * by, h: box.h + 2 * by };
}

// The candidate top-left corners of a w×h box around an anchor: beside it first (left or
// right as `prefer` says), then above and below, then further out.
export function candidates(anchor, w, h, step, prefer = 1) {
  const out = [];
  const { x, y, r = 0 } = anchor;
  for (const ring of RINGS) {
    for (const [dx0, dy] of DIRECTIONS) {
      const dx = dx0 * prefer;
      if (ring === 0 && (dx || dy)) continue;
      const gapX = r + step * ring, gapY = r + step * ring * 0.7;
      let left = x - w / 2, top = y - h / 2;
      if (dx > 0) left = x + gapX;
      if (dx < 0) left = x - gapX - w;
      if (dy < 0) top = y - gapY - h + (dx ? h / 2 : 0);
      if (dy > 0) top = y + gapY - (dx ? h / 2 : 0);
      if (dx && Math.abs(dy) === 0.5) top = y - h / 2 + dy * (h + step * ring * 0.5);
      out.push([left, top]);
      if (ring === 0) break;
    }
  }
  return out;
}

// items: [{ w, h, anchor: {x, y, r}, step, prefer, centred, tries, previous }] in priority order; obstacles:
// boxes nothing may cover (markers, overlays), each with the index of the item it belongs
// to (its own marker does not push a label away) or -1. Returns the top-left corner of each
// item's box, or null where it is hidden.
export function place(items, obstacles, view) {
  const placed = [];
  return items.map((item, i) => {
    const tries = item.centred ? candidates(item.anchor, item.w, item.h, item.step, 1)
                                   .slice(0, item.tries ?? 40)
      : candidates(item.anchor, item.w, item.h, item.step, item.prefer).slice(1);
    if (item.previous) tries.unshift(item.previous);
    for (const [x, y] of tries) {
      const box = { x, y, w: item.w, h: item.h };
      if (x < view.x || y < view.y || x + box.w > view.x + view.w ||
          y + box.h > view.y + view.h) continue;
      const padded = grow(box, PAD);
      if (placed.some((b) => intersects(padded, b))) continue;
      if (obstacles.some((o) => o.owner !== i && intersects(padded, o))) continue;
      placed.push(box);
      return [x, y];
    }
    return null;
  });
}
