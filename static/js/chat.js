/* The chat page: speaks the /ws/chat/ protocol (see README, "The chat socket").
 * The server is the source of truth: every `hello` rebuilds the conversation, and a reply in flight is replayed
 * from its first frame, so a reload or a reconnect shows it whole, in order, and nothing twice.
 * Model output is rendered as markdown with raw HTML off, links and images disabled, then sanitised by DOMPurify.
 */
(function () {
  "use strict";
  const root = document.getElementById("chat");
  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const prompt = document.getElementById("prompt");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const notice = document.getElementById("notice");
  const connection = document.getElementById("connection");
  const label = (name) => root.dataset["label" + name.charAt(0).toUpperCase() + name.slice(1)] || name;
  const langPrefix = root.dataset.langPrefix || "";
  const groundedBox = document.getElementById("grounded");
  // The booth's assistant (answers from the published content, with sources) unless the visitor unticks it.
  const options = () => ({ grounded: groundedBox.checked });

  const md = window.markdownit({
    html: false,
    linkify: false,
    highlight: function (code, lang) {
      if (lang && window.hljs && window.hljs.getLanguage(lang)) {
        try { return window.hljs.highlight(code, { language: lang, ignoreIllegals: true }).value; } catch (e) { /* plain */ }
      }
      return "";
    },
  });
  md.disable(["link", "image", "autolink"]);
  const PURIFY = { FORBID_TAGS: ["img", "a", "style", "form", "input", "iframe", "svg", "math"], FORBID_ATTR: ["style"] };

  function renderMarkdown(text) {
    return window.DOMPurify.sanitize(md.render(text), PURIFY);
  }

  const replies = new Map(); // message id -> {el, text, seq, status}
  let socket = null;
  let retryMs = 500;
  let inFlight = null;

  function showNotice(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  function setBusy(busy) {
    stopButton.hidden = !busy;
    sendButton.disabled = busy;
  }

  function statsText(stats) {
    if (!stats) return "";
    const parts = [];
    if (stats.generated_tokens != null) parts.push(stats.generated_tokens + " " + label("tokens"));
    if (stats.time_to_first_token_ms != null) parts.push(label("ttft") + " " + Math.round(stats.time_to_first_token_ms) + " ms");
    if (stats.tokens_per_second != null) parts.push(stats.tokens_per_second.toFixed(1) + " tok/s");
    if (stats.backend) parts.push(stats.backend);
    if (stats.dropped_turns) parts.push(stats.dropped_turns + " " + label("dropped"));
    return parts.join(" · ");
  }

  function addUser(message) {
    const li = document.createElement("li");
    li.className = "msg user";
    li.dataset.id = message.id;
    li.textContent = message.content;
    list.appendChild(li);
  }

  function addReply(message) {
    const li = document.createElement("li");
    li.className = "msg assistant";
    li.dataset.id = message.id;
    li.innerHTML = '<div class="body"></div><div class="sources-box"></div>' +
      '<div class="meta"><span class="state"></span><span class="stats"></span></div>';
    list.appendChild(li);
    const reply = { el: li, text: message.content || "", seq: 0, status: message.status, sources: null };
    replies.set(message.id, reply);
    if (message.grounded && message.status !== "queued" && message.status !== "streaming") {
      reply.sources = { sources: message.sources || [], unsupported_figures: message.unsupported_figures || [],
        checked: true, found: (message.sources || []).length > 0 };
    }
    paint(reply);
    setState(reply, message.status, message.failure_reason, message.stats);
    return reply;
  }

  function paint(reply) {
    const body = reply.el.querySelector(".body");
    body.innerHTML = renderMarkdown(reply.text);
    reply.el.dataset.length = String(reply.text.length);
    if (reply.sources && reply.sources.checked) markFigures(body, reply.sources.unsupported_figures || []);
    paintSources(reply);
  }

  // Wraps each figure the server found in none of the reply's sources in <mark class="not-found">.
  function markFigures(body, figures) {
    if (!figures.length) return;
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
        mark.title = label("notFound");
        mark.textContent = figure;
        const hint = document.createElement("span");
        hint.className = "visually-hidden";
        hint.textContent = " (" + label("notFound") + ")";
        mark.appendChild(hint);
        parts.push(mark);
        rest = rest.slice(best + figure.length);
      }
      if (!parts.length) return;
      parts.push(document.createTextNode(rest));
      node.replaceWith(...parts);
    });
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  // Source cards under a booth-assistant reply: title (a link to the record's page), the fact used.
  function paintSources(reply) {
    const box = reply.el.querySelector(".sources-box");
    box.textContent = "";
    const info = reply.sources;
    if (!info) return;
    if (!info.found) {
      const p = document.createElement("p");
      p.className = "nothing-found";
      p.append(label("nothingFound") + " ", link(root.dataset.directoryUrl, label("directory")), ", ",
        link(root.dataset.compareUrl, label("compare")), ".");
      box.appendChild(p);
      return;
    }
    if (!info.sources.length) return;
    const heading = document.createElement("p");
    heading.className = "sources-heading";
    heading.textContent = label("sources");
    const cards = document.createElement("ul");
    cards.className = "sources";
    info.sources.forEach((source) => {
      const li = document.createElement("li");
      li.className = "source-card";
      li.dataset.kind = source.kind;
      li.appendChild(link(langPrefix + source.url, source.title));
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
      note.textContent = missing + " " + label("figuresNotFound");
      box.appendChild(note);
    }
  }

  function setState(reply, status, reason, stats, position) {
    reply.status = status;
    reply.el.dataset.status = status;
    reply.el.classList.toggle("failed", status === "failed");
    let text = label(status);
    if (status === "queued" && position) text += " (" + label("position") + " " + position + ")";
    if (reason) text += ": " + reason;
    reply.el.querySelector(".state").textContent = text;
    if (stats) reply.el.querySelector(".stats").textContent = statsText(stats);
    const final = status === "done" || status === "stopped" || status === "failed";
    if (!final) {
      inFlight = reply;
    } else if (inFlight === reply) {
      inFlight = null;
    }
    setBusy(inFlight !== null);
    updateRegenerate();
  }

  function updateRegenerate() {
    list.querySelectorAll(".regenerate").forEach((b) => b.remove());
    const last = list.querySelector(".msg.assistant:last-of-type");
    const lastReply = last && replies.get(Number(last.dataset.id));
    if (!lastReply || inFlight) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary regenerate";
    button.textContent = label("regenerate");
    button.addEventListener("click", () => send({ type: "regenerate", options: options() }));
    last.querySelector(".meta").appendChild(button);
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "hello":
        list.textContent = "";
        replies.clear();
        inFlight = null;
        frame.messages.forEach((m) => (m.role === "user" ? addUser(m) : addReply(m)));
        setBusy(inFlight !== null);
        updateRegenerate();
        break;
      case "message":
        if (frame.message.role === "user") {
          addUser(frame.message);
        } else {
          if (frame.replaces != null) {
            const old = list.querySelector('.msg.assistant[data-id="' + frame.replaces + '"]');
            if (old) old.remove();
          }
          const reply = addReply(frame.message);
          if (frame.message.status === "queued") setState(reply, "queued", "", null, frame.queue_position);
        }
        list.lastElementChild.scrollIntoView({ block: "end" });
        break;
      case "status": {
        const reply = replies.get(frame.message_id);
        if (reply && frame.seq > 0) reply.seq = Math.max(reply.seq, frame.seq);
        if (reply) setState(reply, frame.status, "", null, frame.queue_position);
        break;
      }
      case "delta": {
        const reply = replies.get(frame.message_id);
        if (!reply || frame.seq <= reply.seq) break; // already shown
        if (frame.seq !== reply.seq + 1) { // a gap: ask for everything after what we have
          send({ type: "resume", message_id: frame.message_id, after_seq: reply.seq });
          break;
        }
        reply.seq = frame.seq;
        reply.text += frame.text;
        paint(reply);
        if (reply.status !== "streaming") setState(reply, "streaming");
        break;
      }
      case "sources": {
        const reply = replies.get(frame.message_id);
        if (!reply || frame.seq <= reply.seq) break;
        if (frame.seq !== reply.seq + 1) {
          send({ type: "resume", message_id: frame.message_id, after_seq: reply.seq });
          break;
        }
        reply.seq = frame.seq;
        reply.sources = frame;
        paint(reply);
        break;
      }
      case "end": {
        const reply = replies.get(frame.message_id);
        if (!reply) break;
        if (typeof frame.content === "string") { reply.text = frame.content; paint(reply); }
        reply.seq = Math.max(reply.seq, frame.seq);
        setState(reply, frame.status, frame.reason, frame.stats);
        break;
      }
      case "error":
        showNotice(frame.message);
        break;
      default:
        break;
    }
  }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showNotice(connection.textContent);
      return false;
    }
    showNotice("");
    socket.send(JSON.stringify(frame));
    return true;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(scheme + "://" + location.host + "/ws/chat/");
    socket.addEventListener("open", () => {
      retryMs = 500;
      connection.textContent = "● " + label("online");
      connection.classList.remove("offline");
    });
    socket.addEventListener("message", (event) => onFrame(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      connection.textContent = "● " + label("offline");
      connection.classList.add("offline");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 8000);
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || inFlight) return;
    if (send({ type: "send", text: text, options: options() })) prompt.value = "";
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stopButton.addEventListener("click", () => send({ type: "stop" }));
  document.querySelectorAll(".suggestion").forEach((button) => button.addEventListener("click", () => {
    if (inFlight) return;
    send({ type: "send", text: button.textContent.trim(), options: options() });
  }));
  document.getElementById("new-conversation").addEventListener("click", () => send({ type: "new_conversation" }));
  connect();
})();
