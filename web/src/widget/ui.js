// The widget's own elements, in a shadow root (the page's styles do not
// reach them) under one host element that the recorder blocks, so neither
// the widget nor the agent's pointer is sent back to the agent.

import { groupDigits } from "../shared/protocol.js";

export const HOST_ID = "gcb-cobrowse-widget";

const STYLE = `
:host { all: initial; }
.gcb { font: 15px/1.4 system-ui, sans-serif; color: #14202b; }
.dock { position: fixed; right: 20px; bottom: 20px; z-index: 2147483646; display: flex; flex-direction: column; align-items: flex-end; gap: 8px; }
button { font: inherit; border: 0; border-radius: 20px; padding: 8px 18px; cursor: pointer; background: #0b5cad; color: #fff; box-shadow: 0 2px 6px #0004; }
button.secondary { background: #fff; color: #0b5cad; border: 1px solid #0b5cad; box-shadow: none; padding: 4px 14px; }
.panel { background: #fff; border-radius: 10px; padding: 12px 16px; box-shadow: 0 4px 16px #0003; max-width: 300px; }
.digits { font: 600 34px/1.2 ui-monospace, monospace; letter-spacing: 2px; margin: 4px 0; }
.hint, .status { font-size: 13px; color: #44515e; }
.error { background: #fdecea; color: #8a1c12; border: 1px solid #e3a39b; border-radius: 8px; padding: 8px 12px; max-width: 300px; font-size: 13px; }
.banner { position: fixed; top: 0; left: 0; right: 0; z-index: 2147483646; background: #0b5cad; color: #fff; text-align: center; padding: 6px; font-weight: 600; }
.pointer { position: fixed; z-index: 2147483647; pointer-events: none; width: 18px; height: 18px; margin: -9px 0 0 -9px; border-radius: 50%; background: #e8710a; border: 2px solid #fff; box-shadow: 0 0 0 2px #e8710a; transition: left 60ms linear, top 60ms linear; }
.pointer span { position: absolute; left: 20px; top: -4px; background: #e8710a; color: #fff; font-size: 11px; padding: 1px 5px; border-radius: 4px; }
[hidden] { display: none !important; }
.actions { margin-top: 8px; }
`;

const TEMPLATE = `
<div class="gcb">
  <div class="banner" id="gcb-banner" hidden>An agent is viewing this page</div>
  <div class="pointer" id="gcb-agent-pointer" hidden><span>Agent</span></div>
  <div class="dock">
    <div class="error" id="gcb-error" role="alert" hidden></div>
    <div class="panel" id="gcb-panel" hidden>
      <div class="status" id="gcb-status"></div>
      <div id="gcb-code" hidden>
        <div class="digits" id="gcb-token"></div>
        <div class="hint">Read this number to the agent.</div>
      </div>
      <div class="actions"><button class="secondary" id="gcb-stop" type="button">Stop</button></div>
    </div>
    <button id="gcb-button" type="button">Co-browse</button>
  </div>
</div>`;

export class WidgetUi {
    constructor(doc, { onStart, onStop }) {
        const host = doc.createElement("div");
        host.id = HOST_ID;
        // A zero-size host: its blocked placeholder takes no room on the mirror.
        host.style.cssText = "position:fixed;width:0;height:0;top:0;left:0;";
        const root = host.attachShadow({ mode: "open" });
        // A constructed stylesheet, which a page's Content-Security-Policy
        // (style-src without 'unsafe-inline') does not block; else a <style>.
        if ("adoptedStyleSheets" in root && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
            const sheet = new CSSStyleSheet();
            sheet.replaceSync(STYLE);
            root.adoptedStyleSheets = [sheet];
            root.innerHTML = TEMPLATE;
        } else {
            root.innerHTML = `<style>${STYLE}</style>${TEMPLATE}`;
        }
        (doc.body || doc.documentElement).append(host);
        this.el = (id) => root.getElementById(id);
        this.el("gcb-button").addEventListener("click", onStart);
        this.el("gcb-stop").addEventListener("click", onStop);
        this.pointerTimer = null;
    }

    /** "connecting", "waiting" (token shown), "active", "ended", "idle". */
    show(state, { token, text } = {}) {
        const el = this.el;
        el("gcb-button").hidden = !(state === "idle" || state === "ended");
        el("gcb-panel").hidden = state === "idle";
        el("gcb-code").hidden = !(state === "waiting" || state === "active");
        el("gcb-stop").hidden = !(state === "connecting" || state === "waiting" || state === "active");
        el("gcb-banner").hidden = state !== "active";
        if (token) el("gcb-token").textContent = groupDigits(token);
        el("gcb-status").textContent = text || "";
        el("gcb-panel").dataset.state = state;
        if (state !== "active") this.pointer({ hide: true });
        if (state !== "ended" && state !== "idle") this.error(null);
    }

    error(text) {
        this.el("gcb-error").hidden = !text;
        this.el("gcb-error").textContent = text || "";
    }

    /** The agent's pointer, in viewport coordinates. */
    pointer({ x, y, hide }) {
        const p = this.el("gcb-agent-pointer");
        clearTimeout(this.pointerTimer);
        if (hide || !Number.isFinite(x) || !Number.isFinite(y)) {
            p.hidden = true;
            return;
        }
        p.style.left = `${x}px`;
        p.style.top = `${y}px`;
        p.hidden = false;
        this.pointerTimer = setTimeout(() => { p.hidden = true; }, 5000);
    }
}
