// Sends the page to the agents: one Bayeux publish in flight at a time, so
// what piles up meanwhile goes in the next one (a natural batch), large
// messages go in parts that fit the node's limits, and a "publish more
// slowly" (429) from the node is retried after a pause instead of lost.

import { split } from "../shared/protocol.js";

const RETRY_MS = [100, 250, 500, 1000, 2000];

export class Streamer {
    constructor(cometd, channel, { onFailure, onBytes }) {
        this.cometd = cometd;
        this.channel = channel;
        this.onFailure = onFailure;
        this.onBytes = onBytes || (() => {});
        this.events = [];
        this.control = [];
        this.outbox = [];
        this.inFlight = false;
        this.scheduled = false;
        this.nextId = 1;
        this.retries = 0;
        this.stopped = false;
    }

    /** An rrweb event. */
    event(event) {
        if (this.stopped) return;
        this.events.push(event);
        this.schedule();
    }

    /** A small message of our own ({t:"pong"}), sent before queued page events. */
    send(message) {
        if (this.stopped) return;
        this.control.push(message);
        this.schedule();
    }

    stop() {
        this.stopped = true;
        this.events = [];
        this.control = [];
        this.outbox = [];
    }

    schedule() {
        if (this.scheduled || this.inFlight) return;
        this.scheduled = true;
        // Everything one task changed (rrweb reports a mutation batch as
        // several events) goes in one message.
        queueMicrotask(() => {
            this.scheduled = false;
            this.pump();
        });
    }

    pump() {
        if (this.stopped || this.inFlight) return;
        if (this.outbox.length === 0) {
            if (this.control.length) {
                this.outbox.push(this.control.shift());
            } else if (this.events.length) {
                const events = this.events;
                this.events = [];
                this.outbox.push(...split({ t: "ev", e: events }, this.nextId++));
            } else {
                return;
            }
        }
        const message = this.outbox[0];
        this.inFlight = true;
        this.cometd.publish(this.channel, message, (ack) => {
            this.inFlight = false;
            if (this.stopped) return;
            if (ack && ack.successful) {
                this.retries = 0;
                this.outbox.shift();
                this.onBytes(message);
                this.pump();
                return;
            }
            // A 429 ("publish more slowly": an agent's queue is full) or a
            // failed request: the same message again after a pause, a few times.
            const error = String((ack && (ack.error || (ack.failure && ack.failure.reason))) || "no answer");
            if (this.retries < RETRY_MS.length) {
                setTimeout(() => this.pump(), RETRY_MS[this.retries++]);
                return;
            }
            this.onFailure(error);
        });
    }
}
