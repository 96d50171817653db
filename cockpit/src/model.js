// The grid of `apctl matrix`, built from what apd serves: the adapters,
// the queues with their owners, the mdevs and, for each active mdev, apd's
// verdict per APQN. Pure functions, no DOM and no D-Bus.

/** Letters for mdevs in legend order; `H` is the host's, so no mdev gets it. */
const LETTERS = "ABCDEFGIJKLMNOPQRSTUVWXYZabcdefgijklmnopqrstuvwxyz0123456789";
/** The letter of every mdev beyond LETTERS. */
const MORE = "#";

/** `05.0004`, as lszcrypt and apd write an APQN. */
export function apqnText(adapter, domain) {
    return `${adapter.toString(16).padStart(2, "0")}.${domain.toString(16).padStart(4, "0")}`;
}

/** `[adapter, domain]` of `05.0004`. */
export function parseApqn(text) {
    const [a, d] = text.split(".");
    return [parseInt(a, 16), parseInt(d, 16)];
}

/** Ids as apctl prints them: ascending, runs of three or more as ranges, `-` for none. */
function compact(ids, show) {
    const sorted = [...new Set(ids)].sort((x, y) => x - y);
    if (sorted.length === 0)
        return "-";
    const parts = [];
    for (let i = 0; i < sorted.length;) {
        let j = i;
        while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1)
            j++;
        if (j - i >= 2) {
            parts.push(`${show(sorted[i])}-${show(sorted[j])}`);
        } else {
            for (let k = i; k <= j; k++)
                parts.push(show(sorted[k]));
        }
        i = j + 1;
    }
    return parts.join(",");
}

/** Adapters in decimal: `5,6`. */
export const adapterList = ids => compact(ids, id => String(id));
/** Domains in hex: `0x04,0xab`. */
export const domainList = ids => compact(ids, id => `0x${id.toString(16).padStart(2, "0")}`);

/** What people call an mdev: its name, else its UUID. */
export const mdevLabel = m => m.name || m.uuid;

/** `apctl list`'s order: named first, by name, then by UUID. */
export function listOrder(a, b) {
    const key = m => [m.name === "" ? 1 : 0, m.name, m.uuid];
    const [ka, kb] = [key(a), key(b)];
    for (let i = 0; i < ka.length; i++) {
        if (ka[i] < kb[i])
            return -1;
        if (ka[i] > kb[i])
            return 1;
    }
    return 0;
}

/** Whether an active mdev's matrix (adapters × domains) holds the APQN. */
const holds = (m, adapter, domain) => m.adapters.includes(adapter) && m.domains.includes(domain);

/** Why a queue nobody passes to a guest cannot be used, in apctl's words. */
function queueReason(owner, q, card, apqn, adapter) {
    if (!card.config || !q.config)
        return `adapter ${adapter} is configured off (standby); configure it on with \`apctl config ${adapter} on\``;
    if (card.chkstop || q.chkstop)
        return `queue ${apqn} is check-stopped (hardware error); the adapter needs service`;
    if (q.driver === "")
        return `queue ${apqn} is not bound to any driver (echo ${apqn} > /sys/bus/ap/drivers_probe)`;
    if (owner.kind === "free" && q.driver !== "vfio_ap")
        return `queue ${apqn} is bound to ${q.driver}, not to vfio_ap`;
    return null;
}

/**
 * One cell: `{apqn, adapter, domain, owner: {kind: "host"|"free"|"mdev"|"none",
 * uuid}, collidesWith: [owner], usable, reason}`.
 */
function cell(card, domain, q, inp) {
    const adapter = card.id;
    const apqn = apqnText(adapter, domain);
    if (!q) {
        return {
            apqn, adapter, domain, owner: { kind: "none" }, collidesWith: [], usable: false,
            reason: `queue ${apqn} does not exist on this host (not yet probed, or its adapter is leaving)`,
        };
    }
    let owner = { kind: "free" };
    if (q.owner === "host")
        owner = { kind: "host" };
    else if (q.owner === "mdev")
        owner = { kind: "mdev", uuid: q.ownerUuid.toLowerCase() };
    const collidesWith = inp.mdevs
            .filter(m => m.active && holds(m, adapter, domain))
            .map(m => ({ kind: "mdev", uuid: m.uuid.toLowerCase() }))
            .filter(o => !(owner.kind === "mdev" && o.uuid === owner.uuid));
    // An mdev apd did not name as owner holds it: it is the owner.
    if (owner.kind === "free" && collidesWith.length > 0)
        owner = collidesWith.shift();
    if (collidesWith.length > 0) {
        const names = [owner, ...collidesWith].map(o => ownerText(o, inp.mdevs));
        return {
            apqn, adapter, domain, owner, collidesWith, usable: false,
            reason: `queue ${apqn} is claimed by ${names.join(" and ")} at once (written by another tool)`,
        };
    }
    const verdict = owner.kind === "mdev"
        ? (inp.verdicts.get(owner.uuid) || []).find(v => v.apqn === apqn)
        : undefined;
    if (verdict)
        return { apqn, adapter, domain, owner, collidesWith, usable: verdict.usable, reason: verdict.reason || null };
    const reason = queueReason(owner, q, card, apqn, adapter);
    return { apqn, adapter, domain, owner, collidesWith, usable: reason === null, reason };
}

/** Who owns a cell, for people: `the host`, `guest1 (UUID)`, `free for vfio_ap`. */
export function ownerText(owner, mdevs) {
    switch (owner.kind) {
    case "host":
        return "the host";
    case "free":
        return "free for vfio_ap";
    case "none":
        return "no queue";
    default: {
        const m = mdevs.find(m => m.uuid.toLowerCase() === owner.uuid && m.name !== "");
        return m ? `${m.name} (${owner.uuid})` : owner.uuid;
    }
    }
}

/**
 * The grid: `{domains, rows: [{adapter, cells}], legend: [{letter, mdev}]}`.
 * Rows are the LPAR's adapters, columns its usage domains (those its queues
 * have: queues exist for every adapter × usage domain).
 */
export function buildGrid(inp) {
    const queues = new Map(inp.queues.map(q => [q.apqn, q]));
    const domains = [...new Set(inp.queues.map(q => parseApqn(q.apqn)[1]))].sort((a, b) => a - b);
    const rows = [...inp.adapters]
            .sort((a, b) => a.id - b.id)
            .map(card => ({
                adapter: card,
                cells: domains.map(d => cell(card, d, queues.get(apqnText(card.id, d)), inp)),
            }));
    const legend = inp.mdevs
            .filter(m => m.active)
            .sort(listOrder)
            .map((mdev, i) => ({ letter: LETTERS[i] ?? MORE, mdev }));
    return { domains, rows, legend };
}

/** The character a cell shows: `H`, `.`, the mdev's letter, `*`, or blank. */
export function symbol(grid, c) {
    if (c.collidesWith.length > 0)
        return "*";
    switch (c.owner.kind) {
    case "host":
        return "H";
    case "free":
        return ".";
    case "none":
        return " ";
    default: {
        const entry = grid.legend.find(e => e.mdev.uuid.toLowerCase() === c.owner.uuid);
        return entry ? entry.letter : MORE;
    }
    }
}

/** `data-owner` of a cell (design.md): `host`, `free`, `none`, or the mdev's name. */
export function ownerAttribute(c, mdevs) {
    if (c.owner.kind !== "mdev")
        return c.owner.kind;
    const m = mdevs.find(m => m.uuid.toLowerCase() === c.owner.uuid);
    return m ? mdevLabel(m) : c.owner.uuid;
}
