// The grid the page draws, against the cases of `apctl matrix`: owners,
// letters, collisions, missing queues, unusable queues and their reasons.
// Run with `node --test cockpit/test/model.test.js` (tests/tests/cockpit.rs does).

import assert from "node:assert/strict";
import { test } from "node:test";

import { adapterList, buildGrid, domainList, ownerAttribute, symbol } from "../src/model.js";

const G1 = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2 = "f7b3d3d9-3d74-4d3d-a3b7-cc4a67e15f29";
const X = "0c6a2c2e-7a39-4a4c-8a51-5b1f4b0a5c9e";

const card = (id, more = {}) => ({ id, cardType: "CEX7C", mode: "cca", config: true, online: true, chkstop: false, ...more });
const queue = (apqn, owner = "free", ownerUuid = "", more = {}) => ({
    apqn, cardType: "CEX7C", mode: "cca", config: true, online: true, chkstop: false,
    driver: owner === "host" ? "cex4queue" : "vfio_ap", owner, ownerUuid, ownerName: "", ...more,
});
const mdev = (uuid, name, adapters, domains, active = true) =>
    ({ uuid, name, defined: true, active, autostart: false, adapters, domains, controlDomains: [], guestMatrix: [], startError: "" });

/** Every cell as `apqn: symbol data-owner usable`. */
function picture(inp) {
    const grid = buildGrid(inp);
    return grid.rows.flatMap(r => r.cells).map(c => `${c.apqn}: ${symbol(grid, c)} ${ownerAttribute(c, inp.mdevs)} ${c.usable}`);
}

test("owners, letters in list order, the host and free queues", () => {
    const inp = {
        adapters: [card(6), card(5)],
        queues: [
            queue("05.0004", "mdev", G1), queue("05.0047", "mdev", G2), queue("06.0004", "mdev", G1),
            queue("06.0047"), queue("05.0000", "host"), queue("06.0000", "host"),
        ],
        mdevs: [mdev(G2, "guest2", [5], [0x47]), mdev(G1, "guest1", [5, 6], [4])],
        verdicts: new Map(),
    };
    const grid = buildGrid(inp);
    assert.deepEqual(grid.domains, [0, 4, 0x47]);
    assert.deepEqual(grid.legend.map(e => `${e.letter} ${e.mdev.name}`), ["A guest1", "B guest2"]);
    assert.deepEqual(picture(inp), [
        "05.0000: H host true", "05.0004: A guest1 true", "05.0047: B guest2 true",
        "06.0000: H host true", "06.0004: A guest1 true", "06.0047: . free true",
    ]);
});

test("two owners at once: a star, not usable, both named", () => {
    const inp = {
        adapters: [card(5)],
        queues: [queue("05.0004", "mdev", G1)],
        mdevs: [mdev(G1, "guest1", [5], [4]), mdev(X, "", [5], [4])],
        verdicts: new Map(),
    };
    const [c] = buildGrid(inp).rows[0].cells;
    assert.deepEqual(picture(inp), ["05.0004: * guest1 false"]);
    assert.equal(c.reason, `queue 05.0004 is claimed by guest1 (${G1}) and ${X} at once (written by another tool)`);
});

test("a queue apd calls free but an mdev holds is that mdev's; an unnamed mdev is its UUID", () => {
    const inp = { adapters: [card(5)], queues: [queue("05.0004")], mdevs: [mdev(X, "", [5], [4])], verdicts: new Map() };
    assert.deepEqual(picture(inp), [`05.0004: A ${X} true`]);
});

test("no queue at a place of the grid: none, blank", () => {
    const inp = { adapters: [card(5), card(6)], queues: [queue("05.0004")], mdevs: [], verdicts: new Map() };
    assert.deepEqual(picture(inp), ["05.0004: . free true", "06.0004:   none false"]);
});

test("unusable: apd's verdict for an mdev's queue, the adapter's state for the others", () => {
    const off = "adapter 6 is configured off (standby); configure it on with `apctl config 6 on`";
    const inp = {
        adapters: [card(6, { config: false, online: false })],
        queues: [queue("06.0004", "mdev", G1, { config: false }), queue("06.0047", "free", "", { config: false })],
        mdevs: [mdev(G1, "guest1", [6], [4])],
        verdicts: new Map([[G1, [{ apqn: "06.0004", inGuestMatrix: true, usable: false, reason: "apd's own sentence" }]]]),
    };
    const cells = buildGrid(inp).rows[0].cells;
    assert.deepEqual(cells.map(c => [c.apqn, c.usable, c.reason]), [
        ["06.0004", false, "apd's own sentence"],
        ["06.0047", false, off],
    ]);
});

test("ids as apctl prints them", () => {
    assert.equal(adapterList([7, 1, 2, 3]), "1-3,7");
    assert.equal(adapterList([5, 6]), "5,6");
    assert.equal(domainList([0xff, 0, 1, 2]), "0x00-0x02,0xff");
    assert.equal(domainList([]), "-");
});
