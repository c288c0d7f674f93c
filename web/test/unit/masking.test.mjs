// The masking rules, table-driven: what an agent may see of each field.
import { test } from "node:test";
import assert from "node:assert/strict";

import { isSensitive, maskInput, maskText } from "../../src/widget/masking.js";

/** A field: its attributes, and whether an ancestor opts in. */
function field(attributes, { ancestorUnmask = false } = {}) {
    return {
        getAttribute: (name) => (name in attributes ? attributes[name] : null),
        closest: (selector) =>
            selector === "[data-cobrowse-unmask]" && ("data-cobrowse-unmask" in attributes || ancestorUnmask) ? {} : null,
    };
}

test("every field is masked unless opted in, and sensitive ones always", () => {
    // [attributes, ancestor opts in, value, what the agent sees]
    const cases = [
        [{}, false, "Carla", "*****"],
        [{ type: "text" }, false, "", ""],
        [{ "data-cobrowse-unmask": "" }, false, "hello", "hello"],
        [{}, true, "hello", "hello"],
        [{ type: "password" }, false, "hunter2", "********"],
        [{ type: "PASSWORD", "data-cobrowse-unmask": "" }, false, "hunter2", "********"],
        [{ "data-rr-is-password": "true", "data-cobrowse-unmask": "" }, false, "hunter2", "********"],
        [{ autocomplete: "cc-number", "data-cobrowse-unmask": "" }, false, "4111111111111111", "********"],
        [{ autocomplete: "billing cc-csc" }, true, "123", "********"],
        [{ autocomplete: "section-a shipping cc-exp" }, true, "12/29", "********"],
        [{ autocomplete: "one-time-code" }, true, "123456", "********"],
        [{ autocomplete: "new-password" }, true, "s3cret", "********"],
        [{ autocomplete: "name", "data-cobrowse-unmask": "" }, false, "Carla", "Carla"],
        [{ type: "password" }, false, "", ""],
    ];
    for (const [attributes, ancestorUnmask, value, want] of cases) {
        const got = maskInput(value, field(attributes, { ancestorUnmask }));
        assert.equal(got, want, `${JSON.stringify(attributes)} ${ancestorUnmask} ${value}`);
    }
});

test("a missing element is treated as sensitive", () => {
    assert.equal(isSensitive(null), true);
    assert.equal(maskInput("x", undefined), "********");
});

test("masked text keeps its spaces only", () => {
    assert.equal(maskText("12 Juniper Lane"), "** ******* ****");
});
