// One co-browse session driven by the official CometD JavaScript client
// (npm `cometd` + `cometd-nodejs-client`) through the sticky proxy.
//
// usage: node scenario.mjs <proxyBaseUrl> <websocket|long-polling> <cookies|blocked> <origin> <agentToken>
//
// Joins as the nodes require: the customer with the `customerKey` its
// create answered, the agent with `agentToken` in the join's data, the
// controller with `ext.agentToken` on its handshake. An outsider without a
// credential is refused (401) and cannot subscribe.
//
// `cookies`: the client keeps cookies; the customer creates the session over
// CometD and the gcbSessionServer cookie keeps it on its node.
// `blocked`: the client keeps no cookies (a browser blocking third-party
// cookies); the customer learns its node from REST Create Session and every
// client names the node with the gcbSessionServer query parameter.
//
// Prints one JSON line with what happened; exits 1 on the first failure.

import { adapt } from "cometd-nodejs-client";
import { CometD } from "cometd";
import http from "node:http";

const [base, transport, cookieMode, origin, agentToken] = process.argv.slice(2);
const context = `${base}/cobrowse`;
const minLongPollCycles = 100;

adapt(cookieMode === "blocked"
    ? { cookies: { storeCookie: (uri, header, cb) => cb(), retrieveCookies: (ctx, uri, cb) => cb(null, []) } }
    : {});

const fail = (why) => {
    console.log(JSON.stringify({ ok: false, why: String(why) }));
    process.exit(1);
};
setTimeout(() => fail("scenario timed out"), 60_000).unref();

function rest(method, path, body) {
    return new Promise((resolve, reject) => {
        const req = http.request(`${context}${path}`, {
            method,
            headers: { Origin: origin, "Content-Type": "application/json" },
        }, (res) => {
            let data = "";
            res.on("data", (c) => data += c);
            res.on("end", () => res.statusCode === 200
                ? resolve(JSON.parse(data))
                : reject(new Error(`${method} ${path}: ${res.statusCode} ${data}`)));
        });
        req.on("error", reject);
        req.end(body ? JSON.stringify(body) : undefined);
    });
}

const errors402 = [];

function client(name, node, handshakeExt) {
    const cometd = new CometD(name);
    if (handshakeExt) {
        cometd.registerExtension("agent", { outgoing: (m) => {
            if (m.channel === "/meta/handshake") m.ext = { ...(m.ext ?? {}), ...handshakeExt };
            return m;
        } });
    }
    for (const t of cometd.getTransportTypes()) {
        if (t !== transport) cometd.unregisterTransport(t);
    }
    const url = node ? `${context}/cometd?gcbSessionServer=${encodeURIComponent(node)}` : `${context}/cometd`;
    cometd.configure({ url, logLevel: "warn" });
    const seen = { joined: [], activated: 0, deactivated: 0, data: [], connects: 0 };
    cometd.addListener("/service/session/joined", (m) => seen.joined.push(m.data));
    cometd.addListener("/service/session/activated", () => seen.activated++);
    cometd.addListener("/service/session/deactivated", () => seen.deactivated++);
    const count402 = (m) => {
        if (m && typeof m.error === "string" && m.error.startsWith("402")) errors402.push(`${name}: ${m.channel}`);
    };
    cometd.addListener("/meta/connect", (m) => { count402(m); if (m.successful) seen.connects++; });
    cometd.addListener("/meta/unsuccessful", count402);
    return { cometd, seen, name };
}

const handshake = ({ cometd, name }) => new Promise((resolve, reject) =>
    cometd.handshake((reply) => reply.successful ? resolve(reply) : reject(new Error(`${name} handshake: ${JSON.stringify(reply)}`))));

// Service channels answer a remoteCall: `/service/session/join` is target `session/join`.
const call = ({ cometd, name }, channel, data) => new Promise((resolve, reject) =>
    cometd.remoteCall(channel.replace(/^\/service\//, ""), data, 10_000, (reply) => reply.successful
        ? resolve(reply.data)
        : reject(new Error(`${name} ${channel}: ${reply.error ?? JSON.stringify(reply.failure?.reason)}`))));

const subscribe = ({ cometd, seen }, channel) => new Promise((resolve) =>
    cometd.subscribe(channel, (m) => seen.data.push(m.data), (reply) => resolve(reply)));

async function until(what, check, ms = 20_000) {
    const start = Date.now();
    while (!check()) {
        if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
    }
}

async function main() {
    // The customer creates a session.
    let customer, token, node, customerKey;
    if (cookieMode === "blocked") {
        const created = await rest("POST", "/rest/live/sessions");
        token = created.sessionToken;
        node = created.sessionServerName;
        customerKey = created.customerKey;
        customer = client("customer", node);
        await handshake(customer);
    } else {
        customer = client("customer");
        const hs = await handshake(customer);
        const created = await call(customer, "/service/session/create", {});
        token = created.sessionToken;
        node = created.sessionServerName;
        customerKey = created.customerKey;
        if (hs.ext?.gcbSessionServer !== node) throw new Error(`handshake on ${hs.ext?.gcbSessionServer}, session on ${node}`);
    }
    const channel = `/session/${token}/data`;
    await call(customer, "/service/session/join", { sessionToken: token, role: 1, name: "Customer", customerKey });
    const sub = await subscribe(customer, channel);
    if (!sub.successful) throw new Error(`customer subscribe: ${sub.error}`);

    // Agent and controller learn the node from Get Session and join there.
    const found = await rest("GET", `/rest/live/sessions/${token}`);
    if (found.sessionServerName !== node) throw new Error(`Get Session says ${found.sessionServerName}, not ${node}`);
    const agent = client("agent", found.sessionServerName);
    await handshake(agent);
    await call(agent, "/service/session/join", { sessionToken: token, role: 2, name: "Agent", agentToken });
    await subscribe(agent, channel);
    const controller = client("controller", found.sessionServerName, { agentToken });
    await handshake(controller);
    const ctl = await call(controller, "/service/session/join", { sessionToken: token, role: 3, name: "Controller" });
    await subscribe(controller, channel);

    await until("customer hears both joins", () => customer.seen.joined.length >= 2);
    if (customer.seen.joined[0].role !== 2 || customer.seen.joined[1].role !== 3) throw new Error(`joined: ${JSON.stringify(customer.seen.joined)}`);
    if (customer.seen.joined[0].agentId !== "agent-e2e") throw new Error(`the agent is not named: ${JSON.stringify(customer.seen.joined[0])}`);
    await until("everyone sees activated", () => [customer, agent, controller].every((c) => c.seen.activated === 1));

    // Page content from the customer reaches the agent side, in order.
    const count = 50;
    for (let i = 0; i < count; i++) customer.cometd.publish(channel, { seq: i });
    await until("agent and controller receive the content", () => agent.seen.data.length >= count && controller.seen.data.length >= count);
    for (const c of [agent, controller]) {
        const seqs = c.seen.data.map((d) => d.seq);
        if (seqs.some((s, i) => s !== i) || seqs.length !== count) throw new Error(`${c.name} got ${JSON.stringify(seqs)}`);
    }
    if (customer.seen.data.length !== 0) throw new Error("the customer got its own content back");

    // An outsider on the same node cannot subscribe to the session.
    const outsider = client("outsider", node);
    await handshake(outsider);
    const refused = await call(outsider, "/service/session/join", { sessionToken: token, role: 2, name: "Eve" })
        .then(() => null, (e) => e.message);
    if (!refused?.includes("401::agent_auth_required")) throw new Error(`an outsider joined as agent: ${refused}`);
    const denied = await subscribe(outsider, channel);
    if (denied.successful) throw new Error("an outsider subscribed to the session channel");

    // Long-polling: keep going until every client has done many connect cycles.
    if (transport === "long-polling") {
        await until(`${minLongPollCycles} long-poll cycles`, () => customer.seen.connects >= minLongPollCycles, 40_000);
    }

    // The controller stops the session; everyone sees it end.
    await call(controller, "/service/session/stop", { userToken: ctl.userToken });
    await until("everyone sees deactivated", () => [customer, agent, controller].every((c) => c.seen.deactivated === 1));

    if (errors402.length) throw new Error(`402::Unknown client seen: ${errors402.join(", ")}`);
    for (const c of [customer, agent, controller, outsider]) c.cometd.disconnect();
    console.log(JSON.stringify({
        ok: true, transport, cookieMode, node, token,
        customerConnects: customer.seen.connects,
        delivered: agent.seen.data.length,
        outsiderDenied: denied.error,
        outsiderRefused: refused,
    }));
    process.exit(0);
}

main().catch(fail);
