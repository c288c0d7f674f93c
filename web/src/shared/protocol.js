// What customer and agents say to each other on the session's data channel
// (`/session/{token}/data`), and how a message too large for one Bayeux
// message travels.
//
// customer → agents: {t:"ev", e:[rrweb events]}   page content
//                    {t:"part", id, i, n, d}       piece i of n of a large message's JSON
//                    {t:"pong", id, at}            answer to a ping
// agent → customer:  {t:"need-snapshot"}           send a fresh full snapshot (a new or reloaded agent)
//                    {t:"pointer", x, y} / {t:"pointer", hide:true}   the agent's pointer, in the customer's viewport
//                    {t:"ping", id, at}            latency probe

/** Largest encoded message we publish, in bytes: well under the node's
 *  256 KiB batch limit (and its per-receiver queue of 2 MiB). */
export const MAX_MESSAGE_BYTES = 96 * 1024;

const encoder = new TextEncoder();

/** UTF-8 length of the JSON of `value`. */
export function encodedSize(value) {
    return encoder.encode(JSON.stringify(value)).length;
}

/**
 * The Bayeux messages that carry `message`: the message itself when it fits,
 * else its JSON cut into parts that each fit (escaping can make a part up to
 * six times its length, so a part is halved until it fits).
 */
export function split(message, id, limit = MAX_MESSAGE_BYTES) {
    if (encodedSize(message) <= limit) return [message];
    const json = JSON.stringify(message);
    const pieces = [];
    let at = 0;
    let size = Math.floor(limit / 2);
    while (at < json.length) {
        let piece = json.slice(at, at + size);
        while (size > 64 && encodedSize({ t: "part", id, i: 0, n: 0, d: piece }) > limit) {
            size = Math.floor(size / 2);
            piece = json.slice(at, at + size);
        }
        pieces.push(piece);
        at += piece.length;
    }
    return pieces.map((d, i) => ({ t: "part", id, i, n: pieces.length, d }));
}

/** Puts parts back together; a receiver that came in the middle of a message
 *  (a late joiner) drops that message and starts with the next. */
export class Reassembler {
    constructor() {
        this.id = null;
        this.parts = [];
    }

    /** The whole message once its last part came, else null. */
    push(part) {
        if (part.i === 0) {
            this.id = part.id;
            this.parts = [];
        }
        if (part.id !== this.id || part.i !== this.parts.length) {
            this.id = null;
            this.parts = [];
            return null;
        }
        this.parts.push(part.d);
        if (this.parts.length < part.n) return null;
        const json = this.parts.join("");
        this.id = null;
        this.parts = [];
        return JSON.parse(json);
    }
}

/** The session's data channel. */
export function dataChannel(sessionToken) {
    return `/session/${sessionToken}/data`;
}

/** `123456789` as `123 456 789`, the way it is read aloud. */
export function groupDigits(token) {
    return String(token).replace(/(\d{3})(?=\d)/g, "$1 ");
}
