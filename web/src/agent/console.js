// The agent console, served by the nodes at <ctx>/agent/: sign in with an
// agent credential, type the customer's number, find its node with Get
// Session, join it over CometD as controller (so "Stop session" works) and
// replay the customer's page live with rrweb's Replayer in a sandboxed
// iframe (no scripts; pointer events off, so links are not followed).
// Several consoles may watch one session; each asks for a fresh snapshot
// when it (re)joins.

import { CometD } from "cometd";
import { Replayer } from "@rrweb/replay";

import { Reassembler, dataChannel, groupDigits } from "../shared/protocol.js";

const CALL_TIMEOUT_MS = 10000;
const PING_EVERY_MS = 2000;
const POINTER_EVERY_MS = 40;
const CREDENTIAL_KEY = "gcb-agent-credential";
const WATCHING_KEY = "gcb-agent-watching";
/** rrweb's event types and the incremental sources that are the pointer. */
const META = 4;
const FULL_SNAPSHOT = 2;
const INCREMENTAL = 3;
const POINTER_SOURCES = new Set([1, 2, 6, 12]); // MouseMove, MouseInteraction, TouchMove, Drag

const $ = (id) => document.getElementById(id);
const base = location.pathname.replace(/\/agent\/.*$/, "");
const context = `${location.origin}${base}`;

let credential = null;
let watch = null;

function message(text) {
    $("message").hidden = !text;
    $("message").textContent = text || "";
}

function claims(jwt) {
    try {
        const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
        return JSON.parse(atob(payload));
    } catch (e) {
        return null;
    }
}

function signIn(raw) {
    const value = (raw || "").trim();
    const c = claims(value);
    if (!c || !c.sub) {
        message("That is not an agent credential (a JWT such as make run prints).");
        return false;
    }
    if (c.exp && c.exp * 1000 < Date.now()) {
        message("This credential has expired: get a new one.");
        return false;
    }
    credential = { token: value, sub: String(c.sub) };
    sessionStorage.setItem(CREDENTIAL_KEY, value);
    $("agent-name").textContent = credential.sub;
    $("signed-out").hidden = true;
    $("signed-in").hidden = false;
    message(null);
    return true;
}

function signOut() {
    if (watch) watch.close("Signed out.");
    credential = null;
    sessionStorage.removeItem(CREDENTIAL_KEY);
    sessionStorage.removeItem(WATCHING_KEY);
    $("signed-out").hidden = false;
    $("signed-in").hidden = true;
}

/** Get Session: which node holds the session (through the proxy, which
 *  finds the owner by asking the nodes). */
async function findSession(token) {
    const response = await fetch(`${context}/rest/live/sessions/${token}`, {
        headers: { Authorization: `Bearer ${credential.token}` },
        cache: "no-store",
    });
    let body = {};
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    if (response.ok) return body;
    const why = {
        404: "No live session has this number. Check it with the customer.",
        410: "This session has already ended.",
        403: "The co-browse nodes do not accept this console's origin (--allowed-origins).",
        429: `Too many attempts: ${body.message || "wait a while and try again"}.`,
        503: "The session's server is unavailable.",
    }[response.status];
    throw new Error(why || `Get Session answered ${response.status}: ${body.message || ""}`);
}

class Watch {
    constructor(token) {
        this.token = token;
        this.closed = false;
        this.replayer = null;
        this.parts = new Reassembler();
        this.pings = new Map();
        this.nextPing = 1;
        this.ready = false;
        this.lastPointer = 0;
        this.pointerTimer = null;
    }

    state(text) {
        $("state").textContent = text;
        $("state").dataset.state = text;
    }

    async start() {
        $("session").hidden = false;
        $("session-token").textContent = groupDigits(this.token);
        $("node").textContent = "—";
        $("latency").textContent = "—";
        $("people").textContent = "—";
        $("stop").disabled = true;
        this.state("finding the session");
        const found = await findSession(this.token);
        if (this.closed) return;
        this.node = found.sessionServerName;
        $("node").textContent = this.node;
        this.state("joining");
        await this.join();
    }

    join() {
        return new Promise((resolve, reject) => {
            const cometd = new CometD("cobrowse-agent");
            this.cometd = cometd;
            cometd.unregisterTransport("websocket");
            cometd.unregisterTransport("callback-polling");
            // The node that holds the session, for the handshake (later
            // requests carry a clientId that names it).
            cometd.configure({ url: `${context}/cometd?gcbSessionServer=${encodeURIComponent(this.node)}`, logLevel: "warn", useWorkerScheduler: false, maxSendBayeuxMessageSize: 128 * 1024 });
            let handshakes = 0;
            cometd.addListener("/meta/handshake", (m) => {
                if (m.successful && ++handshakes > 1 && this.userToken) this.close("The connection to the session's server was lost.");
            });
            cometd.addListener("/meta/connect", (m) => {
                if (!m.successful && this.userToken) this.verify();
            });
            cometd.addListener("/service/session/deactivated", () => this.close("The session has ended."));
            cometd.addListener("/service/session/joined", (m) => this.people(m.data));
            cometd.handshake((h) => {
                if (!h.successful) {
                    reject(new Error("The session's server refused the connection."));
                    return;
                }
                const join = { sessionToken: this.token, role: 3, name: credential.sub, agentToken: credential.token };
                cometd.remoteCall("session/join", join, CALL_TIMEOUT_MS, (r) => {
                    if (!r.successful) {
                        const error = String(r.error || "");
                        reject(new Error(error.startsWith("401")
                            ? "Your credential was refused (expired, or not valid for this session): sign in again."
                            : `The join was refused (${error || "no answer"}).`));
                        return;
                    }
                    this.userToken = r.data.userToken;
                    this.users = r.data.users || [];
                    this.showPeople();
                    cometd.subscribe(dataChannel(this.token), (m) => this.onMessage(m.data), (s) => {
                        if (!s.successful) {
                            reject(new Error("The session's page could not be subscribed to."));
                            return;
                        }
                        $("stop").disabled = false;
                        this.state("waiting for the page");
                        this.publish({ t: "need-snapshot" });
                        this.pingTimer = setInterval(() => this.ping(), PING_EVERY_MS);
                        resolve();
                    });
                });
            });
        });
    }

    people(user) {
        if (!user || this.users.some((u) => u.userId === user.userId)) return;
        this.users.push(user);
        this.showPeople();
    }

    showPeople() {
        const names = { 1: "customer", 2: "agent", 3: "agent (controller)" };
        $("people").textContent = this.users.map((u) => `${u.agentId || u.name || "?"} — ${names[u.role] || u.role}`).join(", ");
    }

    publish(data) {
        if (!this.closed && this.cometd) this.cometd.publish(dataChannel(this.token), data);
    }

    ping() {
        const id = this.nextPing++;
        this.pings.set(id, performance.now());
        if (this.pings.size > 10) this.pings.delete(this.pings.keys().next().value);
        this.publish({ t: "ping", id, at: Date.now() });
    }

    onMessage(data) {
        if (this.closed || !data || typeof data !== "object") return;
        if (data.t === "part") {
            const whole = this.parts.push(data);
            if (whole) this.onMessage(whole);
            return;
        }
        if (data.t === "pong") {
            const sent = this.pings.get(data.id);
            if (sent !== undefined) {
                this.pings.delete(data.id);
                const rtt = Math.round(performance.now() - sent);
                $("latency").textContent = `${rtt} ms round trip`;
                $("latency").dataset.rtt = String(rtt);
            }
            return;
        }
        if (data.t === "ev" && Array.isArray(data.e)) {
            for (const event of data.e) this.onEvent(event);
        }
    }

    onEvent(event) {
        // Until a snapshot starts (Meta, then FullSnapshot) the events are
        // of a page this console has not seen.
        if (!this.ready) {
            if (event.type !== META) return;
            this.ready = true;
        }
        // Played on arrival, whatever the customer's clock says: page
        // changes are stamped before the replayer's start, which applies
        // them at once ("sync"); pointer events are stamped now and go
        // through its timer (one animation frame), which animates them.
        if (!this.replayer) this.createReplayer();
        const pointer = event.type === INCREMENTAL && POINTER_SOURCES.has(event.data && event.data.source);
        event.timestamp = pointer ? Math.max(Date.now(), this.baseline) : this.baseline - 1;
        this.replayer.addEvent(event);
        if (event.type === FULL_SNAPSHOT) {
            this.state("live");
            $("placeholder").hidden = true;
        }
    }

    createReplayer() {
        const mirror = $("mirror");
        mirror.replaceChildren();
        this.replayer = new Replayer([], {
            root: mirror,
            liveMode: true,
            mouseTail: false,
            showWarning: false,
            showDebug: false,
            triggerFocus: false,
            UNSAFE_replayCanvas: false,
            // Applied straight to the mirror: a virtual DOM would only be
            // flushed when a replay is "played", which live mode never does.
            useVirtualDom: false,
            insertStyleRules: [
                ".gcb-blocked { background: repeating-linear-gradient(45deg, #d7dbe0 0 8px, #f1f3f5 8px 16px) !important; outline: 1px dashed #8894a1; }",
            ],
            plugins: [{
                // Elements the page blocked arrive as empty boxes of their
                // size: mark them so the agent sees a placeholder.
                onBuild: (node, { replayer }) => {
                    const meta = replayer.getMirror().getMeta(node);
                    if (meta && meta.attributes && meta.attributes.rr_width && node.classList) node.classList.add("gcb-blocked");
                },
            }],
        });
        this.replayer.on("resize", () => this.fit());
        this.baseline = Date.now();
        this.replayer.startLive(this.baseline);
        this.wrapper = mirror.querySelector(".replayer-wrapper");
    }

    /** Scales the mirror to the stage. */
    fit() {
        const iframe = this.replayer && this.replayer.iframe;
        if (!iframe || !this.wrapper) return;
        const w = parseFloat(iframe.width) || iframe.clientWidth;
        const h = parseFloat(iframe.height) || iframe.clientHeight;
        const stage = document.querySelector(".stage");
        const scale = Math.min(1, (stage.clientWidth - 24) / w, (stage.clientHeight - 24) / h);
        this.scale = scale > 0 ? scale : 1;
        this.wrapper.style.transform = `scale(${this.scale})`;
    }

    /** The agent's pointer, in the customer's viewport coordinates. */
    pointer(e) {
        const iframe = this.replayer && this.replayer.iframe;
        if (!iframe) return;
        const rect = iframe.getBoundingClientRect();
        const scale = this.scale || 1;
        const x = Math.round((e.clientX - rect.left) / scale);
        const y = Math.round((e.clientY - rect.top) / scale);
        const send = () => {
            this.lastPointer = performance.now();
            this.publish({ t: "pointer", x, y });
        };
        clearTimeout(this.pointerTimer);
        const wait = POINTER_EVERY_MS - (performance.now() - this.lastPointer);
        if (wait <= 0) send();
        else this.pointerTimer = setTimeout(send, wait);
    }

    /** The connection failed: is the session still there? */
    async verify() {
        if (this.closed || this.verifying) return;
        this.verifying = true;
        let reason = null;
        try {
            const response = await fetch(`${context}/rest/live/sessions/${this.token}?gcbSessionServer=${encodeURIComponent(this.node)}`, {
                headers: { Authorization: `Bearer ${credential.token}` },
                cache: "no-store",
            });
            if (response.status === 503) reason = "The session has ended: its server is unavailable.";
            else if (response.status !== 200) reason = "The session has ended.";
        } catch (e) {
            reason = "The session has ended: the co-browse service cannot be reached.";
        }
        this.verifying = false;
        if (reason) this.close(reason);
    }

    stop() {
        if (!this.cometd || !this.userToken) return;
        $("stop").disabled = true;
        this.cometd.remoteCall("session/stop", { userToken: this.userToken }, CALL_TIMEOUT_MS, (r) => {
            if (!r.successful) {
                $("stop").disabled = false;
                message(`Stop was refused (${r.error || "no answer"}).`);
            }
            // Success: /service/session/deactivated closes the watch.
        });
    }

    /** Ends watching; the session itself goes on unless it ended. */
    close(reason) {
        if (this.closed) return;
        this.closed = true;
        clearInterval(this.pingTimer);
        clearTimeout(this.pointerTimer);
        sessionStorage.removeItem(WATCHING_KEY);
        if (this.cometd) this.cometd.disconnect();
        this.state(`ended: ${reason}`);
        $("stop").disabled = true;
        $("watch").disabled = false;
        if (watch === this) watch = null;
    }
}

async function startWatching(raw) {
    const token = String(raw || "").replace(/\D/g, "");
    if (!/^\d{9}$/.test(token)) {
        message("A co-browse number has nine digits.");
        return;
    }
    if (watch) watch.close("Switched to another session.");
    message(null);
    $("placeholder").hidden = false;
    $("mirror").replaceChildren();
    const w = new Watch(token);
    watch = w;
    $("watch").disabled = true;
    sessionStorage.setItem(WATCHING_KEY, token);
    try {
        await w.start();
    } catch (error) {
        w.close(error.message);
        message(error.message);
    }
}

function init() {
    $("sign-in").addEventListener("click", () => signIn($("credential").value));
    $("sign-out").addEventListener("click", signOut);
    $("watch-form").addEventListener("submit", (e) => {
        e.preventDefault();
        startWatching($("token").value);
    });
    $("stop").addEventListener("click", () => watch && watch.stop());
    $("mirror").addEventListener("mousemove", (e) => watch && watch.pointer(e));
    $("mirror").addEventListener("mouseleave", () => watch && watch.publish({ t: "pointer", hide: true }));
    addEventListener("resize", () => watch && watch.fit());
    // Leaving the page only disconnects: the session goes on for the others.
    addEventListener("pagehide", () => { if (watch && watch.cometd) watch.cometd.disconnect(); });
    // A reload signs in again and goes on watching (with a fresh snapshot).
    const saved = sessionStorage.getItem(CREDENTIAL_KEY);
    if (saved && signIn(saved)) {
        const watching = sessionStorage.getItem(WATCHING_KEY);
        if (watching) {
            $("token").value = groupDigits(watching);
            startWatching(watching);
        }
    }
}

init();
