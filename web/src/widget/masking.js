// What the customer's page lets out. Applied inside the customer's browser
// by rrweb's recorder, so a masked value never leaves it:
//
// - every form field (input, textarea, select) is masked, unless it or an
//   ancestor has `data-cobrowse-unmask`;
// - password fields (`type=password`, also after a script changed the type)
//   and payment, password and one-time-code fields (`autocomplete` tokens
//   `cc-*`, `current-password`, `new-password`, `one-time-code`) are always
//   masked, whatever the page says, and only as a fixed-length mask;
// - elements with `data-cobrowse-block` are replaced by a placeholder of
//   their size (nothing inside is recorded);
// - text inside `data-cobrowse-mask` is replaced by asterisks.

export const UNMASK_ATTRIBUTE = "data-cobrowse-unmask";
export const BLOCK_SELECTOR = "[data-cobrowse-block]";
export const MASK_TEXT_SELECTOR = "[data-cobrowse-mask]";

const SENSITIVE_AUTOCOMPLETE = /^(cc-.*|current-password|new-password|one-time-code)$/i;

/** A field whose value may never be shown, whatever the page opts into. */
export function isSensitive(element) {
    if (!element || typeof element.getAttribute !== "function") return true;
    const type = (element.getAttribute("type") || "").toLowerCase();
    if (type === "password" || element.getAttribute("data-rr-is-password") !== null) return true;
    const autocomplete = element.getAttribute("autocomplete") || "";
    return autocomplete.split(/\s+/).some((token) => SENSITIVE_AUTOCOMPLETE.test(token));
}

/** Whether the page opted this field in (and may). */
export function isUnmasked(element) {
    if (isSensitive(element)) return false;
    return typeof element.closest === "function" && element.closest(`[${UNMASK_ATTRIBUTE}]`) !== null;
}

/** rrweb's `maskInputFn`: the value an agent may see. */
export function maskInput(value, element) {
    const text = value == null ? "" : String(value);
    if (isUnmasked(element)) return text;
    if (text === "") return "";
    // Not even the length of a password or card number leaves the page.
    if (isSensitive(element)) return "********";
    return "*".repeat(text.length);
}

/** rrweb's `maskTextFn`. */
export function maskText(text) {
    return String(text).replace(/\S/g, "*");
}

/** The recorder options that apply these rules. */
export function recordMaskingOptions(extraBlockSelector) {
    return {
        maskAllInputs: true,
        maskInputFn: maskInput,
        maskTextSelector: MASK_TEXT_SELECTOR,
        maskTextFn: maskText,
        blockSelector: extraBlockSelector ? `${BLOCK_SELECTOR}, ${extraBlockSelector}` : BLOCK_SELECTOR,
    };
}
