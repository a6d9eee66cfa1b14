/* The chat page: speaks the /ws/chat/ protocol (see README, "The chat socket").
 * The server is the source of truth: every `hello` rebuilds the conversation, and a reply in flight is replayed
 * from its first frame, so a reload or a reconnect shows it whole, in order, and nothing twice.
 * A reply's markdown, source cards, marked figures and frame order are reply_view.js's, shared with the kiosk.
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

  const renderMarkdown = window.ReplyView.markdownRenderer(function (code, lang) {
    if (lang && window.hljs && window.hljs.getLanguage(lang)) {
      try { return window.hljs.highlight(code, { language: lang, ignoreIllegals: true }).value; } catch (e) { /* plain */ }
    }
    return "";
  });
  const view = { label: label, links: true, langPrefix: langPrefix, directoryUrl: root.dataset.directoryUrl,
    compareUrl: root.dataset.compareUrl };

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
    const reply = { el: li, text: message.content || "", seq: 0, status: message.status,
      sources: window.ReplyView.savedSources(message) };
    replies.set(message.id, reply);
    paint(reply);
    setState(reply, message.status, message.failure_reason, message.stats);
    return reply;
  }

  function paint(reply) {
    window.ReplyView.paint(reply, renderMarkdown, view);
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

  // Every frame of a reply after `afterSeq` again (a gap in what arrived).
  function resume(messageId) {
    return (afterSeq) => send({ type: "resume", message_id: messageId, after_seq: afterSeq });
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
        if (!reply || !window.ReplyView.accept(reply, frame, resume(frame.message_id))) break;
        reply.text += frame.text;
        paint(reply);
        if (reply.status !== "streaming") setState(reply, "streaming");
        break;
      }
      case "sources": {
        const reply = replies.get(frame.message_id);
        if (!reply || !window.ReplyView.accept(reply, frame, resume(frame.message_id))) break;
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
