"""What the board tests measure in the page: every visible text's box, and which of them
intersect each other or a map marker."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

# Every visible piece of text: SVG <text> elements, and HTML text nodes (each line box of a
# wrapped one), each clipped to the ancestors that clip it; markers on the map.
MEASURE = """() => {
  const vw = innerWidth, vh = innerHeight;
  const clip = (el, r) => {
    let box = { l: r.left, t: r.top, r: r.right, b: r.bottom };
    for (let a = el.parentElement; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.overflow !== "visible" && a.tagName !== "svg" && a !== document.body &&
          a !== document.documentElement) {
        const c = a.getBoundingClientRect();
        box = { l: Math.max(box.l, c.left), t: Math.max(box.t, c.top),
                r: Math.min(box.r, c.right), b: Math.min(box.b, c.bottom) };
      }
    }
    box = { l: Math.max(box.l, 0), t: Math.max(box.t, 0), r: Math.min(box.r, vw),
            b: Math.min(box.b, vh) };
    return box.r - box.l > 0.5 && box.b - box.t > 0.5 ? box : null;
  };
  const shown = (el) => el.checkVisibility({ visibilityProperty: true, opacityProperty: true });
  const texts = [];
  for (const t of document.querySelectorAll("svg text")) {
    if (!t.textContent.trim() || !shown(t)) continue;
    const box = clip(t, t.getBoundingClientRect());
    if (box) texts.push({ text: t.textContent.trim(), ...box, svg: true });
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const n = walker.currentNode;
    const p = n.parentElement;
    if (!n.textContent.trim() || !p || p.closest("svg") || !shown(p)) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    for (const r of range.getClientRects()) {
      const box = clip(p, r);
      if (box) texts.push({ text: n.textContent.trim(), ...box, svg: false });
    }
  }
  const markers = [];
  for (const m of document.querySelectorAll("#map .dev .fill, #map .road .detector")) {
    if (!shown(m)) continue;
    const r = m.getBoundingClientRect();
    const device = m.closest("[data-device]").dataset.device;
    markers.push({ text: `marker ${device}`, l: r.left, t: r.top, r: r.right, b: r.bottom });
  }
  return { texts, markers };
}"""


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    # a pixel of anti-aliasing is not an overlap
    return min(a["r"], b["r"]) - max(a["l"], b["l"]) > 1 and \
        min(a["b"], b["b"]) - max(a["t"], b["t"]) > 1


def overlaps(page: Page) -> tuple[int, list[str]]:
    """How many texts were measured, and every pair that intersects (text/text, and a map
    label over a marker)."""
    found = page.evaluate(MEASURE)
    texts, markers = found["texts"], found["markers"]
    bad = []
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            if _overlap(a, b):
                bad.append(f"{a['text']!r} x {b['text']!r}")
        if a["svg"]:
            for m in markers:
                if _overlap(a, m):
                    bad.append(f"{a['text']!r} x {m['text']}")
    return len(texts), bad


def text_sizes(page: Page, selector: str) -> list[float]:
    """The rendered font sizes (CSS px times the page zoom) of the texts under ``selector``."""
    sizes: list[float] = page.evaluate("""(sel) => [...document.querySelectorAll(sel)]
      .filter((t) => t.textContent.trim() && t.checkVisibility({ visibilityProperty: true }))
      .map((t) => parseFloat(getComputedStyle(t).fontSize) *
                  (parseFloat(document.documentElement.style.zoom) || 1))""", selector)
    return sizes
