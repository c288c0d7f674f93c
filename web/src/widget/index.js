// The customer widget: the one script a website adds,
//   <script src="https://cobrowse.example.com/cobrowse/widget.js" async></script>
// It shows a "Co-browse" button; a click creates a session over CometD
// (long-polling: the node's CORS answer then decides which sites may use
// it, and the proxy routes every request by its clientId, so blocked
// third-party cookies do not matter), joins as the customer, shows the
// nine-digit token, and streams the page with rrweb's recorder, masked as
// masking.js says, until either side stops or the session's node is gone.

import { CometD } from "cometd";
import { record } from "@rrweb/record";

import { dataChannel } from "../shared/protocol.js";
import { recordMaskingOptions } from "./masking.js";
import { Streamer } from "./stream.js";
import { HOST_ID, WidgetUi } from "./ui.js";

const CALL_TIMEOUT_MS = 10000;

function Widget(base) {
    this.base = base;
    this.session = null;
}

Widget.prototype.mount = function mount() {
    this.ui = new WidgetUi(document, {
        onStart: () => this.start(),
        onStop: () => this.stop("You stopped the session."),
    });
    this.ui.show("idle");
    addEventListener("pagehide", () => this.leaveOnUnload());
};

Widget.prototype.start = async function start() {
    if (this.session) return;
    const session = { ended: false };
    this.session = session;
    this.ui.show("connecting", { text: "Connecting to the co-browse service…" });
    try {
        await this.checkOrigin();
        if (session.ended) return;
        await this.open(session);
    } catch (error) {
        this.fail(session, error && error.message ? error.message : String(error));
    }
};

/** Whether the co-browse nodes accept this site; a clear refusal if not. */
Widget.prototype.checkOrigin = async function checkOrigin() {
    let answer;
    try {
        const response = await fetch(`${this.base}/widget/origin`, { credentials: "omit", cache: "no-store" });
        answer = await response.json();
    } catch (e) {
        throw new Error("Co-browse is not available right now: the co-browse service cannot be reached.");
    }
    if (!answer.allowed) {
        const origin = answer.origin || location.origin;
        console.error(`co-browse: the co-browse service does not accept pages from ${origin}: add it to the nodes' --allowed-origins`);
        throw new Error(`Co-browse is not enabled for this website (${origin} is not an allowed origin of the co-browse service).`);
    }
};

Widget.prototype.open = function open(session) {
    return new Promise((resolve, reject) => {
        const cometd = new CometD("cobrowse-widget");
        cometd.unregisterTransport("websocket");
        cometd.unregisterTransport("callback-polling");
        // No worker-based timers: a page's CSP (worker-src) may forbid blob: workers.
        cometd.configure({
            url: `${this.base}/cometd`,
            logLevel: "warn",
            useWorkerScheduler: false,
            // Our messages are split to fit MAX_MESSAGE_BYTES (96 KiB); the
            // client's own default refuses anything over 8 KiB.
            maxSendBayeuxMessageSize: 128 * 1024,
        });
        session.cometd = cometd;
        let handshakes = 0;
        cometd.addListener("/meta/handshake", (m) => {
            if (!m.successful) return;
            // A second handshake means the node forgot this client (or is
            // another node): the session cannot be continued from here.
            if (++handshakes > 1 && session.token) this.end(session, "The connection to the co-browse service was lost.");
        });
        cometd.addListener("/meta/connect", (m) => {
            if (!m.successful && session.token) this.verify(session);
        });
        cometd.addListener("/service/session/activated", () => this.active(session));
        cometd.addListener("/service/session/deactivated", () => this.end(session, "The co-browse session has ended."));
        cometd.handshake((h) => {
            if (!h.successful) {
                reject(new Error("Co-browse is not available right now: the co-browse service refused the connection."));
                return;
            }
            cometd.remoteCall("session/create", {}, CALL_TIMEOUT_MS, (created) => {
                if (!created.successful) {
                    reject(new Error(`Co-browse is not available right now (${created.error || "the session could not be created"}).`));
                    return;
                }
                const { sessionToken, sessionServerName, customerKey } = created.data;
                cometd.remoteCall("session/join", { sessionToken, role: 1, name: "Customer", customerKey }, CALL_TIMEOUT_MS, (joined) => {
                    if (!joined.successful) {
                        reject(new Error(`Co-browse could not start (${joined.error || "join refused"}).`));
                        return;
                    }
                    session.token = sessionToken;
                    session.node = sessionServerName;
                    session.userToken = joined.data.userToken;
                    session.channel = dataChannel(sessionToken);
                    session.streamer = new Streamer(cometd, session.channel, {
                        onFailure: async (why) => {
                            await this.verify(session);
                            if (!session.ended) this.end(session, `Co-browse stopped: the page could not be sent (${why}).`);
                        },
                    });
                    cometd.subscribe(session.channel, (m) => this.onMessage(session, m.data), (sub) => {
                        if (!sub.successful) {
                            reject(new Error("Co-browse could not start (subscription refused)."));
                            return;
                        }
                        if (session.ended) return;
                        this.ui.show("waiting", { token: sessionToken, text: "Your co-browse number:" });
                        resolve();
                    });
                });
            });
        });
    });
};

Widget.prototype.onMessage = function onMessage(session, data) {
    if (session.ended || !data || typeof data !== "object") return;
    switch (data.t) {
        case "need-snapshot":
            this.active(session);
            if (session.stopRecording) record.takeFullSnapshot(true);
            else this.startRecording(session);
            break;
        case "pointer":
            this.ui.pointer(data);
            break;
        case "ping":
            session.streamer.send({ t: "pong", id: data.id, at: data.at });
            break;
        default:
            break;
    }
};

Widget.prototype.active = function active(session) {
    if (session.ended || session.active) return;
    session.active = true;
    this.ui.show("active", { token: session.token, text: "Co-browsing with an agent." });
};

Widget.prototype.startRecording = function startRecording(session) {
    session.stopRecording = record({
        emit: (event) => session.streamer.event(event),
        ...recordMaskingOptions(`#${HOST_ID}`),
        slimDOMOptions: { script: true, comment: true, headFavicon: true, headWhitespace: true, headMetaSocial: true, headMetaRobots: true, headMetaHttpEquiv: true, headMetaVerification: true, headMetaAuthorship: true, headMetaDescKeywords: true },
        recordCanvas: false,
        collectFonts: false,
        inlineImages: false,
        sampling: { mousemove: 50, mousemoveCallback: 50, scroll: 50, input: "last", media: 800 },
    });
};

/** The connection failed: is the session still there? (Its node may be gone:
 *  the proxy then answers 503 for it.) */
Widget.prototype.verify = async function verify(session) {
    if (session.ended) return;
    if (session.verifying) return session.verifying;
    session.verifying = this.check(session);
    await session.verifying;
    session.verifying = null;
};

Widget.prototype.check = async function check(session) {
    let reason = null;
    try {
        const url = `${this.base}/rest/live/sessions/${session.token}?gcbSessionServer=${encodeURIComponent(session.node)}`;
        const response = await fetch(url, { credentials: "omit", cache: "no-store" });
        if (response.status === 503) reason = "The co-browse session has ended: its server is unavailable.";
        else if (response.status !== 200) reason = "The co-browse session has ended.";
    } catch (e) {
        // The proxy's own 503 carries no CORS headers: to this page it is a
        // network error, like an unreachable service.
        reason = "The co-browse session has ended: its server cannot be reached.";
    }
    if (reason) this.end(session, reason);
};

Widget.prototype.stop = function stop(reason) {
    const session = this.session;
    if (!session || session.ended) return;
    if (session.cometd && session.userToken) {
        const cometd = session.cometd;
        // Disconnect once the exit is answered, so it is not cut off.
        cometd.remoteCall("session/exit", { userToken: session.userToken }, CALL_TIMEOUT_MS, () => cometd.disconnect());
        this.end(session, reason, { keepConnection: true });
        return;
    }
    this.end(session, reason);
};

/** The customer leaves the page: the session ends with it (a page view is
 *  one session), so the agents are told instead of watching a frozen page. */
Widget.prototype.leaveOnUnload = function leaveOnUnload() {
    const session = this.session;
    if (!session || session.ended || !session.cometd || !session.userToken) return;
    const clientId = session.cometd.getClientId();
    if (clientId) {
        const body = JSON.stringify([{ channel: "/service/session/exit", clientId, id: "exit", data: { userToken: session.userToken } }]);
        fetch(`${this.base}/cometd`, { method: "POST", keepalive: true, credentials: "include", headers: { "Content-Type": "application/json" }, body }).catch(() => {});
    }
    this.end(session, "You left the page.", { quiet: true });
};

Widget.prototype.end = function end(session, reason, { quiet, keepConnection } = {}) {
    if (session.ended) return;
    session.ended = true;
    if (session.stopRecording) session.stopRecording();
    if (session.streamer) session.streamer.stop();
    if (session.cometd && !keepConnection) session.cometd.disconnect();
    if (this.session === session) this.session = null;
    if (!quiet) this.ui.show("ended", { text: reason });
};

Widget.prototype.fail = function fail(session, message) {
    this.end(session, "", { quiet: true });
    this.ui.show("idle");
    this.ui.error(message);
};

// Last: everything above is defined by now.
(function main() {
    if (window.__gcbCobrowse) return;
    const script = document.currentScript;
    const src = script && script.src ? script.src : "";
    const base = src.replace(/\/widget\.js(\?.*)?$/, "");
    if (!base || base === src) {
        console.error("co-browse: cannot tell the co-browse server from this script's URL (expected …/widget.js)");
        return;
    }
    const widget = new Widget(base);
    window.__gcbCobrowse = widget;
    if (document.body) widget.mount();
    else document.addEventListener("DOMContentLoaded", () => widget.mount(), { once: true });
})();
