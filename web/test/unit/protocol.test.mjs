// Splitting large messages to fit the node's limits, and putting them back.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Reassembler, encodedSize, groupDigits, split } from "../../src/shared/protocol.js";

test("a small message goes whole", () => {
    const m = { t: "ev", e: [{ type: 3, data: { x: 1 } }] };
    assert.deepEqual(split(m, 1), [m]);
});

test("a large message goes in parts that each fit, and comes back equal", () => {
    // Quotes, backslashes, control characters (escaped to six bytes) and
    // characters outside the BMP (surrogate pairs that a cut may split).
    const nasty = "\"\\\u0001é😀<a href=\"x\">".repeat(20000);
    const m = { t: "ev", e: [{ type: 2, data: { html: nasty } }] };
    const limit = 16 * 1024;
    const parts = split(m, 7, limit);
    assert.ok(parts.length > 10, `${parts.length} parts`);
    for (const p of parts) {
        assert.equal(p.t, "part");
        assert.ok(encodedSize(p) <= limit, `part of ${encodedSize(p)} bytes`);
    }
    const r = new Reassembler();
    let whole = null;
    for (const p of parts) whole = r.push(p) || whole;
    assert.deepEqual(whole, m);
});

test("a late joiner drops a message it saw only the end of", () => {
    const m = { t: "ev", e: [{ type: 2, data: { html: "x".repeat(50000) } }] };
    const first = split(m, 1, 8 * 1024);
    const second = split(m, 2, 8 * 1024);
    const r = new Reassembler();
    for (const p of first.slice(2)) assert.equal(r.push(p), null);
    let whole = null;
    for (const p of second) whole = r.push(p) || whole;
    assert.deepEqual(whole, m);
});

test("tokens are grouped in threes", () => {
    assert.equal(groupDigits("123456789"), "123 456 789");
});
