/* The kiosk: the booth's own screen. Speaks the chat's /ws/chat/ protocol (README, "The chat socket") like chat.js,
 * and adds what a screen that strangers share needs:
 * - an idle timer: after the screen's idle time without a touch or a key, the server gives this browser a new
 *   session (POST reset/), so the previous conversation is out of reach, and the attract loop starts;
 * - the attract loop: the live comparison, the demo's live figures (/ws/live/), suggested questions; a touch or a
 *   key brings the chat back at once (a touched question is sent);
 * - "continue on your phone": a QR code for a single-use link, drawn by the server; once a phone has used it,
 *   the screen starts over.
 * It asks the booth assistant (`grounded`): answers from what the booth published, with source cards (no links: nothing
 * on the screen leads off the booth's pages) and figures not found in the sources marked. A reply's markdown, cards,
 * marks and frame order are reply_view.js's, shared with the chat page.
 */
(function () {
  "use strict";
  const root = document.getElementById("kiosk");
  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const prompt = document.getElementById("prompt");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const notice = document.getElementById("notice");
  const connection = document.getElementById("connection");
  const handoverBox = document.getElementById("handover");
  const suggestions = document.getElementById("suggestions");
  const label = (name) => root.dataset["label" + name.charAt(0).toUpperCase() + name.slice(1)] || name;
  const idleMs = Number(root.dataset.idleMs) || 90000;
  const slideMs = Number(root.dataset.slideMs) || 12000;
  const qrOn = root.dataset.qr === "on";

  const render = window.ReplyView.markdownRenderer(null);
  const view = { label: label, links: false };
  const options = { grounded: true }; // the booth's screen answers from what the booth published

  const replies = new Map(); // message id -> {el, text, seq, status, sources}
  let socket = null;
  let retryMs = 500;
  let inFlight = null;
  let lastActivity = Date.now();
  let hasContent = false;
  let handover = null; // {id, timer, poll}
  let resetting = false;

  // --- conversation ----------------------------------------------------------------------------------------------

  function showNotice(text) { notice.textContent = text; notice.hidden = !text; }

  function setBusy() {
    stopButton.hidden = inFlight === null;
    sendButton.disabled = inFlight !== null;
  }

  function addUser(message) {
    const li = document.createElement("li");
    li.className = "msg user";
    li.dataset.id = message.id;
    li.textContent = message.content;
    list.appendChild(li);
    hasContent = true;
    suggestions.hidden = true;
  }

  function addReply(message) {
    const li = document.createElement("li");
    li.className = "msg assistant";
    li.dataset.id = message.id;
    li.innerHTML = '<div class="body"></div><div class="sources-box"></div><div class="meta"><span class="state"></span></div>';
    list.appendChild(li);
    const reply = { el: li, text: message.content || "", seq: 0, status: message.status,
      sources: window.ReplyView.savedSources(message) };
    replies.set(message.id, reply);
    paint(reply);
    setState(reply, message.status, message.failure_reason);
    hasContent = true;
    return reply;
  }

  function paint(reply) {
    window.ReplyView.paint(reply, render, view);
    reply.el.scrollIntoView({ block: "end" });
  }

  function setState(reply, status, reason, position) {
    reply.status = status;
    reply.el.dataset.status = status;
    let text = label(status);
    if (status === "queued" && position) text += " (" + label("position") + " " + position + ")";
    if (reason) text += ": " + reason;
    reply.el.querySelector(".state").textContent = text;
    const final = status === "done" || status === "stopped" || status === "failed";
    if (!final) inFlight = reply;
    else if (inFlight === reply) inFlight = null;
    setBusy();
  }

  function clearConversation() {
    list.textContent = "";
    replies.clear();
    inFlight = null;
    hasContent = false;
    suggestions.hidden = false;
    prompt.value = "";
    showNotice("");
    hideHandover();
    setBusy();
  }

  // Every frame of a reply after `afterSeq` again (a gap in what arrived).
  function resume(messageId) {
    return (afterSeq) => send({ type: "resume", message_id: messageId, after_seq: afterSeq });
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "hello":
        clearConversation();
        root.dataset.conversationId = frame.conversation_id || "";
        frame.messages.forEach((m) => (m.role === "user" ? addUser(m) : addReply(m)));
        setBusy();
        if (hasContent && inFlight === null) offerHandover();
        break;
      case "message":
        if (frame.message.role === "user") {
          addUser(frame.message);
        } else {
          const reply = addReply(frame.message);
          if (frame.message.status === "queued") setState(reply, "queued", "", frame.queue_position);
        }
        break;
      case "status": {
        const reply = replies.get(frame.message_id);
        if (reply && frame.seq > 0) reply.seq = Math.max(reply.seq, frame.seq);
        if (reply) setState(reply, frame.status, "", frame.queue_position);
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
        setState(reply, frame.status, frame.reason);
        lastActivity = Date.now(); // the visitor reads the reply from now on
        offerHandover();
        break;
      }
      case "error":
        showNotice(frame.message);
        root.dataset.lastError = frame.code;
        break;
      default:
        break;
    }
  }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) { showNotice(connection.textContent); return false; }
    showNotice("");
    socket.send(JSON.stringify(frame));
    return true;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(scheme + "://" + location.host + "/ws/chat/?lang=" + encodeURIComponent(root.dataset.lang));
    socket = ws;
    ws.addEventListener("open", () => {
      retryMs = 500;
      connection.textContent = "● " + label("online");
      connection.classList.remove("offline");
    });
    ws.addEventListener("message", (event) => { if (socket === ws) onFrame(JSON.parse(event.data)); });
    ws.addEventListener("close", () => {
      if (socket !== ws) return; // replaced on purpose (a reset)
      connection.textContent = "● " + label("offline");
      connection.classList.add("offline");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 8000);
    });
  }

  function sendQuestion(text) {
    text = text.trim();
    if (!text || inFlight) return;
    if (send({ type: "send", text: text, options: options })) prompt.value = "";
  }

  // --- a new visitor ---------------------------------------------------------------------------------------------

  async function resetScreen() {
    if (resetting) return;
    resetting = true;
    try {
      if (inFlight) send({ type: "stop" });
      const response = await fetch(root.dataset.resetUrl, {
        method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": root.dataset.csrf },
      });
      if (!response.ok) throw new Error("reset answered " + response.status);
      clearConversation();
      root.dataset.conversationId = "";
      const old = socket;
      socket = null;
      if (old) old.close();
      connect(); // the new socket carries the new session cookie: no conversation
      root.dataset.resets = String(Number(root.dataset.resets || 0) + 1);
    } catch (error) {
      showNotice(connection.textContent);
    } finally {
      resetting = false;
    }
  }

  // --- continue on your phone ------------------------------------------------------------------------------------

  function hideHandover() {
    if (handover) { clearTimeout(handover.timer); clearInterval(handover.poll); }
    handover = null;
    handoverBox.hidden = true;
  }

  async function offerHandover() {
    if (!qrOn || !hasContent) return;
    try {
      const response = await fetch(root.dataset.handoverUrl, {
        method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": root.dataset.csrf },
      });
      if (!response.ok) return;
      const offer = await response.json();
      hideHandover();
      document.getElementById("handover-qr").src = offer.qr;
      document.getElementById("handover-url").textContent = offer.url;
      handoverBox.dataset.url = offer.url;
      handoverBox.hidden = false;
      handover = {
        id: offer.id,
        // A fresh code shortly before this one expires, while the conversation is still on the screen.
        timer: setTimeout(offerHandover, Math.max(10, offer.expires_in_s - 15) * 1000),
        poll: setInterval(() => checkHandover(offer.id), 2000),
      };
    } catch (error) { /* no code this time; the next reply tries again */ }
  }

  async function checkHandover(id) {
    const response = await fetch(root.dataset.handoverUrl + encodeURIComponent(id) + "/", { credentials: "same-origin" });
    if (!response.ok || !handover || handover.id !== id) return;
    const state = await response.json();
    if (!state.used) return;
    hideHandover();
    await resetScreen();
    enterAttract();
    document.getElementById("attract-notice").textContent = label("handedOver");
  }

  // --- attract loop ----------------------------------------------------------------------------------------------

  const slides = Array.from(document.querySelectorAll("#attract .slide"));
  let slideIndex = 0;
  let slideTimer = null;

  function showSlide(index) {
    slides.forEach((slide, i) => { slide.hidden = i !== index; });
    root.dataset.slide = slides.length ? slides[index].dataset.page : "";
  }

  function enterAttract() {
    if (root.dataset.mode === "chat") refreshAttract(["attract-recent"]);
    root.dataset.mode = "attract";
    slideIndex = 0;
    showSlide(0);
    clearInterval(slideTimer);
    slideTimer = setInterval(() => {
      slideIndex = (slideIndex + 1) % Math.max(1, slides.length);
      showSlide(slideIndex);
    }, slideMs);
  }

  function leaveAttract() {
    clearInterval(slideTimer);
    document.getElementById("attract-notice").textContent = "";
    root.dataset.mode = "chat";
    prompt.focus();
  }

  function activity(event) {
    lastActivity = Date.now();
    if (root.dataset.mode !== "attract") return;
    if (event && event.type === "keydown" && event.key.length === 1 && !event.ctrlKey && !event.metaKey) {
      leaveAttract(); // the key's character lands in the prompt
      return;
    }
    if (event) event.preventDefault();
    const question = event && event.target.closest && event.target.closest(".question");
    leaveAttract();
    if (question) sendQuestion(question.dataset.question);
  }

  function idleCheck() {
    if (Date.now() - lastActivity < idleMs || inFlight || resetting) return;
    if (root.dataset.mode === "attract") return;
    if (hasContent || prompt.value) resetScreen().then(enterAttract);
    else enterAttract();
  }

  // The live figures and the comparison, from /ws/live/.
  function connectLive() {
    if (!document.getElementById("attract-demo") && !document.getElementById("attract-compare")) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const live = new WebSocket(scheme + "://" + location.host + "/ws/live/");
    live.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type !== "update") return;
      if (frame.topic === "demo") showDemo(frame.payload);
      if (frame.topic === "compare") refreshAttract(["attract-compare"]);
    });
    live.addEventListener("close", () => setTimeout(connectLive, 5000));
  }

  function setFigure(id, text) { const el = document.getElementById(id); if (el) el.textContent = text; }

  function showDemo(demo) {
    if (!demo.available) return;
    setFigure("demo-tokens-per-s", demo.tokens_per_s != null ? Number(demo.tokens_per_s).toFixed(1) : "–");
    setFigure("demo-in-flight", demo.in_flight != null ? String(demo.in_flight) : "–");
    setFigure("demo-backend", demo.backend || "–");
    setFigure("demo-cost", demo.cost_per_million_tokens_usd != null ? "$" + Number(demo.cost_per_million_tokens_usd).toFixed(4) : "–");
  }

  // The server renders the comparison and the recent questions: fetch this page again and swap them in.
  async function refreshAttract(ids) {
    ids = ids.filter((id) => document.getElementById(id));
    if (!ids.length) return;
    try {
      const response = await fetch(location.pathname, { credentials: "same-origin" });
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      ids.forEach((id) => {
        const fresh = doc.getElementById(id);
        if (fresh) document.getElementById(id).innerHTML = fresh.innerHTML;
      });
    } catch (error) { /* the next update tries again */ }
  }

  // --- wiring ----------------------------------------------------------------------------------------------------

  form.addEventListener("submit", (event) => { event.preventDefault(); sendQuestion(prompt.value); });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
  });
  stopButton.addEventListener("click", () => send({ type: "stop" }));
  document.getElementById("start-over").addEventListener("click", () => resetScreen());
  suggestions.addEventListener("click", (event) => {
    const question = event.target.closest(".question");
    if (question) sendQuestion(question.dataset.question);
  });
  // In the attract loop a touch anywhere (but the language links) brings the chat back.
  document.addEventListener("click", (event) => {
    if (root.dataset.mode === "attract" && !event.target.closest(".kiosk-languages")) activity(event);
  }, true);
  ["pointerdown", "keydown", "input", "wheel"].forEach((name) =>
    document.addEventListener(name, (event) => {
      if (root.dataset.mode === "attract" && name === "pointerdown") { lastActivity = Date.now(); return; } // the click follows
      activity(event);
    }, true));
  // A touch screen: no context menu, no pinch-zoom drift, full screen at the first touch (browsers allow it then).
  document.addEventListener("contextmenu", (event) => event.preventDefault());
  document.addEventListener("pointerdown", () => {
    if (!document.fullscreenElement && document.documentElement.requestFullscreen) {
      document.documentElement.requestFullscreen().catch(() => {});
    }
  }, { once: true });

  enterAttract();
  connect();
  connectLive();
  setInterval(idleCheck, 1000);
})();
