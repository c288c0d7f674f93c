// The co-browse end-to-end test in real Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; never a downloaded browser), against a real
// proxy and three real nodes that integration/tests/browser.rs starts.
//
// usage: node browser.mjs '<json config>'
//   {proxy, demo, disallowedDemo, hostRules, agentToken, nodes: {name: pid},
//    artifacts, activitySeconds, changes}
//
// The customer browser blocks third-party cookies in its profile; the demo
// shop is on another site than the proxy. Every request body the customer
// page sends and every answer the agent console gets is captured, and the
// masked values must be in none of them. Prints one JSON line with the
// measurements; exits 1 on the first failure.

import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const cfg = JSON.parse(process.argv[2]);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_MS = 10_000;
const SECRETS = {
    name: "Zaphira Quenneville",
    password: "Hunter2-Xq9!pass",
    card: "4111 5555 6666 7777",
    cardDigits: "4111555566667777",
    loyalty: "LC-5530-2291",
    address: "Juniper Lane",
};
const COMMENT = "hello from the customer 42";

let current = "start";
const timings = {};
function fail(why) {
    console.log(JSON.stringify({ ok: false, step: current, why: String(why && why.stack || why) }));
    process.exit(1);
}
setTimeout(() => fail("the browser test timed out"), 170_000).unref();
process.on("unhandledRejection", fail);

async function step(name, fn) {
    current = name;
    const t = Date.now();
    const value = await fn();
    timings[name] = Date.now() - t;
    console.error(`ok ${name} (${timings[name]} ms)`);
    return value;
}

function assert(cond, why) {
    if (!cond) throw new Error(why);
}

mkdirSync(cfg.artifacts, { recursive: true });

// --- browsers ------------------------------------------------------------
// The customer: a profile that blocks third-party cookies (the preference a
// person sets in chrome://settings/cookies, and the phase-out switch).
const profile = mkdtempSync(join(tmpdir(), "cobrowse-customer-"));
mkdirSync(join(profile, "Default"), { recursive: true });
writeFileSync(join(profile, "Default", "Preferences"), JSON.stringify({
    profile: { block_third_party_cookies: true, cookie_controls_mode: 1 },
}));
const customerCtx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1000, height: 700 },
    args: ["--test-third-party-cookie-phaseout", `--host-resolver-rules=${cfg.hostRules}`, "--no-first-run"],
});
const customer = customerCtx.pages()[0] || await customerCtx.newPage();
const agentBrowser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
const agentCtx = await agentBrowser.newContext({ viewport: { width: 1400, height: 900 } });
const agent = await agentCtx.newPage();
customer.setDefaultTimeout(STEP_MS);
agent.setDefaultTimeout(STEP_MS);

// What the pages log goes to stderr (with the test's own progress).
function logPage(page, label) {
    page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") console.error(`[${label}] ${m.type()}: ${m.text()}`); });
    page.on("pageerror", (e) => console.error(`[${label}] page error: ${e.message}`));
}
logPage(customer, "customer");
logPage(agent, "agent");

// --- capture -------------------------------------------------------------
const sent = [];          // every request URL and body of the customer page
const received = [];      // every CometD answer the agent consoles got
const pending = [];
const wire = { customer: 0, agent: 0 };
let measuring = false;
customer.on("request", (r) => {
    sent.push(r.url());
    const body = r.postData();
    if (body) sent.push(body);
});
customer.on("requestfinished", (r) => {
    if (measuring) pending.push(r.sizes().then((s) => { wire.customer += s.requestHeadersSize + s.requestBodySize + s.responseHeadersSize + s.responseBodySize; }).catch(() => {}));
});
customer.on("websocket", (ws) => ws.on("framesent", (f) => sent.push(String(f.payload))));
function captureAgent(page) {
    page.on("response", (r) => {
        if (r.url().includes("/cometd")) pending.push(r.text().then((t) => received.push(t)).catch(() => {}));
    });
    page.on("requestfinished", (r) => {
        if (measuring && page === agent) pending.push(r.sizes().then((s) => { wire.agent += s.requestHeadersSize + s.requestBodySize + s.responseHeadersSize + s.responseBodySize; }).catch(() => {}));
    });
}
captureAgent(agent);

// --- helpers -------------------------------------------------------------
const mirrorDoc = "document.querySelector('#mirror iframe') && document.querySelector('#mirror iframe').contentDocument";
/** Waits until `expr` (JS, with `doc` the mirror's document and `arg`) is
 *  truthy on `page`. Built as a function's source here: the console's CSP
 *  forbids eval and `new Function` inside the page. */
function inMirror(page, expr, arg, timeout = STEP_MS) {
    const src = `(arg) => { const iframe = document.querySelector("#mirror iframe"); const doc = iframe && iframe.contentDocument; if (!doc || !doc.body) return false; return !!(${expr}); }`;
    return page.waitForFunction(src, arg, { timeout });
}
const widgetText = (id) => customer.locator(`#${id}`).innerText({ timeout: STEP_MS });

async function signInAndWatch(page, token) {
    await page.goto(`${cfg.proxy}/cobrowse/agent/`);
    if (await page.locator("#signed-out").isVisible()) {
        await page.fill("#credential", cfg.agentToken);
        await page.click("#sign-in");
    }
    await page.fill("#token", token);
    const t = Date.now();
    await page.click("#watch");
    await page.waitForSelector('#state[data-state="live"]', { timeout: STEP_MS });
    await inMirror(page, "doc.querySelector('#shop-title') && doc.querySelector('#shop-title').textContent.includes('Tea')");
    return Date.now() - t;
}

async function startCobrowse() {
    await customer.click("#gcb-button");
    await customer.waitForFunction(() => {
        const host = document.getElementById("gcb-cobrowse-widget");
        const t = host && host.shadowRoot.getElementById("gcb-token");
        return t && /^\d{3} \d{3} \d{3}$/.test(t.textContent) && !host.shadowRoot.getElementById("gcb-code").hidden;
    }, null, { timeout: STEP_MS });
    return (await widgetText("gcb-token")).replace(/\D/g, "");
}

function percentile(sorted, p) {
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// --- the scenario ----------------------------------------------------------
const out = {};
try {
    await step("a page on a disallowed origin gets a clear refusal", async () => {
        await customer.goto(cfg.disallowedDemo);
        await customer.click("#gcb-button");
        const error = customer.locator("#gcb-error");
        await error.waitFor({ state: "visible", timeout: STEP_MS });
        const text = await error.innerText();
        assert(/not enabled for this website/.test(text) && text.includes(new URL(cfg.disallowedDemo).origin), `error shown: ${text}`);
        await customer.screenshot({ path: join(cfg.artifacts, "customer-disallowed-origin.png") });
    });

    const token = await step("the customer starts co-browse on the demo shop", async () => {
        await customer.goto(cfg.demo);
        await customer.fill("#name", SECRETS.name);
        return startCobrowse();
    });
    out.token = token;

    out.firstViewMs = await step("the agent console shows the page within 2 s", async () => {
        const ms = await signInAndWatch(agent, token);
        assert(ms < 2000, `the mirror took ${ms} ms`);
        await customer.locator("#gcb-banner").waitFor({ state: "visible", timeout: STEP_MS });
        return ms;
    });

    await step("opted-in text appears; name, password and card are masked", async () => {
        await customer.locator("#comment").pressSequentially(COMMENT);
        await customer.locator("#password").pressSequentially(SECRETS.password);
        await customer.locator("#card").pressSequentially(SECRETS.card);
        await inMirror(agent, "doc.querySelector('#comment').value === arg", COMMENT);
        await inMirror(agent, "doc.querySelector('#password').value === '********' && doc.querySelector('#card').value === '********'");
        await inMirror(agent, "doc.querySelector('#name').value === '*'.repeat(arg)", SECRETS.name.length);
        await inMirror(agent, "/^[* ,]+$/.test(doc.querySelector('#address').textContent)");
        await inMirror(agent, "doc.querySelector('.loyalty.gcb-blocked') && !doc.body.textContent.includes(arg)", SECRETS.loyalty);
    });

    await step("scrolling and a DOM change by the page's script appear", async () => {
        const y = await customer.evaluate(() => { window.scrollTo(0, 600); return window.scrollY; });
        assert(y > 100, `the customer page scrolled to ${y}`);
        await inMirror(agent, "Math.abs(doc.defaultView.scrollY - arg) <= 2", y);
        await customer.click('button.add[data-item="Green tea"]');
        await inMirror(agent, "[...doc.querySelectorAll('#cart li')].some((li) => li.textContent === 'Green tea')");
    });

    await step("each side sees the other's pointer", async () => {
        const box = await agent.locator("#mirror iframe").boundingBox();
        const scale = await agent.evaluate(() => {
            const w = document.querySelector("#mirror .replayer-wrapper");
            const m = /scale\(([\d.]+)\)/.exec(w.style.transform);
            return m ? Number(m[1]) : 1;
        });
        await agent.mouse.move(box.x + 300 * scale, box.y + 200 * scale);
        await agent.mouse.move(box.x + 320 * scale, box.y + 210 * scale);
        const pointer = customer.locator("#gcb-agent-pointer");
        await pointer.waitFor({ state: "visible", timeout: STEP_MS });
        await customer.waitForFunction(() => {
            const p = document.getElementById("gcb-cobrowse-widget").shadowRoot.getElementById("gcb-agent-pointer");
            return Math.abs(parseFloat(p.style.left) - 320) <= 3 && Math.abs(parseFloat(p.style.top) - 210) <= 3;
        }, null, { timeout: STEP_MS });
        // One move: rrweb samples the pointer at most every 50 ms and keeps
        // the first move of a burst (no trailing sample).
        await customer.mouse.move(420, 310);
        await agent.waitForFunction(() => {
            const m = document.querySelector("#mirror .replayer-mouse");
            return m && Math.abs(parseFloat(m.style.left) - 420) <= 3 && Math.abs(parseFloat(m.style.top) - 310) <= 3;
        }, null, { timeout: STEP_MS });
        await agent.waitForFunction(() => Number(document.getElementById("latency").dataset.rtt) >= 0, null, { timeout: STEP_MS });
    });

    out.latency = await step(`delivery latency over ${cfg.changes} DOM changes`, async () => {
        await agent.evaluate((mirror) => {
            const doc = eval(mirror);
            window.__seen = {};
            new MutationObserver((records) => {
                const now = Date.now();
                for (const r of records) for (const n of r.addedNodes) {
                    const text = n.textContent || "";
                    if (text.startsWith("tick-") && !(text in window.__seen)) window.__seen[text] = now;
                }
            }).observe(doc.body, { childList: true, subtree: true });
        }, mirrorDoc);
        const samples = [];
        for (let i = 0; i < cfg.changes; i++) {
            const t0 = await customer.evaluate((i) => { const t = Date.now(); window.demoShop.addToCart(`tick-${i}`); return t; }, i);
            const handle = await agent.waitForFunction((i) => window.__seen[`tick-${i}`], i, { timeout: STEP_MS });
            samples.push((await handle.jsonValue()) - t0);
        }
        const sorted = [...samples].sort((a, b) => a - b);
        return { n: samples.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] };
    });

    out.wire = await step(`bytes on the wire over ${cfg.activitySeconds} s of a customer using the page`, async () => {
        await Promise.all(pending.splice(0));
        wire.customer = 0;
        wire.agent = 0;
        measuring = true;
        const started = Date.now();
        let i = 0;
        while (Date.now() - started < cfg.activitySeconds * 1000) {
            // About what a person does in a second: moves the pointer, types
            // a little now and then, scrolls, adds to the cart.
            for (let k = 0; k < 10; k++) await customer.mouse.move(100 + ((i * 37 + k * 13) % 700), 100 + ((i * 53 + k * 7) % 500));
            if (i % 2 === 0) await customer.locator("#comment").pressSequentially("ok ", { delay: 30 });
            if (i % 3 === 0) await customer.evaluate((i) => window.scrollTo(0, (i * 150) % 900), i);
            if (i % 5 === 0) await customer.click('button.add[data-item="Bamboo whisk"]');
            i++;
            await customer.waitForTimeout(Math.max(0, started + i * 1000 - Date.now()));
        }
        const seconds = (Date.now() - started) / 1000;
        measuring = false;
        await Promise.all(pending.splice(0));
        return {
            seconds,
            customerBytesPerMinute: Math.round((wire.customer / seconds) * 60),
            agentBytesPerMinute: Math.round((wire.agent / seconds) * 60),
        };
    });

    await step("a second agent, and an agent that reloads, get a fresh snapshot", async () => {
        const second = await agentCtx.browser().newContext({ viewport: { width: 1200, height: 800 } }).then((c) => c.newPage());
        second.setDefaultTimeout(STEP_MS);
        logPage(second, "agent-2");
        captureAgent(second);
        await signInAndWatch(second, token);
        await inMirror(second, "[...doc.querySelectorAll('#cart li')].some((li) => li.textContent === 'tick-0')");
        await inMirror(second, "doc.querySelector('#comment').value.startsWith(arg)", COMMENT);
        await agent.reload();
        await agent.waitForSelector('#state[data-state="live"]', { timeout: STEP_MS });
        await inMirror(agent, "[...doc.querySelectorAll('#cart li')].some((li) => li.textContent === 'tick-0')");
        out.secondAgent = second;
    });

    await step("screenshots of both pages", async () => {
        await customer.evaluate(() => window.scrollTo(0, 0));
        await inMirror(agent, "doc.defaultView.scrollY === 0");
        await customer.screenshot({ path: join(cfg.artifacts, "customer.png") });
        await agent.screenshot({ path: join(cfg.artifacts, "agent-console.png") });
    });

    await step("Stop from the agent ends it on both sides", async () => {
        await agent.click("#stop");
        await agent.waitForFunction(() => document.getElementById("state").textContent.startsWith("ended"), null, { timeout: STEP_MS });
        await out.secondAgent.waitForFunction(() => document.getElementById("state").textContent.startsWith("ended"), null, { timeout: STEP_MS });
        await customer.waitForFunction(() => {
            const s = document.getElementById("gcb-cobrowse-widget").shadowRoot.getElementById("gcb-status");
            return /ended/.test(s.textContent);
        }, null, { timeout: STEP_MS });
        assert(await customer.locator("#gcb-banner").isHidden(), "the banner is still shown");
        await customer.screenshot({ path: join(cfg.artifacts, "customer-ended.png") });
    });

    await step("the masked values are in no frame of the data channel", async () => {
        await Promise.all(pending.splice(0));
        const all = [sent.join("\n"), received.join("\n")];
        for (const text of all) {
            for (const [what, secret] of Object.entries(SECRETS)) {
                assert(!text.includes(secret), `the ${what} left the customer's browser`);
            }
        }
        // The capture is not empty: it holds what the agent was shown.
        assert(sent.join("\n").includes(COMMENT) && received.join("\n").includes(`tick-${cfg.changes - 1}`), "the capture saw no page content");
        out.captured = { customerFrames: sent.length, agentAnswers: received.length, customerBytes: sent.join("").length };
        const cookies = await customerCtx.cookies(cfg.proxy);
        assert(!cookies.some((c) => c.name === "gcbSessionServer"), "the customer browser kept a third-party cookie");
    });

    out.nodeKill = await step("killing the owner node ends the session on both sides", async () => {
        const token2 = await startCobrowse();
        await signInAndWatch(agent, token2);
        const node = (await agent.locator("#node").innerText()).trim();
        const pid = cfg.nodes[node];
        assert(pid, `unknown node ${node}`);
        const t = Date.now();
        process.kill(pid, "SIGKILL");
        const ended = {};
        await Promise.all([
            customer.waitForFunction(() => /ended/.test(document.getElementById("gcb-cobrowse-widget").shadowRoot.getElementById("gcb-status").textContent), null, { timeout: STEP_MS }).then(() => { ended.customerMs = Date.now() - t; }),
            agent.waitForFunction(() => document.getElementById("state").textContent.startsWith("ended"), null, { timeout: STEP_MS }).then(() => { ended.agentMs = Date.now() - t; }),
        ]);
        ended.node = node;
        ended.customerText = await widgetText("gcb-status");
        ended.agentText = await agent.locator("#state").innerText();
        await agent.screenshot({ path: join(cfg.artifacts, "agent-node-killed.png") });
        return ended;
    });

    delete out.secondAgent;
} catch (e) {
    out.error = e;
    await customer.screenshot({ path: join(cfg.artifacts, "failure-customer.png") }).catch(() => {});
    await agent.screenshot({ path: join(cfg.artifacts, "failure-agent.png") }).catch(() => {});
}
await customerCtx.close().catch(() => {});
await agentBrowser.close().catch(() => {});
rmSync(profile, { recursive: true, force: true });
if (out.error) fail(out.error);
console.log(JSON.stringify({ ok: true, ...out, timings }));
process.exit(0);
