/* The comparison page (/compare/): the calculator, the chart, the head-to-head picker and the live socket.
 *
 * The server renders every figure (and the same page works without JavaScript). This script only multiplies the
 * chip-hours the server prepared by the visitor's price (one price for every chip, or each chip's own price in
 * per-chip mode; chip-hours at full utilisation ÷ utilisation where a system disclosed no GPU-hours), keeps the
 * settings in the URL, and fetches the head-to-head and the claim box again from the server when a setting changes
 * (their ratios and verdicts are the server's), as it does for every region on a `compare` event from /ws/live/.
 * Numbers are formatted with Intl for the page's language (en, fr, zh-hans).
 */
(function () {
  "use strict";
  const root = document.getElementById("compare");
  if (!root) return;
  document.documentElement.classList.add("js");
  const lang = document.documentElement.lang || "en";
  const label = (name) => root.dataset["label" + name] || name;
  let data = JSON.parse(document.getElementById("compare-data").textContent);
  const state = Object.assign({}, data.settings);

  // --- formatting -------------------------------------------------------------------------------------------
  const usdCompact = new Intl.NumberFormat(lang, { style: "currency", currency: "USD", currencyDisplay: "narrowSymbol",
    notation: "compact", maximumSignificantDigits: 4 });
  const usdPrice = new Intl.NumberFormat(lang, { style: "currency", currency: "USD", currencyDisplay: "narrowSymbol",
    minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const usdSmall = new Intl.NumberFormat(lang, { style: "currency", currency: "USD", currencyDisplay: "narrowSymbol",
    maximumSignificantDigits: 3 });
  const oneDecimal = new Intl.NumberFormat(lang, { maximumFractionDigits: 1, minimumFractionDigits: 1 });
  const whole = new Intl.NumberFormat(lang, { maximumFractionDigits: 0 });
  const fill = (template, value) => template.replace("%s", value);

  // --- the calculator ---------------------------------------------------------------------------------------
  const priceRange = document.getElementById("price-range");
  const priceInput = document.getElementById("price");
  const utilInput = document.getElementById("util");
  const utilOutput = document.getElementById("util-output");
  const hardwareSelect = document.getElementById("hw");
  const pickA = document.getElementById("pick-a");
  const pickB = document.getElementById("pick-b");

  const modeInputs = Array.from(document.querySelectorAll('input[type=radio][name="mode"]'));

  function priceFor(system) {
    const own = state.mode === "chip" && system.chip_price !== null;
    return { usd: own ? system.chip_price : state.price, own: own };
  }

  function costAtPrice(system) {
    let hours = system.chip_hours;
    let fromCompute = false;
    if (hours === null && system.chip_hours_at_full_utilisation !== null) {
      hours = system.chip_hours_at_full_utilisation / (state.util / 100);
      fromCompute = true;
    }
    const price = priceFor(system);
    return hours === null ? null : { usd: hours * price.usd, fromCompute: fromCompute, ownPrice: price.own };
  }

  function smallNote(text) {
    const element = document.createElement("small");
    element.className = "figure-note";
    element.textContent = text;
    return element;
  }

  function renderCosts() {
    const heading = document.getElementById("cost-at-price-heading");
    if (heading) {
      heading.textContent = state.mode === "chip" ? label("CostAtOwn") : fill(label("CostAt"), usdPrice.format(state.price));
    }
    for (const system of data.systems) {
      const cell = document.querySelector('[data-cost-at-price="' + system.slug + '"]');
      if (!cell) continue;
      const cost = costAtPrice(system);
      cell.replaceChildren();
      if (cost === null) {
        const dash = document.createElement("span");
        dash.className = "muted";
        dash.textContent = "–";
        cell.append(dash);
        continue;
      }
      const value = document.createElement("span");
      value.className = "figure-value";
      value.textContent = usdCompact.format(cost.usd);
      cell.append(value);
      if (cost.fromCompute) cell.append(" ", smallNote(fill(label("FromCompute"), whole.format(state.util) + "%")));
      if (cost.ownPrice) cell.append(" ", smallNote(fill(label("OwnPrice"), system.chip_name)));
      const perCompute = document.querySelector('[data-per-compute-at-price="' + system.slug + '"] .figure-value');
      if (perCompute && system.compute) perCompute.textContent = usdCompact.format(cost.usd / (system.compute / 1e21));
    }
    utilOutput.textContent = whole.format(state.util) + "%";
    updateChart();
  }

  function query() {
    const params = new URLSearchParams();
    params.set("a", state.a);
    params.set("b", state.b);
    params.set("price", state.price.toFixed(2));
    params.set("util", String(state.util));
    if (state.hw) params.set("hw", state.hw);
    if (state.mode === "chip") params.set("mode", "chip");
    return params;
  }

  // The head-to-head's ratios and verdicts and the claim box are the server's: fetch them again once the visitor
  // stops moving a control.
  let settingsTimer = null;
  function refreshRatiosSoon() {
    clearTimeout(settingsTimer);
    settingsTimer = setTimeout(() => refresh(["head-to-head-results", "compare-claims", "price-mode-note"]), 250);
  }

  function keepInUrl() {
    history.replaceState(null, "", location.pathname + "?" + query().toString() + location.hash);
  }

  function setPrice(price, fromHardware) {
    if (!isFinite(price) || price <= 0) return;
    state.price = Math.round(price * 100) / 100;
    priceRange.value = String(state.price);
    if (document.activeElement !== priceInput) priceInput.value = state.price.toFixed(2);
    if (!fromHardware) {
      state.hw = "";
      hardwareSelect.value = "";
    }
    // A price, typed or taken from a chip, is one price for every chip.
    state.mode = "one";
    for (const input of modeInputs) input.checked = input.value === "one";
    renderCosts();
    keepInUrl();
    refreshRatiosSoon();
  }

  priceRange.addEventListener("input", () => setPrice(parseFloat(priceRange.value), false));
  priceInput.addEventListener("input", () => setPrice(parseFloat(priceInput.value), false));
  utilInput.addEventListener("input", () => {
    state.util = parseInt(utilInput.value, 10);
    renderCosts();
    keepInUrl();
    refreshRatiosSoon();
  });
  for (const input of modeInputs) {
    input.addEventListener("change", () => {
      if (!input.checked) return;
      state.mode = input.value === "chip" ? "chip" : "one";
      renderCosts();
      keepInUrl();
      refreshRatiosSoon();
    });
  }
  hardwareSelect.addEventListener("change", () => {
    const record = data.hardware.find((h) => h.slug === hardwareSelect.value);
    state.hw = record ? record.slug : "";
    if (record) setPrice(record.price, true);
    else keepInUrl();
  });
  for (const picker of [pickA, pickB]) {
    picker.addEventListener("change", () => {
      state.a = pickA.value;
      state.b = pickB.value;
      keepInUrl();
      refresh(["head-to-head-results"]);
    });
  }
  for (const form of document.querySelectorAll("#calculator-form, #pair-form")) {
    form.addEventListener("submit", (event) => event.preventDefault());
  }

  // --- the chart --------------------------------------------------------------------------------------------
  let chart = null;
  const ACCENT = "#c8102e";
  const SLATE = "#5b6f86";

  function chartData() {
    const systems = data.systems;
    return {
      labels: systems.map((s) => s.name),
      datasets: [
        {
          label: label("Sourced"),
          // A range floats from its low to its high end; a single figure is a bar from the axis.
          data: systems.map((s) => (s.cost === null ? null : s.cost[0] === s.cost[1] ? s.cost[1] : s.cost)),
          backgroundColor: systems.map((s) => (s.highlighted ? ACCENT : SLATE)),
        },
        {
          label: state.mode === "chip" ? label("AtOwnPrice") : label("AtPrice"),
          data: systems.map((s) => { const c = costAtPrice(s); return c === null ? null : c.usd; }),
          backgroundColor: systems.map((s) => (s.highlighted ? "rgba(200,16,46,.35)" : "rgba(91,111,134,.35)")),
          borderColor: systems.map((s) => (s.highlighted ? ACCENT : SLATE)),
          borderWidth: 1,
        },
      ],
    };
  }

  function updateChart() {
    if (!window.Chart) return;
    const canvas = document.getElementById("cost-chart");
    if (!chart) {
      chart = new window.Chart(canvas, {
        type: "bar",
        data: chartData(),
        options: {
          indexAxis: "y",
          animation: false,
          maintainAspectRatio: false,
          scales: {
            x: {
              type: "logarithmic",
              min: 1e5,
              ticks: { maxRotation: 0, callback: (value) => (/^10*$/.test(String(value)) ? usdCompact.format(value) : "") },
            },
          },
          plugins: {
            tooltip: {
              callbacks: {
                label: (ctx) => {
                  const raw = ctx.raw;
                  const text = Array.isArray(raw) ? usdCompact.format(raw[0]) + "–" + usdCompact.format(raw[1])
                    : usdCompact.format(raw);
                  return ctx.dataset.label + ": " + text;
                },
              },
            },
          },
        },
      });
      return;
    }
    const fresh = chartData();
    chart.data.labels = fresh.labels;
    chart.data.datasets.forEach((dataset, index) => Object.assign(dataset, fresh.datasets[index]));
    chart.update("none");
  }

  // --- live regions -----------------------------------------------------------------------------------------
  let refreshing = null;

  function refresh(ids) {
    const url = location.pathname + "?" + query().toString();
    const run = () => fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then((html) => {
        const fresh = new DOMParser().parseFromString(html, "text/html");
        const targets = ids || Array.from(document.querySelectorAll("[data-live-region]")).map((el) => el.id);
        for (const id of targets) {
          const now = document.getElementById(id);
          const next = fresh.getElementById(id);
          if (!now || !next) continue;
          now.innerHTML = next.innerHTML;
          now.classList.remove("just-updated");
          void now.offsetWidth; // restart the highlight animation
          now.classList.add("just-updated");
        }
        const freshData = fresh.getElementById("compare-data");
        if (freshData) {
          data = JSON.parse(freshData.textContent);
          refreshHardwareOptions(fresh);
        }
        renderCosts();
      })
      .catch(() => { /* the next event or reconnect tries again */ });
    // One fetch at a time; a burst of saves ends with one more fetch after the running one.
    refreshing = (refreshing || Promise.resolve()).then(run);
    return refreshing;
  }

  function refreshHardwareOptions(fresh) {
    const next = fresh.getElementById("hw");
    if (!next) return;
    hardwareSelect.innerHTML = next.innerHTML;
    hardwareSelect.value = state.hw;
  }

  // --- the live socket and the demo panel -------------------------------------------------------------------
  const panel = document.getElementById("demo-live");
  const statusLine = document.getElementById("live-status");
  const cells = {
    tokens: document.getElementById("demo-tokens-per-s"),
    inFlight: document.getElementById("demo-in-flight"),
    queue: document.getElementById("demo-queue"),
    backend: document.getElementById("demo-backend"),
    workers: document.getElementById("demo-workers"),
    cost: document.getElementById("demo-cost"),
  };
  const note = document.getElementById("demo-note");
  let connected = false;
  let everConnected = false;
  let lastFiguresAt = 0;
  let lastBusy = null; // {cost, at}: the cost measured the last time tokens were being generated
  let retryMs = 1000;

  function ageSeconds(at) {
    return Math.max(0, Math.round((Date.now() - at) / 1000));
  }

  function showStatus() {
    let text;
    let stateName;
    if (connected) {
      stateName = "live";
      const age = lastFiguresAt ? ageSeconds(lastFiguresAt) : 0;
      text = label("Live") + " · " + (age >= 3 ? fill(label("Age"), whole.format(age)) : label("Updated"));
    } else if (everConnected) {
      stateName = "lost";
      text = label("Lost");
      if (lastFiguresAt) text += " · " + fill(label("Age"), whole.format(ageSeconds(lastFiguresAt)));
    } else {
      stateName = "connecting";
      text = label("Connecting");
    }
    statusLine.dataset.state = stateName;
    statusLine.textContent = text;
    panel.classList.toggle("stale", !connected && lastFiguresAt > 0);
    panel.dataset.ageS = lastFiguresAt ? String(ageSeconds(lastFiguresAt)) : "";
    if (lastBusy && cells.cost.dataset.idle === "1") {
      note.textContent = label("LastBusy") + " · " + fill(label("Age"), whole.format(ageSeconds(lastBusy.at)));
    }
  }

  function showDemo(figures) {
    lastFiguresAt = Date.now();
    if (!figures.available) {
      note.textContent = label("Unavailable");
      showStatus();
      return;
    }
    cells.tokens.textContent = oneDecimal.format(figures.tokens_per_s);
    cells.inFlight.textContent = whole.format(figures.in_flight);
    cells.queue.textContent = whole.format(figures.queue_depth + figures.queued_in_engine);
    cells.workers.textContent = whole.format(figures.workers);
    cells.backend.textContent = figures.workers ? figures.backend || "–" : label("NoWorker");
    if (figures.cost_per_million_tokens_usd !== null) {
      lastBusy = { cost: figures.cost_per_million_tokens_usd, at: Date.now() };
      cells.cost.textContent = usdSmall.format(lastBusy.cost);
      cells.cost.dataset.idle = "0";
      note.textContent = "";
    } else {
      cells.cost.dataset.idle = "1";
      if (lastBusy) {
        cells.cost.textContent = usdSmall.format(lastBusy.cost);
      } else {
        cells.cost.textContent = "–";
        note.textContent = label("Idle");
      }
    }
    showStatus();
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/live/");
    socket.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "hello") {
        const wasLost = everConnected;
        connected = true;
        everConnected = true;
        retryMs = 1000;
        showStatus();
        // Content may have changed while the socket was down: fetch the figures once, as an event would.
        if (wasLost) refresh(null);
      } else if (frame.type === "update" && frame.topic === "demo") {
        showDemo(frame.payload);
      } else if (frame.type === "update" && frame.topic === "compare") {
        refresh(null);
      }
    });
    socket.addEventListener("close", () => {
      connected = false;
      showStatus();
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    });
  }

  renderCosts();
  showStatus();
  setInterval(showStatus, 1000);
  connect();
})();
