/* What the chat page (chat.js) and the kiosk (kiosk.js) show of a reply the same way: its markdown, the booth
 * assistant's source cards and the figures marked "not found in the sources", and the order of its numbered frames
 * (README, "The chat socket": every frame of a reply has the next `seq`; a gap is asked for again with `resume`).
 * Model output is rendered as markdown with raw HTML, links and images off, then sanitised by DOMPurify.
 * Knows nothing about sockets or pages: each caller passes its labels and what to do on a gap.
 */
window.ReplyView = (function () {
  "use strict";
  const PURIFY = { FORBID_TAGS: ["img", "a", "style", "form", "input", "iframe", "svg", "math"], FORBID_ATTR: ["style"] };

  // markdown -> sanitised HTML; `highlight` is markdown-it's code highlighter, when the page has one.
  function markdownRenderer(highlight) {
    const md = window.markdownit(highlight ? { html: false, linkify: false, highlight: highlight } : { html: false, linkify: false });
    md.disable(["link", "image", "autolink"]);
    return (text) => window.DOMPurify.sanitize(md.render(text), PURIFY);
  }

  // True when `frame` is the next one of `reply` (then its seq is taken); a frame already seen is dropped; on a gap,
  // `resume(afterSeq)` asks for everything after what the reply has.
  function accept(reply, frame, resume) {
    if (frame.seq <= reply.seq) return false;
    if (frame.seq !== reply.seq + 1) { resume(reply.seq); return false; }
    reply.seq = frame.seq;
    return true;
  }

  // A saved booth-assistant reply's sources, as a checked `sources` frame would carry them.
  function savedSources(message) {
    if (!message.grounded || message.status === "queued" || message.status === "streaming") return null;
    const sources = message.sources || [];
    return { sources: sources, unsupported_figures: message.unsupported_figures || [], checked: true, found: sources.length > 0 };
  }

  // Wraps each figure the server found in none of the reply's sources in <mark class="not-found">.
  function markFigures(body, figures, notFoundLabel) {
    if (!figures || !figures.length) return;
    const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    nodes.forEach((node) => {
      let rest = node.nodeValue;
      const parts = [];
      for (;;) {
        let best = -1, figure = "";
        figures.forEach((f) => { const at = rest.indexOf(f); if (at !== -1 && (best === -1 || at < best)) { best = at; figure = f; } });
        if (best === -1) break;
        parts.push(document.createTextNode(rest.slice(0, best)));
        const mark = document.createElement("mark");
        mark.className = "not-found";
        mark.title = notFoundLabel;
        mark.textContent = figure;
        const hint = document.createElement("span");
        hint.className = "visually-hidden";
        hint.textContent = " (" + notFoundLabel + ")";
        mark.appendChild(hint);
        parts.push(mark);
        rest = rest.slice(best + figure.length);
      }
      if (!parts.length) return;
      parts.push(document.createTextNode(rest));
      node.replaceWith(...parts);
    });
  }

  // A link, or (where nothing may lead off the page: the kiosk) the same text in a <span>.
  function titleElement(href, text, links) {
    const el = document.createElement(links ? "a" : "span");
    if (links) el.href = href;
    el.className = "source-title";
    el.textContent = text;
    return el;
  }

  /* Source cards under a reply: title (a link to the record's page when `view.links`), the fact used, and how many
   * figures are marked. `view`: {label(name), links, langPrefix, directoryUrl, compareUrl}. */
  function paintSources(box, info, view) {
    box.textContent = "";
    if (!info) return;
    if (!info.found) {
      const p = document.createElement("p");
      p.className = "nothing-found";
      if (view.links) {
        p.append(view.label("nothingFound") + " ", titleElement(view.directoryUrl, view.label("directory"), true), ", ",
          titleElement(view.compareUrl, view.label("compare"), true), ".");
      } else {
        p.textContent = view.label("nothingFound") + " " + view.label("directory") + ", " + view.label("compare") + ".";
      }
      box.appendChild(p);
      return;
    }
    if (!info.sources.length) return;
    const heading = document.createElement("p");
    heading.className = "sources-heading";
    heading.textContent = view.label("sources");
    const cards = document.createElement("ul");
    cards.className = "sources";
    info.sources.forEach((source) => {
      const li = document.createElement("li");
      li.className = "source-card";
      li.dataset.kind = source.kind;
      li.appendChild(titleElement((view.langPrefix || "") + source.url, source.title, view.links));
      if (source.fact) {
        const fact = document.createElement("span");
        fact.className = "fact";
        fact.textContent = source.fact;
        li.appendChild(fact);
      }
      cards.appendChild(li);
    });
    box.append(heading, cards);
    const missing = (info.unsupported_figures || []).length;
    if (info.checked && missing) {
      const note = document.createElement("p");
      note.className = "figures-note";
      note.textContent = missing + " " + view.label("figuresNotFound");
      box.appendChild(note);
    }
  }

  // The reply's body and its sources, as they stand.
  function paint(reply, render, view) {
    const body = reply.el.querySelector(".body");
    body.innerHTML = render(reply.text);
    reply.el.dataset.length = String(reply.text.length);
    if (reply.sources && reply.sources.checked) markFigures(body, reply.sources.unsupported_figures || [], view.label("notFound"));
    paintSources(reply.el.querySelector(".sources-box"), reply.sources, view);
  }

  return { markdownRenderer, accept, savedSources, markFigures, paintSources, paint };
})();
